@embedded:lorawan
Feature: LoRaWAN devices talk to the network server through a Basics Station
  End devices on an emulated radio medium, a Basics Station forwarding their frames to the LNS as
  `updf`/`jreq` and sending the network server's `dnmsg` back on the air, and the network
  server's application interface (HTTP) on the other side.

  Background:
    Given a LoRaWAN gateway "gw1" at 0 m, 0 m

  Scenario: A device joins and exchanges class A frames
    Given a class A LoRaWAN device "sensor" at 800 m, 0 m
    When "sensor" joins the network
    And "sensor" sends `68656c6c6f` on FPort 2
    Then the application received `68656c6c6f` from "sensor" on FPort 2
    And the gateway "gw1" forwarded the frames as `updf` with the fields the real station sends
    When the application queues `0a0b0c` for "sensor" on FPort 3
    And "sensor" sends `01` on FPort 2
    Then "sensor" received `0a0b0c` on FPort 3

  Scenario: A class C device gets a downlink without sending first
    Given a class C LoRaWAN device "lamp" at 1200 m, 300 m
    And "lamp" has joined the network
    And "lamp" sends `00` on FPort 2
    When the application queues `ff01` for "lamp" on FPort 10
    Then soon "lamp" received `ff01` on FPort 10

  Scenario: The duty cycle of the gateway delays class C downlinks
    RX2 (869.525 MHz, DR0) is in the 10 % sub-band: after a frame of T seconds the gateway waits
    9·T before sending again there. 40 octets at DR0 take about 2.3 s on air.
    Given a class C LoRaWAN device "lamp" at 500 m, 0 m
    And "lamp" has joined the network
    And "lamp" sends `00` on FPort 2
    When the application queues 3 downlinks of 40 octets for "lamp" on FPort 5
    And 2 minutes pass
    Then the downlinks to "lamp" arrived at least 20 seconds apart

  Scenario: A replayed uplink is rejected
    Given a class A LoRaWAN device "meter" at 600 m, 0 m
    And "meter" has joined the network
    When "meter" sends `0102` on FPort 4
    And someone replays the last uplink of "meter"
    Then the application received 1 uplink from "meter" on FPort 4

  Scenario: A device out of range of every gateway cannot join
    Given a class A LoRaWAN device "far" at 150000 m, 0 m
    Then "far" cannot join the network

@embedded:lorawan
Feature: Multicast and an imperfect radio
  Class C multicast frames reach every member of a group and no one else; radio loss drawn from
  the scenario's seed thins the uplinks at the stated rate.

  Background:
    Given a LoRaWAN gateway "gw1" at 0 m, 0 m

  Scenario: A multicast frame reaches every member of the group and no one else
    Given a class C LoRaWAN device "m1" at 700 m, 0 m
    And a class C LoRaWAN device "m2" at 0 m, 900 m
    And a class C LoRaWAN device "other" at 500 m, 500 m
    And "m1" has joined the network
    And "m2" has joined the network
    And "other" has joined the network
    And "m1" sends `00` on FPort 2
    And a multicast group "fleet" on 869.525 MHz at DR0 with the members "m1" and "m2"
    When the application sends `c0ffee` to the multicast group "fleet" on FPort 200
    Then "m1" received the multicast `c0ffee` on FPort 200
    And "m2" received the multicast `c0ffee` on FPort 200
    And "other" received no downlink

  Scenario: Uplinks are lost at the stated rate
    Given a class A LoRaWAN device "sensor" at 800 m, 0 m
    And "sensor" has joined the network
    And the radio link of "sensor" loses 30% of frames
    When "sensor" sends 100 uplinks on FPort 2
    Then the application received between 55 and 85 uplinks from "sensor" on FPort 2

  Scenario: A second gateway in reach hears the same frame; it is delivered once
    Given a LoRaWAN gateway "gw2" at 2000 m, 0 m
    And a class A LoRaWAN device "sensor" at 1000 m, 0 m
    And "sensor" has joined the network
    When "sensor" sends `aa` on FPort 2
    Then the application received 1 uplink from "sensor" on FPort 2

@embedded:cups
Feature: Basics Station firmware upgrade over CUPS
  A LoRa Basics Station (2.0.6) asks its CUPS server for updates at start and then every 24 hours.
  The operator uploads a signed update file with the provisioning tool; at the station's next CUPS
  check the server sends it with its signature, the station checks the signature against its
  sig-N.key files, runs the update program, restarts, and reports the new package to the LNS,
  which records it in the registry. (Seed 000, after the Azure IoT Edge LoRaWAN Starter Kit.)

  Background:
    Given the firmware team prepares the signature key "release"
    And an update file "v1.bin" that installs package "v1"

  Scenario: A signed update is installed at the next CUPS check and reported through the LNS (the seed)
    # 1. Provisioning: the key goes onto the station; the team keeps its private half and CRC.
    Given station "gw1" is provisioned with package "v0" and the signature key "release"
    When station "gw1" is switched on
    Then soon station "gw1" is connected to the LNS
    And the registry shows package "v0" reported by station "gw1" to the LNS
    # 2. The upgrade files are signed and uploaded with the provisioning tool.
    Given the firmware team signs "v1.bin" with the key "release"
    When the operator uploads "v1.bin" as package "v1" for station "gw1"
    Then the registry wants package "v1" from "v1.bin" on station "gw1"
    # 3. Nothing happens before the station's next CUPS check, 24 hours after its last one.
    When 23 hours pass
    Then station "gw1" still runs package "v0"
    When 1 hour passes
    Then soon station "gw1" runs package "v1"
    And station "gw1" ran the update: a key verified the signature
    And station "gw1" restarted to install the update
    And soon the registry shows package "v1" reported by station "gw1" to the LNS
    And the CUPS server's last answer to station "gw1" was "no update: station runs the desired package 'v1'"
    And station "gw1" reached CUPS and the LNS over TLS with its client certificate

  Scenario: An update program that does not restart the station: CUPS hears of the new package first
    # The starter kit's fwUpdateSample.sh writes version.txt and removes update.bin, and does not
    # restart the station: its next CUPS request names the new package, the LNS hears of it only
    # when the station reconnects.
    Given an update file "v1-norestart.bin" that installs package "v1" without restarting the station
    And the firmware team signs "v1-norestart.bin" with the key "release"
    And station "gw1" is provisioned with package "v0" and the signature key "release"
    When station "gw1" is switched on
    Then soon station "gw1" is connected to the LNS
    When the operator uploads "v1-norestart.bin" as package "v1" for station "gw1"
    And 1 day passes
    Then station "gw1" runs package "v1"
    And station "gw1" ran the update: a key verified the signature
    And station "gw1" did not restart
    And the registry shows package "v0" reported by station "gw1" to the LNS
    When 1 day passes
    Then the last CUPS request of station "gw1" names package "v1"
    And the CUPS server's last answer to station "gw1" was "no update: station runs the desired package 'v1'"
    When device "gw1" reboots
    Then soon the registry shows package "v1" reported by station "gw1" to the LNS

  Scenario: An update signed with another key is not run and the old version keeps working
    Given the firmware team prepares the signature key "rogue"
    And the firmware team signs "v1.bin" with the key "rogue"
    And station "gw1" is provisioned with package "v0" and the signature key "release"
    When station "gw1" is switched on
    Then soon station "gw1" is connected to the LNS
    # The operator names the checksum of the station's key, but the file was signed with another.
    When the operator uploads "v1.bin" as package "v1" for station "gw1" with the checksum of the key "release"
    And device "gw1" reboots
    Then soon station "gw1" refused the update: no key could verify the signature
    And station "gw1" still runs package "v0"
    And soon station "gw1" is connected to the LNS
    And the registry shows package "v0" reported by station "gw1" to the LNS

  Scenario: A station that lacks the signing key gets no update, and the server says why
    Given the firmware team prepares the signature key "field"
    And the firmware team signs "v1.bin" with the key "release"
    And station "gw1" is provisioned with package "v0" and the signature key "field"
    When station "gw1" is switched on
    Then soon station "gw1" is connected to the LNS
    When the operator uploads "v1.bin" as package "v1" for station "gw1"
    And device "gw1" reboots
    Then soon the CUPS server sent station "gw1" no update because it lacks the key "release"
    And station "gw1" received no update
    And station "gw1" still runs package "v0"

  Scenario: A station with a key refuses an update sent without a signature
    Given station "gw1" is provisioned with package "v0" and the signature key "release"
    And the operator sets package "v1" for station "gw1" to "v1.bin" without a signature
    When station "gw1" is switched on
    Then soon station "gw1" refused the update: key file present but no signature
    And soon station "gw1" is connected to the LNS
    And station "gw1" still runs package "v0"

  @risk
  Scenario: RISK - a station without any key runs an unsigned update
    # Kept on purpose, it is what basicstation 2.0.6 does ("No Key. No Sig. UPDATE."): whoever
    # answers as CUPS can run any program on a station provisioned without sig-0.key.
    Given station "gw1" is provisioned with package "v0" and no signature key
    And the operator sets package "v1" for station "gw1" to "v1.bin" without a signature
    When station "gw1" is switched on
    Then soon station "gw1" runs package "v1"
    And station "gw1" ran the update: no sig-0.key and no signature
    And the CUPS server sent station "gw1" the update to "v1" unsigned
    And soon the registry shows package "v1" reported by station "gw1" to the LNS

  Scenario: A station already on the desired package gets the 14-byte "no update"
    Given the firmware team signs "v1.bin" with the key "release"
    And station "gw1" is provisioned with package "v1" and the signature key "release"
    # The server compares packages without regard to case, as the Azure CUPS does.
    And the operator uploads "v1.bin" as package "V1" for station "gw1"
    When station "gw1" is switched on
    Then soon station "gw1" is connected to the LNS
    When 1 day passes
    Then the CUPS server's last answer to station "gw1" was "no update: station runs the desired package 'V1'"
    And CUPS answers station "gw1" with the 14-byte "no update"
    And station "gw1" received no update

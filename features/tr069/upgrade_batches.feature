@embedded:tr069
Feature: TR-069 firmware upgrade batches (Splynx "Files and upgrades" on a GenieACS-like ACS)
  The operator uploads the RouterOS and tr069-client packages and the MikroTik upgrade XML under
  Networking → TR-069 (ACS) → Files, then adds an ACS upgrade batch for a group of routers: from
  an original version to a new one, on some days and hours, at a Boot or at any Inform. A router
  of the batch gets the Download at its next such Inform inside the window and never outside it;
  30 minutes after the transfer the ACS checks the version it reports: Ready, or Error when it
  did not change. (Seed 002.)

  Background:
    Given the time is 2026-01-05T09:00:00Z
    And the ACS asks routers for Digest credentials "cpe" with password "s3cret-cpe"
    And the operator writes the upgrade file "upgrade_6.48.4.xml" linking "routeros-x86-6.48.4.npk" and "tr069-client-6.48.4.npk" on the ACS file server
    And the operator uploads these files
      | file                    | type                       | OUI    | product class | version |
      | routeros-x86-6.48.4.npk | 1 Firmware Upgrade Image   | E48D8C | CHR           | 6.48.4  |
      | tr069-client-6.48.4.npk | 1 Firmware Upgrade Image   | E48D8C | CHR           | 6.48.4  |
      | upgrade_6.48.4.xml      | 1 Firmware Upgrade Image   | E48D8C | CHR           | 6.48.4  |
    And the operator creates the group "MikroTik CHR" for OUI "E48D8C" and product class "CHR"

  Scenario: The seed's upgrade from 6.48 to 6.48.4 at a Boot inside the batch's days and hours, then Ready
    Given the MikroTik CHR routers "cpe1" and "cpe2" are switched on
    And the TR-098 gateway "gw1" is switched on
    And the operator uploads these files
      | file                       | type | OUI    | product class | version |
      | generic-firmware-1.1.0.bin | 1    | 00D09E | EX-1000       | 1.1.0   |
    # STEP 3: the File field offers only the files that fit the group.
    Then the Files page lists "routeros-x86-6.48.4.npk", "tr069-client-6.48.4.npk" and "upgrade_6.48.4.xml" for group "MikroTik CHR"
    When the operator adds the upgrade batch "CHR to 6.48.4"
      | field                  | value              |
      | group                  | MikroTik CHR       |
      | original version       | 6.48               |
      | file                   | upgrade_6.48.4.xml |
      | new version            | 6.48.4             |
      | days                   | Tue                |
      | hours                  | 2-3                |
      | event                  | Boot               |
      | max number of attempts | 2                  |
      | max devices per day    | 0                  |
    Then the devices for upgrade in batch "CHR to 6.48.4" are "cpe1" and "cpe2"
    And the status of "cpe1" and "cpe2" in batch "CHR to 6.48.4" is queued
    # A Boot outside the window (Monday 10:00) changes nothing.
    When it is Monday 10:00 UTC
    And the operator reboots "cpe1" through the ACS
    Then soon the last Inform of "cpe1" carried the events "1 BOOT" and "M Reboot"
    And router "cpe1" still runs RouterOS 6.48
    And the ACS sent "cpe1" 0 Downloads
    # Inside the window, periodic Informs are not Boots: still nothing.
    When it is Tuesday 02:30 UTC
    Then the status of "cpe1" and "cpe2" in batch "CHR to 6.48.4" is queued
    # STEP 4: reboot the router; its Boot Inform gets the Download.
    When the operator reboots "cpe1" through the ACS
    Then soon router "cpe1" runs RouterOS 6.48.4
    And soon the ACS received from "cpe1" a TransferComplete with fault 0
    And the last Inform of "cpe1" carried the events "1 BOOT", "4 VALUE CHANGE", "7 TRANSFER COMPLETE" and "M Download"
    And the ACS shows software version "6.48.4" for "cpe1"
    And the status of "cpe1" in batch "CHR to 6.48.4" is installed
    # After 30 minutes the ACS checks the version: Ready.
    When 29 minutes pass
    Then the status of "cpe1" in batch "CHR to 6.48.4" is installed
    When 2 minutes pass
    Then the status of "cpe1" in batch "CHR to 6.48.4" is Ready
    # A Boot after the window's hours (Tuesday 05:00) leaves the other router alone.
    When it is Tuesday 05:00 UTC
    And the operator reboots "cpe2" through the ACS
    Then soon the last Inform of "cpe2" carried the events "1 BOOT" and "M Reboot"
    And router "cpe2" still runs RouterOS 6.48
    And the status of "cpe2" in batch "CHR to 6.48.4" is queued
    And the ACS shows software version "1.0.0" for "gw1"

  Scenario: A batch on Inform upgrades each router at its first Inform inside the window
    Given the MikroTik CHR routers "cpe1" and "cpe2" are switched on
    When the operator adds the upgrade batch "nightly"
      | field            | value              |
      | group            | MikroTik CHR       |
      | original version | 6.48               |
      | file             | upgrade_6.48.4.xml |
      | new version      | 6.48.4             |
      | hours            | 2-3                |
      | event            | Inform             |
    When it is Tuesday 01:55 UTC
    Then router "cpe1" still runs RouterOS 6.48
    And router "cpe2" still runs RouterOS 6.48
    When it is Tuesday 04:00 UTC
    Then router "cpe1" runs RouterOS 6.48.4
    And router "cpe2" runs RouterOS 6.48.4
    And every device in batch "nightly" is Ready

  Scenario: A router whose version does not change is an Error after the 30-minute check
    Given the MikroTik CHR router "cpe1" that reports firmware as installed but keeps its version is switched on
    When the operator adds the upgrade batch "CHR to 6.48.4"
      | field            | value              |
      | group            | MikroTik CHR       |
      | original version | 6.48               |
      | file             | upgrade_6.48.4.xml |
      | new version      | 6.48.4             |
      | event            | Inform             |
    And 1 hour passes
    Then soon the ACS received from "cpe1" a TransferComplete with fault 0
    And the status of "cpe1" in batch "CHR to 6.48.4" is installed
    When 30 minutes pass
    Then the status of "cpe1" in batch "CHR to 6.48.4" is Error
    And the batch "CHR to 6.48.4" reports for "cpe1" that the version did not change
    And router "cpe1" still runs RouterOS 6.48
    # One attempt (the default) is all it gets.
    When 1 day passes
    Then the ACS sent "cpe1" 1 Download

  Scenario: An Error is retried at later Informs until the attempts are exhausted
    Given the MikroTik CHR router "cpe1" that reports firmware as installed but keeps its version is switched on
    When the operator adds the upgrade batch "CHR to 6.48.4"
      | field                  | value              |
      | group                  | MikroTik CHR       |
      | original version       | 6.48               |
      | file                   | upgrade_6.48.4.xml |
      | new version            | 6.48.4             |
      | event                  | Inform             |
      | max number of attempts | 3                  |
    And 2 days pass
    Then the status of "cpe1" in batch "CHR to 6.48.4" is Error
    And "cpe1" used 3 of its attempts in batch "CHR to 6.48.4"
    And the ACS sent "cpe1" 3 Downloads

  Scenario: Max devices per day spreads ten routers over four days
    Given the MikroTik CHR routers "cpe1" to "cpe10" are switched on, informing every 4 hours
    When the operator adds the upgrade batch "three a day"
      | field               | value              |
      | group               | MikroTik CHR       |
      | original version    | 6.48               |
      | file                | upgrade_6.48.4.xml |
      | new version         | 6.48.4             |
      | event               | Inform             |
      | max devices per day | 3                  |
    And 4 days pass
    Then the batch "three a day" started upgrades on 3, 3, 3 and 1 devices on successive days
    And every device in batch "three a day" is Ready

  Scenario: Force upgrade (now) ignores the window and reaches the router with a Connection Request
    Given the MikroTik CHR routers "cpe1" and "cpe2" are switched on
    When the operator adds the upgrade batch "weekends"
      | field            | value              |
      | group            | MikroTik CHR       |
      | original version | 6.48               |
      | file             | upgrade_6.48.4.xml |
      | new version      | 6.48.4             |
      | days             | Sat, Sun           |
      | event            | Boot               |
    And the operator forces the upgrade of "cpe2" in batch "weekends" now
    Then soon router "cpe2" runs RouterOS 6.48.4
    And router "cpe1" still runs RouterOS 6.48
    When 31 minutes pass
    Then the status of "cpe2" in batch "weekends" is Ready
    And the status of "cpe1" in batch "weekends" is queued

  Scenario: Discard upgrade takes a router out of the queue
    Given the MikroTik CHR routers "cpe1" and "cpe2" are switched on
    When the operator adds the upgrade batch "CHR to 6.48.4"
      | field            | value              |
      | group            | MikroTik CHR       |
      | original version | 6.48               |
      | file             | upgrade_6.48.4.xml |
      | new version      | 6.48.4             |
      | event            | Inform             |
      | hours            | 2-3                |
    And the operator discards the upgrade of "cpe2" in batch "CHR to 6.48.4"
    And it is Tuesday 06:00 UTC
    Then the status of "cpe1" in batch "CHR to 6.48.4" is Ready
    And the status of "cpe2" in batch "CHR to 6.48.4" is discarded
    And router "cpe2" still runs RouterOS 6.48
    And the ACS sent "cpe2" 0 Downloads

  Scenario: Find new devices adds a router that came online after the batch was added
    Given the MikroTik CHR router "cpe1" is switched on
    When the operator adds the upgrade batch "CHR to 6.48.4"
      | field            | value              |
      | group            | MikroTik CHR       |
      | original version | 6.48               |
      | file             | upgrade_6.48.4.xml |
      | new version      | 6.48.4             |
      | event            | Boot               |
    Given the MikroTik CHR router "cpe2" is switched on
    Then the devices for upgrade in batch "CHR to 6.48.4" are "cpe1"
    When the operator clicks "Find new devices" in batch "CHR to 6.48.4"
    Then the devices for upgrade in batch "CHR to 6.48.4" are "cpe1" and "cpe2"
    When the operator reboots "cpe2" through the ACS
    Then soon router "cpe2" runs RouterOS 6.48.4
    And router "cpe1" still runs RouterOS 6.48

@embedded:tr069
Feature: TR-069 upgrade files, the Devices page's Upgrade action, and upgrades that fail
  Files under Networking → TR-069 (ACS) → Files carry a CWMP FileType: a firmware upgrade (for
  MikroTik the XML naming the .npk packages, which the router fetches one by one) or a vendor
  configuration file, which a MikroTik runs as a script when its name ends in ".alter". A router
  reports each transfer with TransferComplete; a failed one is an Error of the batch, retried at a
  later Inform while attempts remain. (Seed 002; fault codes: TR-069 Amendment 6 Table 59.)

  Background:
    Given the time is 2026-01-05T09:00:00Z
    And the ACS asks routers for Digest credentials "cpe" with password "s3cret-cpe"
    And the operator writes the upgrade file "upgrade_6.48.4.xml" linking "routeros-x86-6.48.4.npk" and "tr069-client-6.48.4.npk" on the ACS file server
    And the operator uploads these files
      | file                    | type | OUI    | product class | version |
      | routeros-x86-6.48.4.npk | 1    | E48D8C | CHR           | 6.48.4  |
      | tr069-client-6.48.4.npk | 1    | E48D8C | CHR           | 6.48.4  |
      | upgrade_6.48.4.xml      | 1    | E48D8C | CHR           | 6.48.4  |
    And the operator creates the group "MikroTik CHR" for OUI "E48D8C" and product class "CHR"

  Scenario: A corrupted package fails with fault 9018; after a good upload the retry succeeds
    Given a corrupted copy of "routeros-x86-6.48.4.npk"
    And the operator uploads these files
      | file                    | type | OUI    | product class | version |
      | routeros-x86-6.48.4.npk | 1    | E48D8C | CHR           | 6.48.4  |
    And the MikroTik CHR router "cpe1" is switched on
    When the operator adds the upgrade batch "CHR to 6.48.4"
      | field                  | value              |
      | group                  | MikroTik CHR       |
      | original version       | 6.48               |
      | file                   | upgrade_6.48.4.xml |
      | new version            | 6.48.4             |
      | event                  | Inform             |
      | max number of attempts | 2                  |
    And 1 hour passes
    Then soon the ACS received from "cpe1" a TransferComplete with fault 9018
    And the status of "cpe1" in batch "CHR to 6.48.4" is Error
    And the batch "CHR to 6.48.4" reports for "cpe1" the fault 9018
    And router "cpe1" still runs RouterOS 6.48
    # The operator downloads the package again and replaces the broken one.
    When the operator uploads "routeros-x86-6.48.4.npk" again
    And 1 hour passes
    Then soon router "cpe1" runs RouterOS 6.48.4
    When 31 minutes pass
    Then the status of "cpe1" in batch "CHR to 6.48.4" is Ready
    And "cpe1" used 2 of its attempts in batch "CHR to 6.48.4"

  Scenario: A package missing from the file server is a download failure
    Given the operator deletes the file "tr069-client-6.48.4.npk"
    And the MikroTik CHR router "cpe1" is switched on
    When the operator adds the upgrade batch "CHR to 6.48.4"
      | field            | value              |
      | group            | MikroTik CHR       |
      | original version | 6.48               |
      | file             | upgrade_6.48.4.xml |
      | new version      | 6.48.4             |
      | event            | Inform             |
    And 1 hour passes
    # 9016: the file server answered 404 for the XML's second link.
    Then soon the ACS received from "cpe1" a TransferComplete with fault 9016
    And the status of "cpe1" in batch "CHR to 6.48.4" is Error
    And router "cpe1" still runs RouterOS 6.48

  Scenario: Wrong file server credentials in the Download fail with fault 9012 until corrected
    Given the file server requires the user "files" with password "s3cret"
    And the ACS gives routers the file server credentials "files" with password "wrong"
    And the MikroTik CHR router "cpe1" is switched on
    When the operator adds the upgrade batch "CHR to 6.48.4"
      | field                  | value              |
      | group                  | MikroTik CHR       |
      | original version       | 6.48               |
      | file                   | upgrade_6.48.4.xml |
      | new version            | 6.48.4             |
      | event                  | Inform             |
      | max number of attempts | 2                  |
    And 1 hour passes
    Then soon the ACS received from "cpe1" a TransferComplete with fault 9012
    And the status of "cpe1" in batch "CHR to 6.48.4" is Error
    Given the ACS gives routers the file server credentials "files" with password "s3cret"
    When 1 hour passes
    Then soon router "cpe1" runs RouterOS 6.48.4
    And the ACS received from "cpe1" a TransferComplete with fault 0

  Scenario: A router offline during the window is not upgraded outside it, but in the next window
    Given the MikroTik CHR routers "cpe1", "cpe2" and "cpe3" are switched on
    When the operator adds the upgrade batch "nightly"
      | field            | value              |
      | group            | MikroTik CHR       |
      | original version | 6.48               |
      | file             | upgrade_6.48.4.xml |
      | new version      | 6.48.4             |
      | hours            | 2-3                |
      | event            | Inform             |
    And it is Tuesday 01:30 UTC
    Given the link between "cpe3" and the ACS endpoint is refused
    When it is Tuesday 04:30 UTC
    Then the status of "cpe1" and "cpe2" in batch "nightly" is Ready
    And the status of "cpe3" in batch "nightly" is queued
    When the link between "cpe3" and the ACS endpoint is restored
    And it is Tuesday 23:30 UTC
    Then the ACS shows software version "6.48" for "cpe3"
    And router "cpe3" still runs RouterOS 6.48
    And the ACS sent "cpe3" 0 Downloads
    When it is Wednesday 04:00 UTC
    Then router "cpe3" runs RouterOS 6.48.4
    And every device in batch "nightly" is Ready

  Scenario: A vendor configuration ".alter" file runs as a script on the router's configuration
    Given the MikroTik CHR router "cpe1" is switched on
    When the operator uploads these files
      | file               | type                          | OUI    | product class | version |
      | set-identity.alter | 3 Vendor Configuration File   | E48D8C | CHR           |         |
    And the operator runs the "Upgrade" action with "set-identity.alter" on the selected devices "cpe1"
    Then soon the ACS received from "cpe1" a TransferComplete with fault 0
    And router "cpe1" has the system identity "branch-office-7"
    And router "cpe1" informs every 10 minutes
    And router "cpe1" ran the script on its configuration instead of replacing it
    And router "cpe1" still runs RouterOS 6.48

  Scenario: The Devices page's mass Upgrade action upgrades the selected routers only
    Given the MikroTik CHR routers "cpe1", "cpe2" and "cpe3" are switched on
    When the operator runs the "Upgrade" action with "upgrade_6.48.4.xml" on the selected devices "cpe1" and "cpe3"
    Then soon router "cpe1" runs RouterOS 6.48.4
    And soon router "cpe3" runs RouterOS 6.48.4
    And the ACS shows software version "6.48.4" for "cpe1" and "cpe3"
    And router "cpe2" still runs RouterOS 6.48
    And the ACS sent "cpe2" 0 Downloads

@embedded:cups
Feature: A Basics Station recovers from interrupted upgrades and LNS trouble
  Faults from the field: a CUPS download cut mid-way, an update program that leaves its file
  behind before a power cut, an LNS that turns the station away. The station retries CUPS 1 minute
  after a failed session while it is off the LNS, and at its regular 24-hour check while it is on
  the LNS (basicstation 2.0.6, cups_ondone). CUPS runs over TLS, whose records carry up to
  16 KiB: a download is cut after 40 KiB so that the reply's head has arrived whole.

  Background:
    Given the firmware team prepares the signature key "release"
    And station "gw1" is provisioned with package "v0" and the signature key "release"

  Scenario: A download cut while the station cannot reach its LNS is retried after 1 minute
    Given an update file "v1.bin" of 64 KiB that installs package "v1"
    And the firmware team signs "v1.bin" with the key "release"
    And the operator uploads "v1.bin" as package "v1" for station "gw1"
    And the link between "gw1" and the lns endpoint is refused
    And the link between "gw1" and the cups endpoint is cut after 40 KiB
    When station "gw1" is switched on
    Then soon station "gw1" runs package "v1"
    And the CUPS download of station "gw1" was cut off
    And station "gw1" asked CUPS again 1 minute after the cut download
    When the link between "gw1" and the lns endpoint is restored
    Then soon the registry shows package "v1" reported by station "gw1" to the LNS

  Scenario: A new station whose first download is cut joins the LNS on its old package
    Given an update file "v1.bin" of 64 KiB that installs package "v1"
    And the firmware team signs "v1.bin" with the key "release"
    And the operator uploads "v1.bin" as package "v1" for station "gw1"
    And the link between "gw1" and the cups endpoint is cut after 40 KiB
    When station "gw1" is switched on
    # The LNS address arrived before the cut and is kept; once on the LNS, the station leaves
    # CUPS to its regular check.
    Then soon station "gw1" is connected to the LNS
    And the CUPS download of station "gw1" was cut off
    And station "gw1" still runs package "v0"
    When 1 day passes
    Then soon station "gw1" runs package "v1"
    And station "gw1" asked CUPS again 1 day after the cut download

  Scenario: A download cut while the station is on the LNS waits for the next regular check
    Given an update file "v1.bin" of 64 KiB that installs package "v1"
    And the firmware team signs "v1.bin" with the key "release"
    When station "gw1" is switched on
    Then soon station "gw1" is connected to the LNS
    When the operator uploads "v1.bin" as package "v1" for station "gw1"
    And the link between "gw1" and the cups endpoint is cut after 40 KiB
    And 1 day passes
    Then the CUPS download of station "gw1" was cut off
    And station "gw1" still runs package "v0"
    When 1 day passes
    Then soon station "gw1" runs package "v1"
    And station "gw1" asked CUPS again 1 day after the cut download
    And soon the registry shows package "v1" reported by station "gw1" to the LNS

  Scenario: An update file left behind runs again when the station restarts after a power cut
    Given an update file "v1.bin" that installs package "v1" but leaves update.bin behind
    And the firmware team signs "v1.bin" with the key "release"
    When station "gw1" is switched on
    Then soon station "gw1" is connected to the LNS
    When the operator uploads "v1.bin" as package "v1" for station "gw1"
    And device "gw1" reboots
    Then soon the update program of station "gw1" has run 1 time
    When device "gw1" loses power
    Then soon station "gw1" is connected to the LNS
    And the update program of station "gw1" has run 2 times
    And station "gw1" ran the leftover update.bin again at startup
    And the registry shows package "v1" reported by station "gw1" to the LNS

  Scenario: A station the LNS turns away asks CUPS again
    When station "gw1" is switched on
    Then soon station "gw1" is connected to the LNS
    When the LNS rejects station "gw1" because "under maintenance"
    Then station "gw1" asks CUPS again within 2 minutes
    And station "gw1" was turned away by the LNS: "under maintenance"
    When the LNS accepts station "gw1" again
    Then soon station "gw1" is connected to the LNS

@embedded:fuota
Feature: LoRaWAN firmware update campaigns (FUOTA)
  The FUOTA server runs the seed's firmware update campaign — McGroupSetup, DevRebootTime,
  FragSessionSetup, McClassCSessionSetup, DlFragment, UpgradeImage, completion verification —
  through the network server, the LNS websocket and a Basics Station onto the radio, where end
  devices with their FUOTA agents answer. Images are a few KiB at DR5, so a campaign takes simulated
  hours and a few wall seconds.

  Background:
    Given a LoRaWAN gateway "gw1" at 0 m, 0 m
    And a firmware image of 3 KiB for version 1.1.0

  Scenario: A campaign with FEC upgrades every device
    Given a FUOTA device "a" at 800 m, 0 m
    And a FUOTA device "b" at 0 m, 1200 m
    And a FUOTA device "c" at 500 m, 500 m
    When a FUOTA campaign starts for "a", "b" and "c" with
      | setting    | value |
      | fec        | true  |
      | redundancy | 0.2   |
    Then the FUOTA campaign ends finished
    And the FUOTA campaign ran the stages 1, 3, 4, 5, 6, 7
    And "a", "b" and "c" passed the FUOTA campaign
    And "a", "b" and "c" run firmware 1.1.0
    And "a" rebooted 1 time
    And "a", "b" and "c" hold no firmware image

  Scenario: FEC off: a device below the success threshold gets a second round
    Given a FUOTA device "a" at 800 m, 0 m
    And a FUOTA device "b" at 600 m, 0 m
    And "b" loses 100% of the fragments in round 1
    When a FUOTA campaign starts for "a" and "b" with
      | setting           | value |
      | fec               | false |
      | success_threshold | 1.0   |
      | max_rounds        | 2     |
    Then the FUOTA campaign ends finished
    And the FUOTA campaign ran the stages 1, 3, 4, 5, 6, 3, 4, 5, 6, 7
    And "a" and "b" passed the FUOTA campaign
    And "a" and "b" run firmware 1.1.0

  Scenario: Lost fragments are recovered by FEC
    The parity code is not MDS: with few fragments an unlucky loss pattern leaves a fragment no
    received coded row covers (LoRaMac-node's decoder agrees), so this image has 29 fragments and
    as many coded ones.
    Given a firmware image of 6 KiB for version 1.1.0
    And a FUOTA device "spec" at 800 m, 0 m
    And a FUOTA device "node" at 700 m, 0 m
      | setting | value        |
      | profile | loramac-node |
    And "spec" loses 25% of the fragments in round 1
    And "node" loses 25% of the fragments in round 1
    When a FUOTA campaign starts for "spec" and "node" with
      | setting    | value |
      | redundancy | 1.0   |
      | max_rounds | 1     |
    Then the FUOTA campaign ends finished
    And "spec" lost uncoded fragments that FEC rebuilt
    And "node" lost uncoded fragments that FEC rebuilt
    And "spec" and "node" passed the FUOTA campaign
    And "spec" and "node" run firmware 1.1.0

  Scenario: A device with too much loss fails verification
    Given a FUOTA device "good" at 800 m, 0 m
    And a FUOTA device "bad" at 600 m, 0 m
    And "bad" loses 70% of the fragments in round 1
    When a FUOTA campaign starts for "good" and "bad" with
      | setting           | value |
      | redundancy        | 0.2   |
      | max_rounds        | 1     |
      | success_threshold | 0.5   |
    Then the FUOTA campaign ends finished
    And "good" passed the FUOTA campaign
    And "bad" failed the FUOTA campaign with "no complete image"
    And "good" runs firmware 1.1.0
    And "bad" runs firmware 1.0.0
    And "bad" rebooted 0 times

  Scenario: The devices reboot at the reboot time the campaign scheduled
    Given a FUOTA device "a" at 800 m, 0 m
    And a FUOTA device "b" at 0 m, 900 m
    When a FUOTA campaign starts for "a" and "b" with
      | setting   | value   |
      | reboot in | 3 hours |
    Then the FUOTA campaign ends finished
    And the FUOTA campaign ran the stages 1, 2, 3, 4, 5, 6, 7
    And the devices reported a version only after the programmed reboot time
    And "a" and "b" passed the FUOTA campaign
    And "a" and "b" run firmware 1.1.0

  Scenario: A corrupted image is refused with status 1
    Given a firmware image of 3 KiB for version 1.1.0 corrupted
    And a FUOTA device "a" at 800 m, 0 m
    When a FUOTA campaign starts for "a" with
      | setting    | value |
      | fec        | false |
      | max_rounds | 1     |
    Then the FUOTA campaign ends finished
    And "a" answered DevUpgradeImageReq with status 1
    And "a" failed the FUOTA campaign with "corrupt"
    And "a" runs firmware 1.0.0
    And "a" rebooted 0 times

  Scenario: A badly signed image is refused with status 1
    Given a firmware image of 3 KiB for version 1.1.0 signed with an unknown key
    And a FUOTA device "a" at 800 m, 0 m
    When a FUOTA campaign starts for "a" with
      | setting    | value |
      | max_rounds | 1     |
    Then the FUOTA campaign ends finished
    And "a" answered DevUpgradeImageReq with status 1
    And "a" failed the FUOTA campaign with "badly signed"
    And "a" runs firmware 1.0.0

  Scenario: An image for other hardware is refused with status 2
    Given a firmware image of 3 KiB for version 1.1.0 for hardware 0x00AB0002
    And a FUOTA device "a" at 800 m, 0 m
    When a FUOTA campaign starts for "a" with
      | setting    | value |
      | max_rounds | 1     |
    Then the FUOTA campaign ends finished
    And "a" answered DevUpgradeImageReq with status 2
    And "a" failed the FUOTA campaign with "other hardware"
    And "a" runs firmware 1.0.0

  Scenario: A device whose clock is off misses the session until clock sync corrects it
    Both devices' clocks are 5 minutes behind, so the session would start late for them; "synced"
    asks for the time after boot (TS003 AppTimeReq) and is corrected, "late" never asks.
    Given a FUOTA device "synced" at 800 m, 0 m
      | setting      | value     |
      | clock behind | 5 minutes |
    And a FUOTA device "late" at 600 m, 0 m
      | setting            | value     |
      | clock behind       | 5 minutes |
      | clock sync at boot | no        |
    When a FUOTA campaign starts for "synced" and "late" with
      | setting           | value |
      | max_rounds        | 1     |
      | success_threshold | 0.5   |
    Then the FUOTA campaign ends finished
    And "synced" heard fragments
    And "late" heard no fragment
    And "synced" passed the FUOTA campaign
    And "late" failed the FUOTA campaign with "no complete image"
    And "late" runs firmware 1.0.0

  Scenario: A FUOTA server restart mid-campaign resumes the campaign
    Given a FUOTA device "a" at 800 m, 0 m
    And a FUOTA device "b" at 600 m, 0 m
    When a FUOTA campaign starts for "a" and "b"
    And 3 fragments have gone out
    And the FUOTA server restarts
    Then the FUOTA campaign ends finished
    And the FUOTA campaign resumed in stage 5
    And no fragment was sent twice
    And "a" and "b" passed the FUOTA campaign
    And "a" and "b" run firmware 1.1.0

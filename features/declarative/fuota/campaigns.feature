@embedded:fuota
Feature: FUOTA campaigns in a few lines
  The LoRaWAN FUOTA flow said the way a device team says it: devices running a version, an image
  available, a campaign with its settings in words, and what the devices run afterwards. Each line
  runs the detailed steps of features/fuota/ underneath.

  Scenario: Every device takes the new version in one campaign
    Given 3 FUOTA devices running version 1.0.0
    And firmware 1.1.0 of 3 KiB is available
    When I upgrade every device to version 1.1.0
    Then the campaign ends finished
    And every device runs firmware 1.1.0
    And every upgrade ends succeeded
    And the firmware 1.1.0 image is 3 KiB

  Scenario: Without FEC, a device that lost its fragments gets a second round
    Given the devices a and b run version 1.0.0
    And b loses 100% of the fragments
    When I start a campaign to version 1.1.0 without FEC, a success threshold of 100% and at most 2 rounds
    Then the campaign ends finished
    And a and b run version 1.1.0

  Scenario: A device that loses power during the campaign ends failed, the others upgrade
    Given 3 FUOTA devices running version 1.0.0
    And d2 loses power during the campaign
    When I start a campaign to version 1.1.0 without FEC and at most 1 round
    Then the campaign ends finished
    And d2 lost power during the campaign
    And the upgrade of d2 ends failed
    And d2 still runs version 1.0.0
    And d1 and d3 run version 1.1.0

  Scenario: An image the devices reject fails every upgrade
    Given 2 FUOTA devices running version 1.0.0
    And firmware 1.1.0 signed with an unknown key is available
    When I upgrade every device to firmware "1.1.0"
    Then every upgrade ends failed
    And the upgrade of d1 ends failed because "badly signed"
    And every device still runs version 1.0.0

  Scenario: FEC makes up for a device's lost downlinks
    Given the FUOTA devices d1 and d2 run version 1.0.0
    And d2 loses 30% of its downlinks
    When I start a campaign to version 1.1.0 with FEC and redundancy 50%
    Then the campaign ends finished
    And every device runs version 1.1.0
    And d1 heard at least 20 fragments
    And d2 heard at most 20 fragments
    And "d2" lost uncoded fragments that FEC rebuilt

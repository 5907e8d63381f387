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

  Scenario: Without FEC, a device that lost its fragments gets a second round
    Given the devices a and b run version 1.0.0
    And b loses 100% of the fragments
    When I start a campaign to version 1.1.0 without FEC, a success threshold of 100% and at most 2 rounds
    Then the campaign ends finished
    And a and b run version 1.1.0

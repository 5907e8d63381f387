@embedded:fuota
Feature: Over-the-air campaigns for LoRaWAN sensors

  Scenario: Sensors with a bad downlink still upgrade thanks to FEC
    Given 3 FUOTA devices running version 1.0.0
    And firmware 1.1.0 of 4 KiB is available
    And d3 loses 10% of its downlinks
    When I start a campaign to version 1.1.0 with FEC and redundancy 50%
    Then the campaign ends finished
    And every device runs version 1.1.0
    And d3 heard fewer fragments than d1

  Scenario: A sensor that loses power mid-campaign catches up in the next round
    Given 2 FUOTA devices running version 1.0.0
    And d2 loses power during the campaign
    When I upgrade every device to 1.1.0
    Then the upgrade of d1 ends succeeded
    And the upgrade of d2 ends succeeded
    And d2 lost power during the campaign
    And both devices run 1.1.0

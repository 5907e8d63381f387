@embedded:cups
Feature: LoRa gateway station updates

  Scenario: Gateway power cut in the middle of an update
    Given a Basics Station "gw-roof" running package 2.0.5
    And firmware 2.0.6 of 48 KiB is available
    And the station gw-roof loses power during the download
    When I upgrade gw-roof to version 2.0.6
    And 1 day passes
    Then soon gw-roof runs version 2.0.6
    And gw-roof lost power during the download
    And the update 2.0.6 is 48 KiB

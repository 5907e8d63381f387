@embedded:cups
Feature: Basics Station updates in a few lines
  The CUPS flow said the way a LoRaWAN network team says it: stations running a package, a signed
  update available, an upgrade, and what the stations run after their daily CUPS check. Each line
  runs the detailed steps of features/cups/ underneath.

  Scenario: A station takes the update at its next daily CUPS check
    Given a Basics station "gw1" running package v0
    And firmware v1 is available
    When I upgrade gw1 to version v1
    And 23 hours pass
    Then gw1 still runs version v0
    When 1 hour passes
    Then soon gw1 runs version v1
    And soon the upgrade of gw1 ends succeeded
    And gw1 reports package v1 to the LNS

  Scenario: Two stations, one download cut on the way, both arrive a day later
    Given 2 stations running package "v0"
    And firmware "v1" of 64 KiB is available
    And the download to station gw2 is cut after 40 KiB
    When I upgrade every station to package "v1"
    And 1 day passes
    Then gw1 runs version v1
    And gw2 still runs version v0
    When 1 day passes
    Then soon every station runs version v1
    And soon every upgrade ends succeeded

  Scenario: An update signed with a key the station does not hold never reaches it
    Given a station gw1 running package v0
    And firmware v1 signed with an unknown key is available
    When I upgrade gw1 to version v1
    And 1 day passes
    Then gw1 still runs version v0
    And soon the upgrade of gw1 ends failed

  Scenario: A station that loses power mid-download takes the update when it is back
    Given a Basics station gw1 running package v0
    And firmware v1 of 32 KiB is available
    And gw1 loses power during the download
    When I upgrade gw1 to v1
    And 1 day passes
    Then soon gw1 runs version v1
    And gw1 lost power during the download
    And the update v1 is 32 KiB
    And the upgrade of gw1 ends succeeded

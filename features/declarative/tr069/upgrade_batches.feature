@embedded:tr069
Feature: Router upgrades through the ACS in a few lines
  The TR-069 flow said the way an operator says it: MikroTik routers running RouterOS, the new
  version's files uploaded, an upgrade batch, and what the routers run afterwards. Each line runs
  the detailed steps of features/tr069/ underneath.

  Scenario: One router upgraded now
    Given a MikroTik router "cpe1" running RouterOS 6.48
    And RouterOS 6.48.4 is available
    When I upgrade cpe1 to version 6.48.4
    Then soon cpe1 runs version 6.48.4
    And soon the upgrade of cpe1 ends Ready

  Scenario: A batch upgrades every router at its next Inform
    Given 2 routers running version 6.48
    When I create the upgrade batch "spring" to RouterOS 6.48.4 at any Inform
    Then soon every router runs RouterOS 6.48.4
    And soon the batch ends succeeded

  Scenario: A download cut on the way fails once and the next attempt upgrades the router
    Given the router cpe1 runs firmware "6.48"
    And the download to cpe1 is cut after 6 KiB
    When I create an upgrade batch to 6.48.4 at any Inform with at most 2 attempts
    Then the upgrade of cpe1 ends failed with fault 9017
    And cpe1 still runs version 6.48
    Then soon cpe1 runs version 6.48.4
    And cpe1 reports RouterOS 6.48.4 to the ACS
    And cpe1 needed 2 attempts

  Scenario: A router that loses power during the download gets it again at a later Inform
    Given the routers cpe1 and cpe2 run RouterOS 6.48
    And cpe2 loses power during the download
    When I create the batch "autumn" to 6.48.4 at any Inform, with at most 3 attempts
    Then soon the upgrade of cpe2 ends failed
    And cpe2 still runs RouterOS 6.48
    Then soon all the routers run version 6.48.4
    And soon the batch "autumn" ends Ready

  Scenario: A router is upgraded within the hour, from the files on the ACS
    Given a router cpe1 running RouterOS 6.48
    When I upgrade cpe1 to 6.48.4
    Then cpe1 runs RouterOS 6.48.4 within 1 hour
    And the RouterOS 6.48.4 package is 4128 bytes

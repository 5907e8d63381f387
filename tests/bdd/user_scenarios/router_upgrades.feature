@embedded:tr069
Feature: Router upgrades from the ACS

  Scenario: Night batch for the CHR routers
    Given 3 MikroTik routers running RouterOS 6.48
    When I create an upgrade batch "night" to RouterOS 6.48.4 at the next Inform with at most 3 attempts
    Then within 2 hours all routers run RouterOS 6.48.4
    And the batch "night" ends Ready

  Scenario: A router loses power while downloading
    Given routers cpe1 and cpe2 running RouterOS 6.48
    And cpe1 loses power during the download
    When I create the batch "retry" to 6.48.4 at any Inform with at most 3 attempts
    Then soon every router runs RouterOS 6.48.4
    And the upgrade of cpe2 ends succeeded

@embedded:cups
Feature: CUPS hands a Basics Station new URIs and credentials
  Besides firmware, a CUPS answer can carry a new CUPS URI, a new TC (LNS) URI and their
  credential sets. The station stores them exactly as sent, keeps its previous set as backup,
  calls a new CUPS at once, restarts its LNS connection on a TC change, and from then on reports
  the CRC32 of each stored set, so that CUPS does not send it again.

  Scenario: New CUPS and TC URIs and credentials are stored byte for byte and confirmed by CRC
    Given station "gw1" is provisioned with package "v0" and no signature key
    When station "gw1" is switched on
    Then soon station "gw1" is connected to the LNS
    When the operator moves station "gw1" to the CUPS URI "${endpoint.cups}/cups-v2" with a trust certificate and the token "Authorization: Bearer cups-2"
    And the operator moves station "gw1" to the TC URI "${endpoint.lns}/tc-v2" with a trust certificate, a client certificate and its key
    And 1 day passes
    Then station "gw1" uses the CUPS URI "${endpoint.cups}/cups-v2"
    And station "gw1" uses the TC URI "${endpoint.lns}/tc-v2"
    And station "gw1" kept its previous CUPS URI "${endpoint.cups}" as backup
    And station "gw1" stored its new CUPS credentials byte for byte
    And station "gw1" stored its new TC credentials byte for byte
    And station "gw1" reports the CRC of its new CUPS credentials to CUPS
    And station "gw1" reports the CRC of its new TC credentials to CUPS
    And soon station "gw1" is connected to the LNS

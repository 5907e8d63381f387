@embedded:cups
Feature: CUPS rotates a Basics Station's credentials
  CUPS runs over HTTPS and the LNS over WSS. A station authenticates with the files of its
  credential set: a client certificate bound to its EUI, or a token its `.key` file holds and it
  sends as an HTTP Authorization header. Besides firmware, a CUPS answer can carry a new CUPS URI,
  a new TC (LNS) URI and their credential sets: the station stores them exactly as sent, keeps its
  previous set as backup, restarts its LNS connection on a TC change, and from then on reports the
  CRC32 of each stored set, so that CUPS does not send it again (basicstation 2.0.6). A station
  whose regular set keeps failing falls back to its backup set after more than 6 failed sessions
  in a row: that is how a station handed a broken credential finds its way back.

  Background:
    Given station "gw1" is provisioned with package "v0" and no signature key
    When station "gw1" is switched on
    Then soon station "gw1" is connected to the LNS

  Scenario: A rotated TC client certificate is stored byte for byte and used on the LNS
    When the operator rotates the TC credentials of station "gw1" to a new client certificate
    And 1 day passes
    Then station "gw1" stored its new TC credentials byte for byte
    And soon station "gw1" is connected to the LNS
    And the LNS saw station "gw1" connect with its new TC credentials
    When 1 day passes
    Then station "gw1" reports the CRC of its new TC credentials to CUPS

  Scenario: A station moves from its client certificate to a token for CUPS
    When the operator rotates the CUPS credentials of station "gw1" to a new token
    And 1 day passes
    Then station "gw1" stored its new CUPS credentials byte for byte
    When 1 day passes
    Then CUPS saw station "gw1" come with its new CUPS credentials
    And station "gw1" reports the CRC of its new CUPS credentials to CUPS

  Scenario: A CUPS CA change comes with the new CUPS URI, and the old set stays as backup
    Given the CUPS server also answers at "cups-new-ca" with a certificate of a new CA
    When the operator moves station "gw1" to the CUPS URI "${endpoint.cups-new-ca}" trusting the new CA of "cups-new-ca"
    And 2 days pass
    Then station "gw1" uses the CUPS URI "${endpoint.cups-new-ca}"
    And station "gw1" kept its previous CUPS URI "${endpoint.cups}" as backup
    And station "gw1" stored its new CUPS credentials byte for byte
    And the last CUPS request of station "gw1" came to "cups-new-ca"
    And CUPS saw station "gw1" come with its new CUPS credentials
    And station "gw1" reports the CRC of its new CUPS credentials to CUPS

  Scenario: A rotation to a broken trust falls back to the backup set, through which the repair arrives
    When the operator rotates the CUPS credentials of station "gw1" to a trust of an unrelated CA
    And 1 day passes
    Then station "gw1" stored its new CUPS credentials byte for byte
    # On the LNS the station checks CUPS once a day; with the broken trust every check fails.
    When 2 days pass
    Then station "gw1" failed its last CUPS check: CERTIFICATE_VERIFY_FAILED
    # The repair waits in the twin: the station receives it once it falls back to its BAK set,
    # after 8 failed checks in a row.
    When the operator rotates the CUPS credentials of station "gw1" to a new client certificate
    And 8 days pass
    Then station "gw1" reached CUPS with its backup credentials
    And station "gw1" stored its new CUPS credentials byte for byte
    When 1 day passes
    Then CUPS saw station "gw1" come with its new CUPS credentials
    And station "gw1" reports the CRC of its new CUPS credentials to CUPS
    And station "gw1" is connected to the LNS

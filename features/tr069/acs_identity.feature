@embedded:tr069
Feature: Routers reach the ACS over HTTPS and prove who they are
  The ACS, its file server and its admin API speak HTTPS with the server certificate of the
  scenario's PKI; a router checks it against the CA it was given before it says anything. Routers
  may also have to log in with HTTP Digest: the ACS's nonces expire and their counts must rise,
  so a captured login cannot be replayed. cwmp-sim repeats nc=00000001 on every request; the ACS
  lets that through only for the devices it names (by serial number pattern or OUI).

  Background:
    Given the time is 2026-01-05T09:00:00Z
    And the operator writes the upgrade file "upgrade_6.48.4.xml" linking "routeros-x86-6.48.4.npk" and "tr069-client-6.48.4.npk" on the ACS file server
    And the operator uploads these files
      | file                    | type | OUI    | product class | version |
      | routeros-x86-6.48.4.npk | 1    | E48D8C | CHR           | 6.48.4  |
      | tr069-client-6.48.4.npk | 1    | E48D8C | CHR           | 6.48.4  |
      | upgrade_6.48.4.xml      | 1    | E48D8C | CHR           | 6.48.4  |

  Scenario: A router that trusts another CA refuses the ACS and is never registered
    When the MikroTik CHR router "cpe1" that trusts only an unrelated CA is switched on
    And 10 minutes pass
    Then router "cpe1" finished no session, the last one failing with `certificate verify failed`
    And the ACS has not registered "cpe1"

  @risk
  Scenario: RISK - a router that does not check the certificate believes any ACS
    # Kept on purpose: many CPEs in the field do not verify the ACS, so whoever answers at the
    # ACS's address (DNS, DHCP option 43, a hijacked route) can send them firmware.
    Given the MikroTik CHR router "cpe1" that does not check the ACS certificate and trusts only an unrelated CA is switched on
    Then the ACS has registered "cpe1"
    When the operator runs the "Upgrade" action with "upgrade_6.48.4.xml" on the selected devices "cpe1"
    Then soon router "cpe1" runs RouterOS 6.48.4

  Scenario: Without an allowance a router that repeats its Digest nonce count cannot finish a session
    Given the ACS asks routers for Digest credentials "cpe" with password "secret"
    When the MikroTik CHR router "sim1" that repeats its Digest nonce count as cwmp-sim does is switched on with credentials "cpe" / "secret"
    And 10 minutes pass
    Then router "sim1" finished no session, the last one failing with `HTTP 401`

  Scenario: A router allowed by its serial number repeats its nonce count and upgrades over HTTPS
    Given the ACS asks routers for Digest credentials "cpe" with password "secret"
    And the ACS lets routers whose serial number matches "SIM*" repeat a Digest nonce count
    And the MikroTik CHR router "cpe1" is switched on with credentials "cpe" / "secret"
    When the MikroTik CHR router "sim1" that repeats its Digest nonce count as cwmp-sim does is switched on with credentials "cpe" / "secret"
    Then soon router "sim1" finished its first session
    When the operator runs the "Upgrade" action with "upgrade_6.48.4.xml" on the selected devices "sim1" and "cpe1"
    Then soon router "sim1" runs RouterOS 6.48.4
    And soon router "cpe1" runs RouterOS 6.48.4
    And the ACS received from "sim1" a TransferComplete with fault 0

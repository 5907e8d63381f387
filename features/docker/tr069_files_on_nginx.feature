@docker @docker-target:nginx-files @embedded:tr069
Feature: The TR-069 file server as nginx in a container
  The seed's file server (https://splynx_domain:7567/<file>) is Debian's nginx in a container:
  HTTPS on a free loopback port with the scenario PKI's server certificate, serving the files the
  operator uploaded to the ACS (fixtures/docker/nginx-files/otaharness.toml). The ACS's Download
  URLs and the MikroTik upgrade XML point at it, and the routers fetch every package from it.

  Background:
    Given the time is 2026-01-05T09:00:00Z
    And the ACS's Download URLs point at the files endpoint of the nginx-files container
    And the operator writes the upgrade file "upgrade_6.48.4.xml" linking "routeros-x86-6.48.4.npk" and "tr069-client-6.48.4.npk" on the ACS file server
    And the operator uploads these files
      | file                    | type                       | OUI    | product class | version |
      | routeros-x86-6.48.4.npk | 1 Firmware Upgrade Image   | E48D8C | CHR           | 6.48.4  |
      | tr069-client-6.48.4.npk | 1 Firmware Upgrade Image   | E48D8C | CHR           | 6.48.4  |
      | upgrade_6.48.4.xml      | 1 Firmware Upgrade Image   | E48D8C | CHR           | 6.48.4  |
    And the operator creates the group "MikroTik CHR" for OUI "E48D8C" and product class "CHR"

  Scenario: Routers upgrade from 6.48 to 6.48.4 with every file from nginx
    Given the MikroTik CHR routers "cpe1" and "cpe2" are switched on
    When the operator adds the upgrade batch "nightly"
      | field            | value              |
      | group            | MikroTik CHR       |
      | original version | 6.48               |
      | file             | upgrade_6.48.4.xml |
      | new version      | 6.48.4             |
      | hours            | 2-3                |
      | event            | Inform             |
    And it is Tuesday 04:00 UTC
    Then router "cpe1" runs RouterOS 6.48.4
    And router "cpe2" runs RouterOS 6.48.4
    And every device in batch "nightly" is Ready
    And the log of the nginx-files container has a line with "GET /upgrade_6.48.4.xml HTTP/1.1" 200"
    And the log of the nginx-files container has a line with "GET /routeros-x86-6.48.4.npk HTTP/1.1" 200"
    And the log of the nginx-files container has a line with "GET /tr069-client-6.48.4.npk HTTP/1.1" 200"

  Scenario: While nginx is down a router's download fails with 9015; after it is started the retry upgrades it
    Given the MikroTik CHR router "cpe1" is switched on
    When the nginx-files container is killed
    And the operator adds the upgrade batch "CHR to 6.48.4"
      | field                  | value              |
      | group                  | MikroTik CHR       |
      | original version       | 6.48               |
      | file                   | upgrade_6.48.4.xml |
      | new version            | 6.48.4             |
      | event                  | Inform             |
      | max number of attempts | 2                  |
    And 1 hour passes
    # 9015: the router cannot reach the file server at all
    Then soon the ACS received from "cpe1" a TransferComplete with fault 9015
    And the status of "cpe1" in batch "CHR to 6.48.4" is Error
    And router "cpe1" still runs RouterOS 6.48
    When the nginx-files container is started again
    And 1 hour passes
    Then soon router "cpe1" runs RouterOS 6.48.4
    When 31 minutes pass
    Then the status of "cpe1" in batch "CHR to 6.48.4" is Ready
    And "cpe1" used 2 of its attempts in batch "CHR to 6.48.4"
    And the log of the nginx-files container has a line with "GET /routeros-x86-6.48.4.npk HTTP/1.1" 200"

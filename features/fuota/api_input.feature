@embedded:fuota
Feature: The FUOTA API refuses what it cannot carry out and keeps serving
  A campaign is checked when it is created: a setting of the wrong type, out of range or not a
  finite number is refused with 400 naming the setting, and nothing is stored, so the campaign
  list and every stored campaign still read. A campaign id that is not one is 400 or 404, never
  a server error. Before any of that, the call must carry the API's own bearer token: without it
  the answer is 401 and the body is not even read.

  Background:
    Given a LoRaWAN gateway "gw1" at 0 m, 0 m
    And a firmware image of 3 KiB for version 1.1.0
    And a FUOTA device "a" at 800 m, 0 m
    And a FUOTA campaign is created for "a"

  Scenario Outline: A setting that is no number, of the wrong type or out of range is refused naming it
    When a FUOTA campaign is created for "a" with <setting> set to <value>
    Then the FUOTA server refused it with 400 naming "$.config.<setting>"
    And the FUOTA server lists 1 campaign and shows it

    Examples:
      | setting           | value    |
      | redundancy        | NaN      |
      | redundancy        | 1e999    |
      | frequency         | "abc"    |
      | name              | {"a": 1} |
      | max_rounds        | 1.5      |
      | fec               | "no"     |
      | unicast_timeout_s | -60      |

  Scenario Outline: A call without the API's own token is refused before its body is read
    When a FUOTA campaign for "a" is sent <credential>
    Then the FUOTA server refused it with 401
    And the FUOTA server lists 1 campaign and shows it

    Examples:
      | credential                     |
      | without a token                |
      | with a forged token            |
      | with the "lorawan-app" token   |

  Scenario: A malformed body without a token is refused as unauthenticated, not read
    When a malformed body of 2 MiB is sent to the FUOTA API without a token
    Then the FUOTA server refused it with 401
    And the FUOTA server lists 1 campaign and shows it

  Scenario Outline: A campaign id that is not one is refused
    When the FUOTA API is asked for campaign "<id>"
    Then the FUOTA server refused it with <status>

    Examples:
      | id                      | status |
      | 12345678901234567890123 | 404    |
      | 99                      | 404    |
      | abc                     | 400    |
      | -1                      | 400    |

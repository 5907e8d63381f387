@embedded:fuota
Feature: Stopping a FUOTA campaign cleans up as the seed says
  A stop in stages 1-4 ends the campaign and cancels every reboot stage 2 programmed
  (DevRebootTimeReq with RebootTime 0xFFFFFFFF); a stop in stages 5-6 also stops the fragments and
  deletes the assembled image (DevDeleteImageReq). The tables list the server's requests after
  the stop, each of which the devices must have heard on the air; the only other thing a device
  may hear is a request the server had queued at the network server before the stop. A unicast cleanup during the class C session reaches a
  device in the class A windows of its first poll after the session.

  Background:
    Given a LoRaWAN gateway "gw1" at 0 m, 0 m
    And a firmware image of 3 KiB for version 1.1.0
    And a FUOTA device "a" at 800 m, 0 m
    And a FUOTA device "b" at 0 m, 900 m
    When a FUOTA campaign starts for "a" and "b" with
      | setting   | value   |
      | reboot in | 5 hours |

  Scenario: A stop in stage 1 sends nothing more
    When the FUOTA campaign reaches stage 1
    And the FUOTA campaign is stopped
    Then the FUOTA campaign ends stopped
    And after the stop the FUOTA server sent exactly these unicast commands and the devices heard them
      | device | command |
    And "a" failed the FUOTA campaign with "campaign stopped in stage 1"
    When the clock goes past the programmed reboot time
    Then "a" and "b" run firmware 1.0.0
    And "a" rebooted 0 times

  Scenario: A stop in stage 2 cancels the programmed reboots
    When every FUOTA device has a reboot programmed
    And the FUOTA campaign is stopped
    Then the FUOTA campaign ends stopped
    And after the stop the FUOTA server sent exactly these unicast commands and the devices heard them
      | device | command                      |
      | a      | DevRebootTimeReq 0xFFFFFFFF  |
      | b      | DevRebootTimeReq 0xFFFFFFFF  |
    When the clock goes past the programmed reboot time
    Then "a" rebooted 0 times
    And "b" rebooted 0 times

  Scenario Outline: A stop in stage <stage> cancels the programmed reboots and nothing else
    When the FUOTA campaign reaches stage <stage>
    And the FUOTA campaign is stopped
    Then the FUOTA campaign ends stopped
    And after the stop the FUOTA server sent exactly these unicast commands and the devices heard them
      | device | command                      |
      | a      | DevRebootTimeReq 0xFFFFFFFF  |
      | b      | DevRebootTimeReq 0xFFFFFFFF  |
    And "b" failed the FUOTA campaign with "campaign stopped in stage <stage>"
    When the clock goes past the programmed reboot time
    Then "a" and "b" run firmware 1.0.0
    And "a" rebooted 0 times
    And "b" rebooted 0 times

    Examples:
      | stage |
      | 3     |
      | 4     |

  Scenario: A stop in stage 5 stops the fragments, cancels the reboots and deletes the image
    When 2 fragments have gone out
    And the FUOTA campaign is stopped
    Then the FUOTA campaign ends stopped
    And at most 1 fragment went out after the stop
    And after the stop the FUOTA server sent exactly these unicast commands and the devices heard them
      | device | command                      |
      | a      | DevRebootTimeReq 0xFFFFFFFF  |
      | a      | DevDeleteImageReq            |
      | b      | DevRebootTimeReq 0xFFFFFFFF  |
      | b      | DevDeleteImageReq            |
    And "a" failed the FUOTA campaign with "campaign stopped in stage 5"
    When the clock goes past the programmed reboot time
    Then "a" and "b" run firmware 1.0.0
    And "a" and "b" hold no firmware image
    And "a" rebooted 0 times

  Scenario: A stop in stage 6 cancels the reboots and deletes the assembled image
    When the FUOTA campaign reaches stage 6
    And the FUOTA campaign is stopped
    Then the FUOTA campaign ends stopped
    And at most 0 fragments went out after the stop
    And after the stop the FUOTA server sent exactly these unicast commands and the devices heard them
      | device | command                      |
      | a      | DevRebootTimeReq 0xFFFFFFFF  |
      | a      | DevDeleteImageReq            |
      | b      | DevRebootTimeReq 0xFFFFFFFF  |
      | b      | DevDeleteImageReq            |
    And "b" failed the FUOTA campaign with "campaign stopped in stage 6"
    When the clock goes past the programmed reboot time
    Then "a" and "b" run firmware 1.0.0
    And "a" and "b" hold no firmware image
    And "b" rebooted 0 times

  Scenario: Deleting a running campaign stops it with the same cleanup, then removes it
    DELETE /campaigns/{id} on a running campaign is a stop first: the cleanup of the stage it was
    in goes out, and the campaign is removed once that is over.
    When 2 fragments have gone out
    And the FUOTA campaign is deleted
    Then the FUOTA campaign is gone once its stop cleanup is over
    And after the deletion the devices heard these unicast commands
      | device | command                      |
      | a      | DevRebootTimeReq 0xFFFFFFFF  |
      | a      | DevDeleteImageReq            |
      | b      | DevRebootTimeReq 0xFFFFFFFF  |
      | b      | DevDeleteImageReq            |
    When the clock goes past the programmed reboot time
    Then "a" and "b" run firmware 1.0.0
    And "a" and "b" hold no firmware image
    And "a" rebooted 0 times

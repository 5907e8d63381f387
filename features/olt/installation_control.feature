@embedded:olt
Feature: Controlling firmware installations
  As an IoT platform team we cancel installations, delete firmware that installations use, and
  schedule installations into maintenance windows; another tenant never sees our firmware.
  (Seed 001's open questions: "How do I schedule the process?", "What does this mean for
  scheduled processes?" — answered as docs/olt-api.md states.)

  Background:
    Given the device type "switch" declares the firmware, bootloader and configuration slots
    And gateway "gw1" connects device "lamp1" of type "switch"

  Scenario: An installation canceled while downloading stops at the gateway
    Given firmware "lamp app" version "2.1.0" with a 64 KiB image
    And the link between "gw1" and the OLT endpoint is throttled to 1 KiB/s
    When I install firmware "lamp app" into the firmware slot of device "lamp1"
    And 10 seconds pass
    Then the installation is downloading
    When I cancel the installation
    Then the installation is canceled
    And the installation's details say "canceled by the tenant"
    And soon gateway "gw1" dropped the installation
    And device "lamp1" has no image in its firmware slot
    # A report that was still on its way finds the installation closed.
    When gateway "gw1" still reports the installation as downloaded
    Then the platform answers 410 Gone

  Scenario: Deleting a firmware cancels the installations still downloading it
    Given firmware "lamp app" version "2.1.0" with a 64 KiB image
    And the link between "gw1" and the OLT endpoint is throttled to 1 KiB/s
    When I install firmware "lamp app" into the firmware slot of device "lamp1"
    And 10 seconds pass
    And I delete firmware "lamp app"
    Then firmware "lamp app" is gone
    And the installation is canceled
    And the installation's details say "firmware deleted"
    And the installation still names firmware "lamp app"
    And soon gateway "gw1" dropped the installation
    And device "lamp1" has no image in its firmware slot

  Scenario: A firmware being written into a device is deleted only after the write
    Given firmware "lamp app" version "2.1.0" with a 32 KiB image
    And device "lamp1" takes 2 seconds to write each chunk
    When I install firmware "lamp app" into the firmware slot of device "lamp1"
    Then soon the installation is installing
    When I try to delete firmware "lamp app"
    Then the platform answers 409 Conflict
    And the answer says "is being installed"
    When I try to cancel the installation
    Then the platform answers 409 Conflict
    And soon the installation is succeeded
    When I delete firmware "lamp app"
    Then firmware "lamp app" is gone
    And the installation still names firmware "lamp app"
    And device "lamp1" reports version "2.1.0" in its firmware slot

  Scenario: An installation scheduled for the evening writes the device in the night's window
    Given the time is 2027-03-02T09:00:00Z
    And firmware "lamp app" version "2.1.0" with a 32 KiB image
    When I install firmware "lamp app" into the firmware slot of device "lamp1" at 2027-03-02T22:00:00Z within the maintenance window 02:00 to 04:00 UTC
    Then the platform created the installation as scheduled
    When 12 hours pass
    Then the installation is scheduled
    And gateway "gw1" has received no installation instruction
    # At 22:00 the instruction goes out; the gateway downloads, then waits for the window.
    When 2 hours pass
    Then gateway "gw1" received the installation instruction over MQTT
    And the installation is downloaded
    And the installation became downloading at 2027-03-02T22:00:00Z
    And device "lamp1" has no image in its firmware slot
    When 3 hours pass
    Then the installation is succeeded
    And the installation became installing at 2027-03-03T02:00:00Z
    And device "lamp1" reports version "2.1.0" in its firmware slot
    And the time is 2027-03-03T02:00:00Z

  Scenario Outline: A call without a tenant's token is refused before its body is read
    When firmware "stray" version "1.0" is sent <credential>
    Then the platform answers 401 Unauthorized
    And my firmware list is empty

    Examples:
      | credential                 |
      | without a token            |
      | with a forged token        |
      | with the operator's token  |

  Scenario: A malformed body without a token is refused as unauthenticated, not read
    When a malformed body of 2 MiB is sent to the firmware API without a token
    Then the platform answers 401 Unauthorized
    And my firmware list is empty

  Scenario: Only the operator creates tenants
    When a tenant's token asks the operator's endpoint for a tenant "squatter"
    Then the platform answers 403 Forbidden
    And the platform has no tenant "squatter"
    When I act as tenant "rival"
    Then the platform has a tenant "rival"

  Scenario: Another tenant can neither see nor install our firmware
    Given firmware "lamp app" version "2.1.0" with a 8 KiB image
    When I act as tenant "rival"
    Then my firmware list is empty
    When I try to read firmware "lamp app"
    Then the platform answers 404 Not Found
    When I try to download firmware "lamp app"
    Then the platform answers 404 Not Found
    Given the device type "rival switch" declares the firmware slot
    And a device "rival lamp" of type "rival switch"
    When I try to install firmware "lamp app" into the firmware slot of device "rival lamp"
    Then the platform answers 404 Not Found
    And the answer says "firmware"
    When I try to install firmware "lamp app" into the firmware slot of device "lamp1"
    Then the platform answers 404 Not Found
    When I act as tenant "default"
    Then my firmware list holds "lamp app"
    And device "lamp1" has no image in its firmware slot

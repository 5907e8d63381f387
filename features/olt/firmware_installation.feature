@embedded:olt
Feature: Deploying binaries to devices through their gateway
  As an IoT platform team we host firmware, bootloaders and configuration files in the OLT
  platform and install them into the slots of devices behind a gateway. (Seed 001, "Deploying
  Binaries to Devices": create the firmware with its metadata, attach the blob, create a firmware
  installation for the device's slot; the gateway gets the instruction over MQTT, downloads the
  binary, pushes it into the device with the device's field procedure and reports the status back.)

  Background:
    Given the device type "switch" declares the firmware, bootloader and configuration slots
    And gateway "gw1" connects device "lamp1" of type "switch"

  Scenario Outline: A <slot> image goes from the platform into the device's <slot> slot (the seed)
    # Hosting: metadata first, then the blob, which adds a download link.
    Given firmware "<name>" version "<version>" for the <slot> slot
    When I attach a <size> image to firmware "<name>"
    Then firmware "<name>" offers its image for download with its size and hashes
    # Installing: the platform instructs the gateway over MQTT; the gateway reports every step.
    When I install firmware "<name>" into the <slot> slot of device "lamp1"
    Then the platform created the installation as scheduled
    And gateway "gw1" received the installation instruction over MQTT
    And soon the installation is succeeded
    And the installation went through scheduled, downloading, downloaded, installing and succeeded
    And the installation's details say "<slot> slot now holds <version>"
    And device "lamp1" reports version "<version>" in its <slot> slot

    Examples:
      | slot          | name            | version | size      |
      | firmware      | lamp app        | 2.1.0   | 48 KiB    |
      | bootloader    | lamp bootloader | 1.4     | 16 KiB    |
      | configuration | lamp settings   | 7       | 700 bytes |

  Scenario: A blob is attached once; new bytes are published as a new firmware
    Given firmware "lamp app" version "2.1.0" with a 20 KiB image
    When I try to attach another 20 KiB image to firmware "lamp app"
    Then the platform answers 423 Locked
    And the answer says "create a new firmware resource"
    And firmware "lamp app" still serves its first image
    # The documented way to replace it: a new firmware, installed; then the old one deleted.
    Given firmware "lamp app fix" version "2.1.1" with a 20 KiB image
    When I install firmware "lamp app fix" into the firmware slot of device "lamp1"
    Then soon the installation is succeeded
    When I delete firmware "lamp app"
    Then firmware "lamp app" is gone
    And my firmware list holds "lamp app fix"
    And device "lamp1" reports version "2.1.1" in its firmware slot

  Scenario: An image that does not match its hashes is not written into the device
    Given firmware "lamp app" version "2.1.0" with a 24 KiB image
    And the stored image of firmware "lamp app" is corrupted at byte 5000
    When I install firmware "lamp app" into the firmware slot of device "lamp1"
    Then soon the installation is failed
    And the installation went through scheduled, downloading and failed
    And the installation's details say "sha256 mismatch"
    And device "lamp1" has no image in its firmware slot

  Scenario: A device that refuses the image fails the installation with its reason
    Given firmware "lamp app" version "2.1.0" with a 24 KiB image
    And device "lamp1" refuses the field procedure at commit with "battery too low to switch images"
    When I install firmware "lamp app" into the firmware slot of device "lamp1"
    Then soon the installation is failed
    And the installation went through scheduled, downloading, downloaded, installing and failed
    And the installation's details say "device refused at commit: battery too low to switch images"
    And device "lamp1" has no image in its firmware slot

  # Before the blob, the gateway's token and status calls take about 16 KiB of the link (each a
  # new HTTPS connection with its handshake): the cut at 32 KiB lands inside the 64 KiB download.
  Scenario: A download cut on the way resumes where it stopped
    Given firmware "lamp app" version "2.1.0" with a 64 KiB image
    And the link between "gw1" and the OLT endpoint is cut after 32 KiB
    When I install firmware "lamp app" into the firmware slot of device "lamp1"
    Then soon the installation is succeeded
    And gateway "gw1" resumed the cut download where it stopped
    And device "lamp1" reports version "2.1.0" in its firmware slot

  Scenario: A gateway that loses power mid-download carries on from its flash
    Given firmware "lamp app" version "2.1.0" with a 64 KiB image
    And the link between "gw1" and the OLT endpoint is throttled to 2 KiB/s
    When I install firmware "lamp app" into the firmware slot of device "lamp1"
    And 20 seconds pass
    Then the installation is downloading
    When device "gw1" loses power
    Then soon the installation is succeeded
    And gateway "gw1" resumed the download from its flash
    And the installation went through scheduled, downloading, downloaded, installing and succeeded
    And device "lamp1" reports version "2.1.0" in its firmware slot

@embedded:olt
Feature: Device installations in a few lines
  The firmware REST flow said the way a platform team says it: devices behind a gateway running
  a version, a new version hosted, an upgrade, and what the devices hold afterwards. Each line
  runs the detailed steps of features/olt/ underneath.

  Scenario: One device takes a new version
    Given a device "lamp1" of type "switch" running version 2.0.0
    And firmware 2.1.0 of 48 KiB is available
    When I upgrade lamp1 to version 2.1.0
    Then soon lamp1 runs version 2.1.0
    And the installation for lamp1 ends succeeded

  Scenario: Two devices behind one gateway, the download cut on the way
    Given 2 devices of type switch running firmware "2.0.0" behind gateway gw1
    And firmware "2.1.0" (64 KiB) is available
    And the download to d1 is cut after 32 KiB
    When I upgrade every device to firmware "2.1.0"
    Then soon every device runs firmware "2.1.0"
    And every installation ends succeeded

  Scenario: A gateway that loses power during the download still delivers
    Given the device lamp1 of type switch runs version 2.0.0
    And firmware 2.1.0 with a 64 KiB image is available
    And lamp1 loses power during the download
    When I upgrade the device lamp1 to 2.1.0
    Then soon the installation for lamp1 ends succeeded
    And lamp1 runs version 2.1.0

  Scenario: A device keeps its version until the installation is done
    Given devices lamp1 and lamp2 of type switch running version 2.0.0
    And firmware 2.1.0 is available
    When I upgrade lamp1 to version 2.1.0
    Then soon lamp1 runs version 2.1.0
    And lamp2 still runs version 2.0.0
    And lamp1 reports version 2.1.0 to the platform

  Scenario: The gateway goes on from the byte where its download was cut
    Given a device lamp1 of type switch running version 2.0.0
    And firmware 2.1.0 of 64 KiB is available
    And the download to lamp1 is cut after 32 KiB
    When I upgrade lamp1 to version 2.1.0
    Then within 1 hour, lamp1 runs version 2.1.0
    And lamp1 resumed the download once
    And the image of firmware 2.1.0 is 64 KiB

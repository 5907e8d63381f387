@embedded:olt
Feature: Smart switches behind the OLT gateway

  Scenario: A big image over a flaky gateway link
    Given 2 devices of type "switch" running version 2.0.0 behind gateway gw-a
    And firmware 2.2.0 of 96 KiB is available
    And the download to d1 is cut after 40 KiB
    When I upgrade every device to 2.2.0
    Then within 30 minutes every device runs 2.2.0
    And every installation ends succeeded
    And d1 resumed the download once
    And the firmware 2.2.0 image is 96 KiB

Feature: Asset tracker firmware updates

  Scenario: Field trackers get the bug-fix release
    Given 2 nRF9160 trackers running firmware 1.2.0
    And firmware 1.2.1 of 120 KiB is available
    When I upgrade all trackers to 1.2.1
    Then every tracker runs firmware 1.2.1 within 1 hour
    And all upgrades end succeeded

  Scenario: A flaky LTE link interrupts the download
    Given a tracker named "field-7" running version 3.0.0
    And firmware "3.0.1" is available
    And the download to field-7 is cut after 6 KiB
    When I upgrade field-7 to "3.0.1"
    Then soon field-7 runs version 3.0.1
    And field-7 resumed the download once
    And the firmware 3.0.1 image is 10 KiB

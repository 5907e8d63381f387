Feature: Trackers on a bad network

  Scenario: Cuts and power losses across the fleet
    Given 3 trackers running version 2.0.0
    And the download to t3 is cut after 2 KiB
    And t1 loses power during the download
    When I upgrade every tracker to version 2.0.1
    Then within 1 hour every tracker runs version 2.0.1
    And t3 resumed the download at least once
    And t1 lost power during the download
    And each upgrade ends succeeded

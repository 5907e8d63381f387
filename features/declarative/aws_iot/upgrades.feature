@embedded:aws-iot
Feature: Tracker upgrades in a few lines
  The AWS IoT Jobs FOTA flow said the way a firmware team says it: trackers running a version,
  a new version available, an upgrade, and what the trackers run afterwards. Each line runs the
  detailed steps of features/aws_iot/ underneath.

  Scenario: One tracker takes a new version
    Given a tracker "t1" running version 1.0.0
    And firmware 1.0.1 is available
    When I upgrade t1 to version 1.0.1
    Then soon t1 runs version 1.0.1
    And the upgrade of t1 ends succeeded
    And t1 reports version 1.0.1 in its shadow

  Scenario: A fleet upgrades, one download cut on the way
    Given 3 trackers running firmware "1.0.0"
    And the download to tracker t2 is cut after 4 KiB
    When I upgrade every tracker to firmware "1.0.1"
    Then soon every tracker runs firmware "1.0.1"
    And every upgrade ends succeeded

  Scenario: A tracker that loses power mid-download still arrives
    Given the trackers t1 and t2 run version 2.0.0
    And tracker t2 loses power during the download
    When I upgrade all the trackers to version 2.1.0
    Then soon all the trackers run version 2.1.0
    And the upgrade of t2 ends succeeded

  Scenario: A missing image fails the upgrade and the tracker keeps its version
    Given a tracker t1 running version 1.0.0
    And firmware 1.0.1 is missing
    When I upgrade the tracker t1 to 1.0.1
    Then the upgrade of t1 ends failed because "404"
    And t1 still runs version 1.0.0
    And t1 took 1 attempt

  Scenario: A cut download goes on from where it stopped, within minutes
    Given a tracker t1 running version 1.0.0
    And firmware 1.0.1 of 64 KiB is available
    And the download to t1 is cut after 16 KiB
    When I upgrade t1 to version 1.0.1
    Then t1 runs version 1.0.1 within 10 minutes
    And t1 resumed the download once
    And the firmware 1.0.1 image is 64 KiB
    And the upgrade of t1 ends succeeded

  Scenario: A power cut comes in the middle of the download
    Given the tracker "t1" runs version 1.0.0
    And t1 loses power during the download
    When I upgrade t1 to firmware "1.0.1"
    Then soon t1 runs version 1.0.1
    And t1 lost power during the download
    And t1 did not resume the download

@embedded:aws-iot
Feature: Trackers running their firmware take FOTA jobs by themselves
  A tracker modelled on the nRF9160 asset tracker firmware: it asks for the next job, marks it
  IN_PROGRESS, downloads the image from S3 in 2 KiB ranges, reboots into it, reports SUCCEEDED
  and its new version in the shadow; on a missing or wrong image it reports FAILED with a reason.

  Background:
    Given a FOTA bucket in `fotaBucketName`
    And the firmware `1.0.1` is in the FOTA bucket `${fotaBucketName}` as `fw-1.0.1.hex`

  Scenario: A tracker upgrades itself and reports its new version
    Given the `t1` tracker runs its firmware version `1.0.0`
    When I create the job `jobId` upgrading the `t1` tracker to `1.0.1` from `fw-1.0.1.hex`
    Then soon the job `jobId` of the `t1` tracker is SUCCEEDED
    And `execution` should match
      """
      {"status": "SUCCEEDED", "executionNumber": 1}
      """
    And the `t1` tracker reports firmware version `1.0.1` in its shadow

  Scenario: A missing image fails the job with a reason
    Given the `t1` tracker runs its firmware version `1.0.0`
    When I create the job `jobId` upgrading the `t1` tracker to `1.0.1` from `no-such-image.hex`
    Then soon the job `jobId` of the `t1` tracker is FAILED
    And `execution.statusDetails.detailsMap.reason` should equal `HTTP 404 NOT FOUND for ${fotaBucketName}.s3.amazonaws.com/no-such-image.hex`
    And the `t1` tracker still runs firmware version `1.0.0`

  Scenario: A download cut mid-way resumes where it stopped
    Given the `t1` tracker runs its firmware version `1.0.0`
    And the link between "t1" and the AWS endpoint is cut after 4 KiB
    When I create the job `jobId` upgrading the `t1` tracker to `1.0.1` from `fw-1.0.1.hex`
    Then soon the job `jobId` of the `t1` tracker is SUCCEEDED
    And the `t1` tracker reports firmware version `1.0.1` in its shadow

  Scenario: A tracker offline when the job is created takes it when it connects
    Given I generate a certificate for the `t1` tracker
    And I create the job `jobId` upgrading the `t1` tracker to `1.0.1` from `fw-1.0.1.hex`
    When 2 hours pass
    And the `t1` tracker runs its firmware version `1.0.0`
    Then soon the job `jobId` of the `t1` tracker is SUCCEEDED

  Scenario: A power cut in the middle of the download
    Given the `t1` tracker runs its firmware version `1.0.0`
    And the link between "t1" and the AWS endpoint is throttled to 1 KiB/s
    When I create the job `jobId` upgrading the `t1` tracker to `1.0.1` from `fw-1.0.1.hex`
    And 4 seconds pass
    And device "t1" loses power
    And the link between "t1" and the AWS endpoint is restored
    Then soon the job `jobId` of the `t1` tracker is SUCCEEDED
    And the `t1` tracker reports firmware version `1.0.1` in its shadow

  Scenario: Two queued jobs run in the order they were created
    Given the firmware `1.0.2` is in the FOTA bucket `${fotaBucketName}` as `fw-1.0.2.hex`
    And I generate a certificate for the `t1` tracker
    And I create the job `first` upgrading the `t1` tracker to `1.0.1` from `fw-1.0.1.hex`
    And I create the job `second` upgrading the `t1` tracker to `1.0.2` from `fw-1.0.2.hex`
    When the `t1` tracker runs its firmware version `1.0.0`
    Then soon the job `second` of the `t1` tracker is SUCCEEDED
    And the job `first` of the `t1` tracker finished before the job `second`
    And the `t1` tracker reports firmware version `1.0.2` in its shadow

@embedded:aws-iot
Feature: Job executions follow AWS IoT's state machine
  What moto alone gets wrong: version numbers, rejected transitions, timeouts, thing groups.

  Background:
    Given a FOTA bucket in `fotaBucketName`
    And the firmware `1.0.1` is in the FOTA bucket `${fotaBucketName}` as `fw.hex`
    And I connect the `fota` tracker
    And I create the job `jobId` upgrading the `fota` tracker to `1.0.1` from `fw.hex`

  Scenario: Cancelling an IN_PROGRESS execution needs force
    Given the `fota` tracker stores the next started job into `job`
    When I try to execute `cancelJobExecution` of `@aws-sdk/client-iot` with
      """
      {"jobId": "${jobId}", "thingName": "${tracker.fota.id}"}
      """
    Then the AWS call fails with `InvalidStateTransitionException`

  Scenario: An update with a stale expected version is rejected
    Given the `fota` tracker stores the next started job into `job`
    When the `fota` tracker updates the job in `job` to IN_PROGRESS with expected version 1
    Then `jobUpdate.error.code` should equal `VersionMismatch`
    When the `fota` tracker updates the job in `job` to IN_PROGRESS with expected version 2
    Then `jobUpdate.res.executionState.versionNumber` should equal `3`

  Scenario: A step that takes too long times out
    Given the `fota` tracker starts the next job with a step timeout of 10 minutes
    When 9 minutes pass
    Then the job `jobId` of the `fota` tracker is IN_PROGRESS
    When 2 minutes pass
    Then the job `jobId` of the `fota` tracker is TIMED_OUT

  Scenario: A continuous job for a thing group reaches a thing added later
    Given I generate a certificate for the `late` tracker
    And I execute `createThingGroup` of `@aws-sdk/client-iot` with
      """
      {"thingGroupName": "fleet"}
      """
    And `groupArn` is `${awsSDK.res.thingGroupArn}`
    And I execute `createJob` of `@aws-sdk/client-iot` with
      """
      {"jobId": "fleet-upgrade", "targets": ["${groupArn}"], "targetSelection": "CONTINUOUS",
       "document": "{\"operation\": \"app_fw_update\"}"}
      """
    When I execute `addThingToThingGroup` of `@aws-sdk/client-iot` with
      """
      {"thingGroupName": "fleet", "thingName": "${tracker.late.id}"}
      """
    And I execute `describeJobExecution` of `@aws-sdk/client-iot` with
      """
      {"jobId": "fleet-upgrade", "thingName": "${tracker.late.id}"}
      """
    Then `awsSDK.res.execution` should match
      """
      {"status": "QUEUED", "versionNumber": 1, "executionNumber": 1}
      """

  Scenario: A job id cannot be used twice
    When I try to execute `createJob` of `@aws-sdk/client-iot` with
      """
      {"jobId": "${jobId}", "targets": ["${tracker.fota.arn}"], "document": "{}"}
      """
    Then the AWS call fails with `ResourceAlreadyExistsException`

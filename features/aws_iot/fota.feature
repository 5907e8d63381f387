@embedded:aws-iot
Feature: Device Firmware Upgrade over the air
  As a user I can upgrade the firmware of my devices over the air.
  (Seed 003, the nRF Asset Tracker's FOTA feature, on moto with otaharness's jobs data plane.)

  Background:
    Given `userEmail` is `user@example.com`
    And `userPassword` is `Secret-passw0rd`
    And a FOTA bucket in `fotaBucketName`

  Scenario: Upgrade a tracker, then cancel and delete its job (the seed)
    # Register and connect device
    Given I generate a certificate for the `fota` tracker
    And I connect the `fota` tracker
    # Create a new firmware upgrade as a user
    Given I am authenticated with Cognito as `${userEmail}` with password `${userPassword}`
    And I have a random UUID in `jobId`
    When I execute `putObject` of `@aws-sdk/client-s3` with
      """
      {
        "Bucket": "${fotaBucketName}",
        "Key": "${jobId}",
        "Body": "SOME HEX DATA",
        "ContentLength": 13,
        "ContentType": "text/x-hex"
      }
      """
    And I have this JSON-encoded in `jobDocument`
      """
      {
        "operation": "app_fw_update",
        "size": 13,
        "filename": "1.0.1.hex",
        "location": {
          "protocol": "https",
          "host": "${fotaBucketName}.s3.amazonaws.com",
          "path": "${jobId}"
        },
        "fwversion": "1.0.1"
      }
      """
    And I execute `createJob` of `@aws-sdk/client-iot` with
      """
      {
        "jobId": "${jobId}",
        "targets": ["${tracker.fota.arn}"],
        "document": "${jobDocument}",
        "description": "Upgrade ${tracker.fota.id} to version 1.0.1.",
        "targetSelection": "SNAPSHOT"
      }
      """
    Then `awsSDK.res.jobId` should equal `${jobId}`
    # Fetch the job as a device
    Then soon the `fota` tracker stores the next started job into `job`
    And `job` should match
      """
      {
        "jobId": "${jobId}",
        "status": "IN_PROGRESS"
      }
      """
    # describe the job
    When I execute `describeJobExecution` of `@aws-sdk/client-iot` with
      """
      {
        "jobId": "${jobId}",
        "thingName": "${tracker.fota.id}"
      }
      """
    Then `awsSDK.res.execution` should match
      """
      {
        "jobId": "${jobId}",
        "status": "IN_PROGRESS",
        "versionNumber": 2
      }
      """
    # cancel the job
    When I execute `cancelJobExecution` of `@aws-sdk/client-iot` with
      """
      {
        "jobId": "${jobId}",
        "force": true,
        "thingName": "${tracker.fota.id}"
      }
      """
    And I execute `describeJobExecution` of `@aws-sdk/client-iot` with
      """
      {
        "jobId": "${jobId}",
        "thingName": "${tracker.fota.id}"
      }
      """
    Then `awsSDK.res.execution` should match
      """
      {
        "jobId": "${jobId}",
        "status": "CANCELED"
      }
      """
    # delete the job
    Given I execute `deleteObject` of `@aws-sdk/client-s3` with
      """
      {
        "Bucket": "${fotaBucketName}",
        "Key": "${jobId}"
      }
      """
    And I execute `deleteJobExecution` of `@aws-sdk/client-iot` with
      """
      {
        "jobId": "${jobId}",
        "thingName": "${tracker.fota.id}",
        "executionNumber": 1
      }
      """
    When I try to execute `describeJobExecution` of `@aws-sdk/client-iot` with
      """
      {
        "jobId": "${jobId}",
        "thingName": "${tracker.fota.id}"
      }
      """
    Then the AWS call fails with `ResourceNotFoundException`

@embedded:aws-iot
Feature: Trackers prove who they are over mutual TLS
  AWS IoT accepts a device only over TLS with a registered, ACTIVE certificate attached to the
  thing it connects as. Certificate validity is checked by the TLS library on the real clock.
  Each scenario shows what the tracker itself sees: refused (and why), retried with backoff, or
  connected.

  Background:
    Given a FOTA bucket in `fotaBucketName`
    And the firmware `1.0.1` is in the FOTA bucket `${fotaBucketName}` as `fw-1.0.1.hex`

  Scenario: An expired device certificate is refused, and the tracker keeps retrying
    Given the `t1` tracker has an expired certificate
    When the `t1` tracker is switched on running its firmware version `1.0.0`
    And 10 minutes pass
    Then the `t1` tracker is refused with `certificate expired`
    And the `t1` tracker has tried 4 times with growing intervals

  Scenario: A device certificate that is not yet valid is refused
    Given the `t1` tracker has a certificate that is not yet valid
    When the `t1` tracker is switched on running its firmware version `1.0.0`
    Then soon the `t1` tracker is refused with `bad certificate`

  Scenario: A tracker that trusts another CA refuses our server
    Given I generate a certificate for the `t1` tracker
    And the `t1` tracker trusts only an unrelated CA
    When the `t1` tracker is switched on running its firmware version `1.0.0`
    Then soon the `t1` tracker is refused with `certificate verify failed: unable to get local issuer certificate`

  Scenario: A tracker that dials a host name the server certificate does not name refuses it
    Given I generate a certificate for the `t1` tracker
    And the `t1` tracker dials the MQTT endpoint as `mqtt.example.com`
    When the `t1` tracker is switched on running its firmware version `1.0.0`
    Then soon the `t1` tracker is refused with `Hostname mismatch`

  Scenario: A revoked certificate loses its connection and cannot come back
    Given the `t1` tracker runs its firmware version `1.0.0`
    When I execute `updateCertificate` of `@aws-sdk/client-iot` with
      """
      {"certificateId": "${tracker.t1.certificateId}", "newStatus": "REVOKED"}
      """
    And 1 minute passes
    Then the `t1` tracker is refused with `closed by the server before CONNACK`
    And the gateway refused the `t1` tracker because `is REVOKED`
    When I create the job `jobId` upgrading the `t1` tracker to `1.0.1` from `fw-1.0.1.hex`
    And 30 minutes pass
    Then the job `jobId` of the `t1` tracker is QUEUED
    And the `t1` tracker still runs firmware version `1.0.0`

  Scenario: An INACTIVE certificate is refused until it is activated again
    Given I generate a certificate for the `t1` tracker
    And I execute `updateCertificate` of `@aws-sdk/client-iot` with
      """
      {"certificateId": "${tracker.t1.certificateId}", "newStatus": "INACTIVE"}
      """
    When the `t1` tracker is switched on running its firmware version `1.0.0`
    Then soon the gateway refused the `t1` tracker because `is INACTIVE`
    When I execute `updateCertificate` of `@aws-sdk/client-iot` with
      """
      {"certificateId": "${tracker.t1.certificateId}", "newStatus": "ACTIVE"}
      """
    And I create the job `jobId` upgrading the `t1` tracker to `1.0.1` from `fw-1.0.1.hex`
    Then soon the job `jobId` of the `t1` tracker is SUCCEEDED

  Scenario: Rotating the device CA: the tracker moves to a certificate from the new CA, the old one is revoked
    Given my CA `ca-2025` is registered in AWS IoT
    And the `t1` tracker has a certificate from my CA `ca-2025`
    And `oldCertificate` is `${tracker.t1.certificateId}`
    And the `t1` tracker runs its firmware version `1.0.0`
    When my CA `ca-2026` is registered in AWS IoT
    And the `t1` tracker gets a certificate from my CA `ca-2026`
    And device "t1" reboots
    And I execute `updateCertificate` of `@aws-sdk/client-iot` with
      """
      {"certificateId": "${oldCertificate}", "newStatus": "REVOKED"}
      """
    And I execute `updateCaCertificate` of `@aws-sdk/client-iot` with
      """
      {"certificateId": "${ca.ca-2025.id}", "newStatus": "INACTIVE"}
      """
    And I create the job `jobId` upgrading the `t1` tracker to `1.0.1` from `fw-1.0.1.hex`
    Then soon the job `jobId` of the `t1` tracker is SUCCEEDED
    And the `t1` tracker is connected

  Scenario: A tracker still on the certificate of a rotated-out CA is refused once that certificate is revoked
    Given my CA `ca-2025` is registered in AWS IoT
    And the `t1` tracker has a certificate from my CA `ca-2025`
    And the `t1` tracker runs its firmware version `1.0.0`
    When I execute `updateCertificate` of `@aws-sdk/client-iot` with
      """
      {"certificateId": "${tracker.t1.certificateId}", "newStatus": "REVOKED"}
      """
    And 10 minutes pass
    Then the `t1` tracker is refused with `closed by the server before CONNACK`
    And the gateway refused the `t1` tracker because `is REVOKED`

  Scenario: A link cut during the TLS handshake is retried
    Given I generate a certificate for the `t1` tracker
    And the link between "t1" and the MQTTS endpoint is cut after 300 bytes
    When the `t1` tracker is switched on running its firmware version `1.0.0`
    And I create the job `jobId` upgrading the `t1` tracker to `1.0.1` from `fw-1.0.1.hex`
    Then soon the job `jobId` of the `t1` tracker is SUCCEEDED
    And the `t1` tracker's log shows a failed connection with `TLS with`

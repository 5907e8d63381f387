"""Pure jobs/shadow wire codec: topics, request validation, response and notification shapes
(shared/protocols/aws-iot-jobs.md §2, §3 for the SDK/nRF payloads)."""

from __future__ import annotations

import json

import pytest

from otaharness.protocols.aws_iot_jobs import (
    MAX_NOTIFY_ENTRIES,
    MAX_PAYLOAD_BYTES,
    DescribeRequest,
    JobExecutionStatus,
    JobExecutionView,
    JobsOperation,
    JobsRejection,
    JobsTopic,
    RejectedCode,
    ShadowOperation,
    ShadowRejection,
    ShadowTopic,
    ShadowUpdateRequest,
    StartNextRequest,
    TopicError,
    UpdateRequest,
    decode_jobs_payload,
    decode_shadow_payload,
    execution_accepted,
    is_response_topic,
    jobs_rejected,
    notify,
    notify_next,
    parse_jobs_topic,
    parse_shadow_topic,
    update_accepted,
)

Q, IP = JobExecutionStatus.QUEUED, JobExecutionStatus.IN_PROGRESS


def view(job_id: str = "job1", status: JobExecutionStatus = Q, **kwargs: object) -> JobExecutionView:
    fields: dict[str, object] = dict(
        job_id=job_id, thing_name="tracker1", status=status, queued_at=100, last_updated_at=100,
        version_number=1, execution_number=1, job_document='{"operation":"app_fw_update"}',
    )
    fields.update(kwargs)
    return JobExecutionView(**fields)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("topic", "expected"),
    [
        ("$aws/things/tracker1/jobs/get", JobsTopic("tracker1", JobsOperation.GET_PENDING)),
        ("$aws/things/tracker1/jobs/start-next", JobsTopic("tracker1", JobsOperation.START_NEXT)),
        ("$aws/things/tracker1/jobs/$next/get", JobsTopic("tracker1", JobsOperation.DESCRIBE, "$next")),
        ("$aws/things/tracker1/jobs/job1/get", JobsTopic("tracker1", JobsOperation.DESCRIBE, "job1")),
        ("$aws/things/tracker1/jobs/job1/update", JobsTopic("tracker1", JobsOperation.UPDATE, "job1")),
    ],
)
def test_jobs_topics_parse_and_build_back(topic: str, expected: JobsTopic) -> None:
    assert parse_jobs_topic(topic) == expected
    assert str(expected) == topic


@pytest.mark.parametrize(
    "topic",
    ["$aws/things/t/jobs/job1/delete", "$aws/things/t/jobs/a/b/c", "$aws/things/t/jobs", "$aws/things//jobs/get",
     "$aws/things/t/shadow/get", "things/t/jobs/get"],
)
def test_topics_that_map_to_no_jobs_api_are_refused(topic: str) -> None:
    with pytest.raises(TopicError):
        parse_jobs_topic(topic)


def test_response_and_event_topics_are_not_requests() -> None:
    for topic in ("$aws/things/t/jobs/get/accepted", "$aws/things/t/jobs/j/update/rejected",
                  "$aws/things/t/jobs/notify", "$aws/things/t/jobs/notify-next",
                  "$aws/things/t/shadow/update/delta", "$aws/things/t/shadow/update/documents"):
        assert is_response_topic(topic), topic
    assert not is_response_topic("$aws/things/t/jobs/start-next")


def test_shadow_topics_classic_and_named() -> None:
    classic = parse_shadow_topic("$aws/things/tracker1/shadow/update")
    assert classic == ShadowTopic("tracker1", ShadowOperation.UPDATE)
    assert classic.event_topic("delta") == "$aws/things/tracker1/shadow/update/delta"
    named = parse_shadow_topic("$aws/things/tracker1/shadow/name/fota/get")
    assert named == ShadowTopic("tracker1", ShadowOperation.GET, "fota")
    assert str(named) == "$aws/things/tracker1/shadow/name/fota/get"
    for bad in ("$aws/things/t/shadow/patch", "$aws/things/t/shadow/name//get", "$aws/things/t/shadow"):
        with pytest.raises(TopicError):
            parse_shadow_topic(bad)


def test_sdk_update_payload_decodes() -> None:
    # awsiotsdk v1 update request, shared/protocols/aws-iot-jobs.md §3
    payload = b'{"expectedVersion": 2, "includeJobExecutionState": true, "status": "SUCCEEDED", "statusDetails": {"progress": "100"}}'
    request = UpdateRequest.from_document(decode_jobs_payload(payload), "job1")
    assert request == UpdateRequest(
        job_id="job1", status=JobExecutionStatus.SUCCEEDED, status_details={"progress": "100"},
        expected_version=2, include_job_execution_state=True,
    )


def test_nrf_update_sends_expected_version_as_string() -> None:
    # aws_jobs.c: {"status":"IN_PROGRESS","statusDetails":...,"expectedVersion":"<n>","clientToken":""}
    document = {"status": "IN_PROGRESS", "statusDetails": {"nextState": "download_firmware"},
                "expectedVersion": "1", "clientToken": ""}
    request = UpdateRequest.from_document(document, "job1")
    assert request.expected_version == 1 and request.client_token == ""


@pytest.mark.parametrize(
    ("document", "fragment"),
    [
        ({}, "status is required"),
        ({"status": "CANCELED"}, "status must be one of"),
        ({"status": "DONE"}, "status must be one of"),
        ({"status": "IN_PROGRESS", "expectedVersion": "two"}, "expectedVersion must be a number"),
        ({"status": "IN_PROGRESS", "expectedVersion": True}, "expectedVersion must be a number"),
        ({"status": "IN_PROGRESS", "expectedVersion": -1}, "must not be negative"),
        ({"status": "IN_PROGRESS", "statusDetails": {"progress": 50}}, "statusDetails['progress']"),
        ({"status": "IN_PROGRESS", "statusDetails": ["x"]}, "statusDetails must be an object"),
        ({"status": "IN_PROGRESS", "statusDetails": {"bad key": "x"}}, "statusDetails key"),
        ({"status": "IN_PROGRESS", "includeJobDocument": "yes"}, "includeJobDocument must be true or false"),
        ({"status": "IN_PROGRESS", "stepTimeoutInMinutes": 0}, "stepTimeoutInMinutes must be within"),
        ({"status": "IN_PROGRESS", "stepTimeoutInMinutes": 10081}, "stepTimeoutInMinutes must be within"),
        ({"status": "IN_PROGRESS", "clientToken": 7}, "clientToken"),
        ({"status": "IN_PROGRESS", "clientToken": "x" * 65}, "clientToken"),
    ],
)
def test_update_request_rejects_wrong_types(document: dict[str, object], fragment: str) -> None:
    with pytest.raises(JobsRejection) as caught:
        UpdateRequest.from_document(document, "job1")
    assert caught.value.code is RejectedCode.INVALID_REQUEST
    assert fragment in caught.value.message


def test_step_timer_cancel_value_only_on_update() -> None:
    assert UpdateRequest.from_document({"status": "IN_PROGRESS", "stepTimeoutInMinutes": -1}, "j").step_timeout_minutes == -1
    with pytest.raises(JobsRejection):
        StartNextRequest.from_document({"stepTimeoutInMinutes": -1})
    assert StartNextRequest.from_document({"stepTimeoutInMinutes": 10}).step_timeout_minutes == 10


def test_describe_accepts_next_and_defaults_to_including_the_document() -> None:
    request = DescribeRequest.from_document({"clientToken": ""}, "$next")
    assert request.include_job_document is True and request.job_id == "$next"
    with pytest.raises(JobsRejection):
        DescribeRequest.from_document({}, "bad job id!")
    with pytest.raises(JobsRejection):
        UpdateRequest.from_document({"status": "IN_PROGRESS"}, "$next")


@pytest.mark.parametrize(
    ("payload", "code"),
    [
        (b"not json", RejectedCode.INVALID_JSON),
        (b'{"clientToken": "a"', RejectedCode.INVALID_JSON),
        (b"\xff\xfe", RejectedCode.INVALID_JSON),
        (b"[1, 2]", RejectedCode.INVALID_REQUEST),
        (b'"text"', RejectedCode.INVALID_REQUEST),
        (b"{}" + b" " * MAX_PAYLOAD_BYTES, RejectedCode.INVALID_REQUEST),
    ],
)
def test_bad_jobs_payloads(payload: bytes, code: RejectedCode) -> None:
    with pytest.raises(JobsRejection) as caught:
        decode_jobs_payload(payload)
    assert caught.value.code is code


def test_empty_payload_is_an_empty_request() -> None:
    assert decode_jobs_payload(b"") == {}
    assert decode_shadow_payload(b"") == {}


def test_execution_on_mqtt_carries_the_document_as_an_object() -> None:
    body = execution_accepted(view(), 1234, "tok")
    assert body["execution"]["jobDocument"] == {"operation": "app_fw_update"}
    assert body["timestamp"] == 1234 and body["clientToken"] == "tok"
    assert "startedAt" not in body["execution"]  # a QUEUED execution has not started
    assert execution_accepted(None, 1234, None) == {"timestamp": 1234}
    rest = view().execution_json(True, document_as_object=False)
    assert rest["jobDocument"] == '{"operation":"app_fw_update"}'


def test_update_accepted_includes_what_was_asked_for() -> None:
    execution = view(status=IP, version_number=3, status_details={"progress": "50"})
    request = UpdateRequest(job_id="job1", status=IP, client_token="c", include_job_execution_state=True)
    assert update_accepted(execution, request, 7) == {
        "executionState": {"status": "IN_PROGRESS", "statusDetails": {"progress": "50"}, "versionNumber": 3},
        "timestamp": 7, "clientToken": "c",
    }
    bare = UpdateRequest(job_id="job1", status=IP, include_job_document=True)
    assert update_accepted(execution, bare, 7) == {"jobDocument": {"operation": "app_fw_update"}, "timestamp": 7}


def test_rejected_carries_execution_state_only_when_given() -> None:
    plain = JobsRejection(RejectedCode.RESOURCE_NOT_FOUND, "no such job")
    assert jobs_rejected(plain, 5, "t") == {"code": "ResourceNotFound", "message": "no such job",
                                           "timestamp": 5, "clientToken": "t"}
    mismatch = JobsRejection(RejectedCode.VERSION_MISMATCH, "stale", view(status=IP, version_number=3).state)
    assert jobs_rejected(mismatch, 5, None)["executionState"] == {
        "status": "IN_PROGRESS", "statusDetails": {}, "versionNumber": 3}


def test_notify_lists_at_most_15_in_progress_first() -> None:
    pending = [view(f"q{i}") for i in range(20)] + [view("running", IP, started_at=101)]
    body = notify(pending, 99)
    assert list(body["jobs"]) == ["IN_PROGRESS", "QUEUED"]
    assert [s["jobId"] for s in body["jobs"]["IN_PROGRESS"]] == ["running"]
    assert len(body["jobs"]["QUEUED"]) == MAX_NOTIFY_ENTRIES - 1
    assert body["jobs"]["QUEUED"][0] == {"jobId": "q0", "queuedAt": 100, "lastUpdatedAt": 100,
                                         "versionNumber": 1, "executionNumber": 1}
    assert notify([], 99) == {"timestamp": 99, "jobs": {}}


def test_notify_next_with_and_without_execution() -> None:
    assert notify_next(None, 9) == {"timestamp": 9}
    assert notify_next(view(), 9)["execution"]["jobDocument"] == {"operation": "app_fw_update"}


def test_shadow_update_request_validation() -> None:
    request = ShadowUpdateRequest.from_document(
        {"state": {"reported": {"dev": {"v": {"appV": "1.0.1"}}}}, "clientToken": "c", "version": 3})
    assert request.version == 3 and request.client_token == "c"
    assert request.to_document() == {"state": {"reported": {"dev": {"v": {"appV": "1.0.1"}}}}, "version": 3}
    for document, message in [
        ({}, "Missing required node: state"),
        ({"state": []}, "Invalid state node"),
        ({"state": {"foo": {}}}, "invalid node: 'foo'"),
        ({"state": {"reported": 5}}, "Invalid reported node"),
        ({"state": {}, "version": "3"}, "Invalid version"),
    ]:
        with pytest.raises(ShadowRejection) as caught:
            ShadowUpdateRequest.from_document(document)
        assert caught.value.code == 400 and message in caught.value.message


def test_bad_shadow_payloads() -> None:
    with pytest.raises(ShadowRejection) as too_big:
        decode_shadow_payload(json.dumps({"state": {"reported": {"x": "y" * MAX_PAYLOAD_BYTES}}}).encode())
    assert too_big.value.code == 413
    with pytest.raises(ShadowRejection) as not_json:
        decode_shadow_payload(b"{oops")
    assert not_json.value.code == 400

"""Job-execution state machine over a real moto server: the device side through the MQTT
bridge's handler, the control plane through boto3 over HTTP (one state seen by both)."""

from __future__ import annotations

import json
import threading

import pytest
from botocore.exceptions import ClientError
from aws_iot_harness import START_EPOCH, Harness

T0 = int(START_EPOCH)
JOBS = "$aws/things/{thing}/jobs"


def jobs_topic(thing: str, rest: str) -> str:
    return f"{JOBS.format(thing=thing)}/{rest}"


def error_code(caught: pytest.ExceptionInfo[ClientError]) -> str:
    return caught.value.response["Error"]["Code"]


def status_code(caught: pytest.ExceptionInfo[ClientError]) -> int:
    return caught.value.response["ResponseMetadata"]["HTTPStatusCode"]


@pytest.fixture
def fota(harness: Harness) -> Harness:
    """Thing `fota` with job `job1` queued for it, notifications of the setup consumed."""
    harness.job("job1", [harness.thing("fota")])
    harness.bridge.notifications("fota")
    return harness


# ---------------------------------------------------------------- versions and the seed flow


def test_seed_fota_flow(fota: Harness) -> None:
    """features/FOTA.feature.md: start-next -> IN_PROGRESS v2, force cancel, delete with executionNumber 1."""
    queued = fota.execution("job1", "fota")
    assert (queued["status"], queued["versionNumber"], queued["executionNumber"]) == ("QUEUED", 1, 1)
    assert "startedAt" not in queued

    topic, body = fota.reply(jobs_topic("fota", "start-next"), {})
    assert topic == jobs_topic("fota", "start-next/accepted")
    assert body["execution"]["status"] == "IN_PROGRESS" and body["execution"]["versionNumber"] == 2

    started = fota.execution("job1", "fota")
    assert (started["status"], started["versionNumber"]) == ("IN_PROGRESS", 2)

    with pytest.raises(ClientError) as caught:
        fota.iot.cancel_job_execution(jobId="job1", thingName="fota")
    assert error_code(caught) == "InvalidStateTransitionException"

    fota.iot.cancel_job_execution(jobId="job1", thingName="fota", force=True)
    canceled = fota.execution("job1", "fota")
    assert canceled["status"] == "CANCELED" and canceled["forceCanceled"] is True

    fota.iot.delete_job_execution(jobId="job1", thingName="fota", executionNumber=1)
    with pytest.raises(ClientError) as gone:
        fota.execution("job1", "fota")
    assert error_code(gone) == "ResourceNotFoundException"


def test_version_number_counts_every_device_update(fota: Harness) -> None:
    versions = [fota.execution("job1", "fota")["versionNumber"]]
    fota.reply(jobs_topic("fota", "start-next"), {"statusDetails": {"progress": "0"}})
    versions.append(fota.execution("job1", "fota")["versionNumber"])
    for progress in ("10", "50"):
        _, body = fota.reply(jobs_topic("fota", "job1/update"),
                             {"status": "IN_PROGRESS", "statusDetails": {"progress": progress},
                              "includeJobExecutionState": True})
        versions.append(body["executionState"]["versionNumber"])
    fota.reply(jobs_topic("fota", "job1/update"), {"status": "SUCCEEDED"})
    final = fota.execution("job1", "fota")
    versions.append(final["versionNumber"])
    assert versions == [1, 2, 3, 4, 5]
    assert final["status"] == "SUCCEEDED" and final["statusDetails"]["detailsMap"] == {"progress": "50"}


@pytest.mark.parametrize("expected_version", [2, "2"])
def test_expected_version_as_number_or_string(fota: Harness, expected_version: int | str) -> None:
    fota.reply(jobs_topic("fota", "start-next"))
    topic, body = fota.reply(jobs_topic("fota", "job1/update"),
                             {"status": "IN_PROGRESS", "expectedVersion": expected_version, "clientToken": "u1",
                              "includeJobExecutionState": True})
    assert topic.endswith("/update/accepted")
    assert body["executionState"]["versionNumber"] == 3 and body["clientToken"] == "u1"

    topic, body = fota.reply(jobs_topic("fota", "job1/update"),
                             {"status": "SUCCEEDED", "expectedVersion": expected_version, "clientToken": "u2"})
    assert topic.endswith("/update/rejected")
    assert body == {"code": "VersionMismatch", "message": body["message"], "clientToken": "u2", "timestamp": T0,
                    "executionState": {"status": "IN_PROGRESS", "statusDetails": {}, "versionNumber": 3}}
    assert fota.execution("job1", "fota")["versionNumber"] == 3  # nothing changed


# ---------------------------------------------------------------- transitions


@pytest.mark.parametrize("final", ["SUCCEEDED", "FAILED", "REJECTED"])
def test_device_may_end_a_queued_or_running_execution(fota: Harness, final: str) -> None:
    topic, _ = fota.reply(jobs_topic("fota", "job1/update"), {"status": final})
    assert topic.endswith("/accepted")
    assert fota.execution("job1", "fota")["status"] == final

    fota.job("job2", [fota.iot.describe_thing(thingName="fota")["thingArn"]])
    fota.reply(jobs_topic("fota", "start-next"))
    topic, _ = fota.reply(jobs_topic("fota", "job2/update"), {"status": final})
    assert topic.endswith("/accepted")
    assert fota.execution("job2", "fota")["status"] == final


def test_queued_to_in_progress_by_update_as_the_nrf_firmware_does(fota: Harness) -> None:
    _, body = fota.reply(jobs_topic("fota", "$next/get"), {"clientToken": ""})
    execution = body["execution"]
    assert execution["status"] == "QUEUED" and execution["jobDocument"] == {"operation": "app_fw_update"}
    topic, _ = fota.reply(jobs_topic("fota", f"{execution['jobId']}/update"),
                          {"status": "IN_PROGRESS", "statusDetails": {"nextState": "download_firmware"},
                           "expectedVersion": str(execution["versionNumber"]), "clientToken": ""})
    assert topic.endswith("/accepted")
    started = fota.execution("job1", "fota")
    assert (started["status"], started["versionNumber"]) == ("IN_PROGRESS", 2)
    assert started["startedAt"].timestamp() == T0
    fota.reply(jobs_topic("fota", "job1/update"), {"status": "SUCCEEDED", "expectedVersion": "2", "clientToken": ""})
    _, after = fota.reply(jobs_topic("fota", "$next/get"), {"clientToken": ""})
    assert "execution" not in after


@pytest.mark.parametrize("terminal", ["SUCCEEDED", "FAILED", "REJECTED"])
@pytest.mark.parametrize("attempt", ["IN_PROGRESS", "SUCCEEDED", "FAILED", "REJECTED"])
def test_nothing_leaves_a_terminal_state(fota: Harness, terminal: str, attempt: str) -> None:
    fota.reply(jobs_topic("fota", "job1/update"), {"status": terminal})
    topic, body = fota.reply(jobs_topic("fota", "job1/update"), {"status": attempt, "clientToken": "late"})
    assert topic.endswith("/update/rejected")
    assert body["code"] == "InvalidStateTransition" and body["clientToken"] == "late"
    assert body["executionState"] == {"status": terminal, "statusDetails": {}, "versionNumber": 2}


def test_describe_of_a_terminal_execution_is_terminal_state_reached(fota: Harness) -> None:
    _, running = fota.reply(jobs_topic("fota", "job1/get"), {"clientToken": "d1"})
    assert running["execution"]["status"] == "QUEUED" and running["clientToken"] == "d1"
    fota.reply(jobs_topic("fota", "job1/update"), {"status": "SUCCEEDED"})
    topic, body = fota.reply(jobs_topic("fota", "job1/get"), {"clientToken": "d2"})
    assert topic == jobs_topic("fota", "job1/get/rejected")
    assert body["code"] == "TerminalStateReached" and body["clientToken"] == "d2"


def test_canceled_by_the_control_plane_rejects_device_updates(fota: Harness) -> None:
    fota.iot.cancel_job_execution(jobId="job1", thingName="fota")
    assert fota.execution("job1", "fota")["status"] == "CANCELED"
    _, body = fota.reply(jobs_topic("fota", "job1/update"), {"status": "IN_PROGRESS"})
    assert body["code"] == "InvalidStateTransition"
    with pytest.raises(ClientError) as again:
        fota.iot.cancel_job_execution(jobId="job1", thingName="fota", force=True)
    assert error_code(again) == "InvalidStateTransitionException"


def test_start_next_takes_the_oldest_and_returns_a_running_one_unchanged(harness: Harness) -> None:
    arn = harness.thing("fota")
    harness.job("first", [arn])
    harness.clock.now += 5
    harness.job("second", [arn])
    _, started = harness.reply(jobs_topic("fota", "start-next"), {"stepTimeoutInMinutes": 5})
    assert started["execution"]["jobId"] == "first"
    _, again = harness.reply(jobs_topic("fota", "start-next"), {"statusDetails": {"x": "y"}})
    assert again["execution"]["jobId"] == "first" and again["execution"]["versionNumber"] == 2
    assert again["execution"]["statusDetails"] == {}

    _, pending = harness.reply(jobs_topic("fota", "get"), {"clientToken": "g"})
    assert [s["jobId"] for s in pending["inProgressJobs"]] == ["first"]
    assert [s["jobId"] for s in pending["queuedJobs"]] == ["second"]
    assert pending["queuedJobs"][0]["queuedAt"] == T0 + 5 and "startedAt" not in pending["queuedJobs"][0]
    assert pending["clientToken"] == "g" and pending["timestamp"] == T0 + 5

    harness.reply(jobs_topic("fota", "first/update"), {"status": "SUCCEEDED"})
    harness.reply(jobs_topic("fota", "second/update"), {"status": "FAILED"})
    _, none = harness.reply(jobs_topic("fota", "start-next"), {"clientToken": "n"})
    assert none == {"timestamp": T0 + 5, "clientToken": "n"}


def test_execution_number_must_match(fota: Harness) -> None:
    _, body = fota.reply(jobs_topic("fota", "job1/update"), {"status": "IN_PROGRESS", "executionNumber": 2})
    assert body["code"] == "ResourceNotFound"
    _, body = fota.reply(jobs_topic("fota", "job1/get"), {"executionNumber": 1})
    assert body["execution"]["executionNumber"] == 1


def test_unknown_job_or_thing_is_resource_not_found(fota: Harness) -> None:
    for topic, payload in [
        (jobs_topic("fota", "nojob/update"), {"status": "IN_PROGRESS"}),
        (jobs_topic("fota", "nojob/get"), {}),
        (jobs_topic("ghost", "start-next"), {}),
        (jobs_topic("ghost", "get"), {}),
        (jobs_topic("ghost", "$next/get"), {}),
        (jobs_topic("ghost", "job1/update"), {"status": "IN_PROGRESS"}),
    ]:
        reply_topic, body = fota.reply(topic, {**payload, "clientToken": "c"})
        assert reply_topic == f"{topic}/rejected", topic
        assert (body["code"], body["clientToken"]) == ("ResourceNotFound", "c"), topic


# ---------------------------------------------------------------- bad input keeps the server serving

REQUESTS = ["get", "start-next", "job1/get", "$next/get", "job1/update"]


@pytest.mark.parametrize("operation", REQUESTS)
@pytest.mark.parametrize(
    ("payload", "code"),
    [
        (b"this is not json", "InvalidJson"),
        (b"[1,2,3]", "InvalidRequest"),
        (json.dumps({"clientToken": 42, "status": "IN_PROGRESS"}).encode(), "InvalidRequest"),
        (json.dumps({"clientToken": "big", "status": "IN_PROGRESS", "pad": "x" * (128 * 1024)}).encode(),
         "InvalidRequest"),
    ],
)
def test_bad_input_on_every_jobs_topic(fota: Harness, operation: str, payload: bytes, code: str) -> None:
    topic, body = fota.reply(jobs_topic("fota", operation), payload)
    assert topic == jobs_topic("fota", f"{operation}/rejected")
    assert body["code"] == code and body["timestamp"] == T0
    _, ok = fota.reply(jobs_topic("fota", "get"), {})
    assert [s["jobId"] for s in ok["queuedJobs"]] == ["job1"]


def test_wrong_field_types_name_the_field(fota: Harness) -> None:
    cases = {
        "start-next": {"statusDetails": {"progress": 5}, "clientToken": "c"},
        "job1/get": {"includeJobDocument": "no", "clientToken": "c"},
        "job1/update": {"status": "IN_PROGRESS", "stepTimeoutInMinutes": "soon", "clientToken": "c"},
    }
    for operation, payload in cases.items():
        _, body = fota.reply(jobs_topic("fota", operation), payload)
        assert body["code"] == "InvalidRequest" and body["clientToken"] == "c"
        field = next(k for k in payload if k not in ("status", "clientToken"))
        assert field in body["message"]


def test_unknown_jobs_topic_is_invalid_topic(fota: Harness) -> None:
    topic = jobs_topic("fota", "job1/frobnicate")
    reply_topic, body = fota.reply(topic, {"clientToken": "x"})
    assert reply_topic == f"{topic}/rejected"
    assert (body["code"], body["clientToken"], body["timestamp"]) == ("InvalidTopic", "x", T0)


def test_responses_and_foreign_topics_are_ignored(fota: Harness) -> None:
    assert fota.mqtt(jobs_topic("fota", "start-next/accepted"), {}) == []
    assert fota.mqtt(jobs_topic("fota", "notify-next"), {}) == []
    assert fota.mqtt("devices/fota/telemetry", {}) == []
    assert fota.execution("job1", "fota")["status"] == "QUEUED"


# ---------------------------------------------------------------- notifications


def test_notify_and_notify_next_follow_the_pending_list(harness: Harness) -> None:
    arn = harness.thing("fota")
    harness.job("job1", [arn], {"operation": "app_fw_update", "fwversion": "1.0.1"})
    assert "fota" in harness.changes  # create_job (in moto's thread) reported the change
    events = {t: json.loads(p) for t, p in harness.bridge.notifications("fota")}
    assert events[jobs_topic("fota", "notify")] == {
        "timestamp": T0,
        "jobs": {"QUEUED": [{"jobId": "job1", "queuedAt": T0, "lastUpdatedAt": T0,
                             "versionNumber": 1, "executionNumber": 1}]}}
    next_execution = events[jobs_topic("fota", "notify-next")]["execution"]
    assert next_execution["jobId"] == "job1" and next_execution["thingName"] == "fota"
    assert next_execution["jobDocument"] == {"operation": "app_fw_update", "fwversion": "1.0.1"}
    assert harness.bridge.notifications("fota") == []  # nothing new

    harness.clock.now += 1
    replies = harness.mqtt(jobs_topic("fota", "start-next"), {})
    assert [t for t, _ in replies] == [jobs_topic("fota", "start-next/accepted"), jobs_topic("fota", "notify")]
    assert list(replies[1][1]["jobs"]) == ["IN_PROGRESS"]  # same head: no notify-next

    replies = harness.mqtt(jobs_topic("fota", "job1/update"), {"status": "IN_PROGRESS", "statusDetails": {"p": "5"}})
    assert [t for t, _ in replies] == [jobs_topic("fota", "job1/update/accepted")]  # progress only

    replies = dict(harness.mqtt(jobs_topic("fota", "job1/update"), {"status": "SUCCEEDED"}))
    assert replies[jobs_topic("fota", "notify")] == {"timestamp": T0 + 1, "jobs": {}}
    assert replies[jobs_topic("fota", "notify-next")] == {"timestamp": T0 + 1}


def test_notifications_after_control_plane_cancel(fota: Harness) -> None:
    fota.changes.clear()
    fota.iot.cancel_job_execution(jobId="job1", thingName="fota")
    assert fota.changes == ["fota"]
    topics = [t for t, _ in fota.bridge.notifications("fota")]
    assert topics == [jobs_topic("fota", "notify"), jobs_topic("fota", "notify-next")]


def test_on_change_is_called_outside_the_lock(harness: Harness) -> None:
    held: list[bool] = []

    def probe(thing: str) -> None:
        acquired = harness.jobs.lock.acquire(blocking=False)
        held.append(acquired)
        if acquired:
            harness.jobs.lock.release()

    harness.jobs.set_on_change(probe)
    result: list[BaseException] = []

    def from_another_thread() -> None:
        try:
            harness.job("job1", [harness.thing("t1")])
        except BaseException as exc:  # noqa: BLE001 - reported below
            result.append(exc)

    worker = threading.Thread(target=from_another_thread)
    worker.start()
    worker.join()
    assert not result and held == [True]


# ---------------------------------------------------------------- control plane gaps


def test_duplicate_job_id_is_resource_already_exists(fota: Harness) -> None:
    with pytest.raises(ClientError) as caught:
        fota.job("job1", [fota.iot.describe_thing(thingName="fota")["thingArn"]], {"other": True})
    assert error_code(caught) == "ResourceAlreadyExistsException" and status_code(caught) == 409
    assert json.loads(fota.iot.get_job_document(jobId="job1")["document"]) == {"operation": "app_fw_update"}


@pytest.mark.parametrize(
    "call",
    [
        lambda iot: iot.describe_job_execution(jobId="nope", thingName="fota"),
        lambda iot: iot.cancel_job_execution(jobId="nope", thingName="fota"),
        lambda iot: iot.delete_job_execution(jobId="nope", thingName="fota", executionNumber=1),
        lambda iot: iot.describe_job(jobId="nope"),
        lambda iot: iot.cancel_job(jobId="nope"),
        lambda iot: iot.delete_job(jobId="nope"),
        lambda iot: iot.get_job_document(jobId="nope"),
        lambda iot: iot.delete_job_execution(jobId="job1", thingName="fota", executionNumber=2, force=True),
    ],
)
def test_missing_resources_are_resource_not_found_not_500(fota: Harness, call) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ClientError) as caught:
        call(fota.iot)
    assert error_code(caught) == "ResourceNotFoundException" and status_code(caught) == 404


def test_delete_job_execution_needs_a_terminal_state_or_force(fota: Harness) -> None:
    with pytest.raises(ClientError) as caught:
        fota.iot.delete_job_execution(jobId="job1", thingName="fota", executionNumber=1)
    assert error_code(caught) == "InvalidStateTransitionException"
    fota.reply(jobs_topic("fota", "start-next"))
    fota.iot.delete_job_execution(jobId="job1", thingName="fota", executionNumber=1, force=True)
    assert fota.iot.list_job_executions_for_thing(thingName="fota")["executionSummaries"] == []
    _, body = fota.reply(jobs_topic("fota", "job1/update"), {"status": "SUCCEEDED"})
    assert body["code"] == "ResourceNotFound"


def test_cancel_job_cascades_to_queued_and_with_force_to_running(harness: Harness) -> None:
    arns = [harness.thing(name) for name in ("a", "b", "c")]
    harness.job("job1", arns)
    harness.reply(jobs_topic("b", "start-next"))
    harness.reply(jobs_topic("c", "job1/update"), {"status": "SUCCEEDED"})

    canceled = harness.iot.cancel_job(jobId="job1", reasonCode="oops", comment="bad image")
    assert canceled["jobId"] == "job1"
    job = harness.iot.describe_job(jobId="job1")["job"]
    assert (job["status"], job["reasonCode"], job["comment"]) == ("CANCELED", "oops", "bad image")
    statuses = {name: harness.execution("job1", name)["status"] for name in ("a", "b", "c")}
    assert statuses == {"a": "CANCELED", "b": "IN_PROGRESS", "c": "SUCCEEDED"}
    assert job["jobProcessDetails"]["numberOfCanceledThings"] == 1

    harness.iot.cancel_job(jobId="job1", force=True)
    running = harness.execution("job1", "b")
    assert running["status"] == "CANCELED" and running["forceCanceled"] is True
    assert harness.execution("job1", "c")["status"] == "SUCCEEDED"
    _, body = harness.reply(jobs_topic("b", "job1/update"), {"status": "SUCCEEDED"})
    assert body["code"] == "InvalidStateTransition"


def test_delete_job_removes_its_executions(harness: Harness) -> None:
    arns = [harness.thing(name) for name in ("a", "b")]
    harness.job("job1", arns)
    harness.reply(jobs_topic("a", "start-next"))
    with pytest.raises(ClientError) as caught:
        harness.iot.delete_job(jobId="job1")
    assert error_code(caught) == "InvalidStateTransitionException"  # IN_PROGRESS needs force
    harness.iot.delete_job(jobId="job1", force=True)
    for name in ("a", "b"):
        assert harness.iot.list_job_executions_for_thing(thingName=name)["executionSummaries"] == []
        with pytest.raises(ClientError) as gone:
            harness.execution("job1", name)
        assert error_code(gone) == "ResourceNotFoundException"
    assert harness.iot.list_jobs()["jobs"] == []
    _, pending = harness.reply(jobs_topic("a", "get"))
    assert pending["inProgressJobs"] == [] and pending["queuedJobs"] == []


def test_job_completes_when_every_execution_ended(harness: Harness) -> None:
    arns = [harness.thing(name) for name in ("a", "b")]
    harness.job("job1", arns)
    created = harness.iot.describe_job(jobId="job1")["job"]
    assert created["status"] == "IN_PROGRESS" and created["createdAt"].timestamp() == T0
    harness.reply(jobs_topic("a", "job1/update"), {"status": "SUCCEEDED"})
    job = harness.iot.describe_job(jobId="job1")["job"]
    assert job["status"] == "IN_PROGRESS"
    assert job["jobProcessDetails"]["numberOfSucceededThings"] == 1
    assert job["jobProcessDetails"]["numberOfQueuedThings"] == 1
    harness.reply(jobs_topic("b", "job1/update"), {"status": "FAILED"})
    job = harness.iot.describe_job(jobId="job1")["job"]
    assert job["status"] == "COMPLETED" and job["jobProcessDetails"]["numberOfFailedThings"] == 1
    assert job["completedAt"].timestamp() == T0
    harness.iot.delete_job(jobId="job1")  # a completed job needs no force


def test_thing_group_target_expands_to_member_things(harness: Harness) -> None:
    group = harness.iot.create_thing_group(thingGroupName="fleet")
    harness.iot.create_thing_group(thingGroupName="fleet-eu", parentGroupName="fleet")
    for name, group_name in (("a", "fleet"), ("b", "fleet"), ("c", "fleet-eu")):
        harness.thing(name)
        harness.iot.add_thing_to_thing_group(thingGroupName=group_name, thingName=name)
    harness.job("job1", [group["thingGroupArn"]])
    executions = harness.iot.list_job_executions_for_job(jobId="job1")["executionSummaries"]
    assert sorted(e["thingArn"].rsplit("/", 1)[-1] for e in executions) == ["a", "b", "c"]
    assert harness.iot.list_job_executions_for_thing(thingName="fleet")["executionSummaries"] == []
    _, started = harness.reply(jobs_topic("c", "start-next"))
    assert started["execution"]["jobId"] == "job1"

    with pytest.raises(ClientError) as caught:
        harness.job("job2", ["arn:aws:iot:us-east-1:123456789012:thinggroup/nogroup"])
    assert error_code(caught) == "ResourceNotFoundException"


def test_continuous_job_reaches_things_added_later(harness: Harness) -> None:
    group = harness.iot.create_thing_group(thingGroupName="fleet")["thingGroupArn"]
    harness.thing("early")
    harness.iot.add_thing_to_thing_group(thingGroupName="fleet", thingName="early")
    harness.job("continuous", [group], targetSelection="CONTINUOUS")
    harness.job("snapshot", [group], targetSelection="SNAPSHOT")

    harness.thing("late")
    harness.changes.clear()
    harness.iot.add_thing_to_thing_group(thingGroupName="fleet", thingName="late")
    assert harness.changes == ["late"]
    assert harness.execution("continuous", "late")["status"] == "QUEUED"
    with pytest.raises(ClientError):
        harness.execution("snapshot", "late")
    events = {t: json.loads(p) for t, p in harness.bridge.notifications("late")}
    assert events[jobs_topic("late", "notify-next")]["execution"]["jobId"] == "continuous"

    harness.thing("later")
    harness.iot.update_thing_groups_for_thing(thingName="later", thingGroupsToAdd=["fleet"])
    assert harness.execution("continuous", "later")["status"] == "QUEUED"

    harness.iot.remove_thing_from_thing_group(thingGroupName="fleet", thingName="late")
    assert harness.execution("continuous", "late")["status"] == "REMOVED"


# ---------------------------------------------------------------- timeouts on the clock


def test_step_timeout_times_the_execution_out(fota: Harness) -> None:
    _, body = fota.reply(jobs_topic("fota", "start-next"), {"stepTimeoutInMinutes": 2})
    assert body["execution"]["approximateSecondsBeforeTimedOut"] == 120
    fota.scheduler.advance(119)
    assert fota.execution("job1", "fota")["status"] == "IN_PROGRESS"
    assert fota.execution("job1", "fota")["approximateSecondsBeforeTimedOut"] == 1
    fota.changes.clear()
    fota.scheduler.advance(1)
    timed_out = fota.execution("job1", "fota")
    assert timed_out["status"] == "TIMED_OUT" and fota.changes == ["fota"]
    assert timed_out["lastUpdatedAt"].timestamp() == T0 + 120
    _, body = fota.reply(jobs_topic("fota", "job1/update"), {"status": "SUCCEEDED"})
    assert body["code"] == "InvalidStateTransition" and body["executionState"]["status"] == "TIMED_OUT"
    assert fota.iot.describe_job(jobId="job1")["job"]["jobProcessDetails"]["numberOfTimedOutThings"] == 1


def test_step_timer_is_reset_by_an_update_and_cancelled_by_minus_one(fota: Harness) -> None:
    fota.reply(jobs_topic("fota", "start-next"), {"stepTimeoutInMinutes": 1})
    fota.scheduler.advance(50)
    fota.reply(jobs_topic("fota", "job1/update"), {"status": "IN_PROGRESS", "stepTimeoutInMinutes": 1})
    fota.scheduler.advance(50)  # 100 s after start, 50 s after the reset
    assert fota.execution("job1", "fota")["status"] == "IN_PROGRESS"
    fota.reply(jobs_topic("fota", "job1/update"), {"status": "IN_PROGRESS", "stepTimeoutInMinutes": -1})
    assert "approximateSecondsBeforeTimedOut" not in fota.execution("job1", "fota")
    fota.scheduler.advance(7 * 24 * 3600)
    assert fota.execution("job1", "fota")["status"] == "IN_PROGRESS"
    assert fota.scheduler.armed == []


def test_terminal_update_cancels_the_timer(fota: Harness) -> None:
    fota.reply(jobs_topic("fota", "start-next"), {"stepTimeoutInMinutes": 1})
    fota.reply(jobs_topic("fota", "job1/update"), {"status": "SUCCEEDED"})
    assert fota.scheduler.armed == []
    fota.scheduler.advance(120)
    assert fota.execution("job1", "fota")["status"] == "SUCCEEDED"


def test_job_in_progress_timeout(harness: Harness) -> None:
    harness.job("job1", [harness.thing("fota")], timeoutConfig={"inProgressTimeoutInMinutes": 10})
    harness.scheduler.advance(3600)  # QUEUED does not time out
    harness.reply(jobs_topic("fota", "start-next"))
    harness.scheduler.advance(599)
    assert harness.execution("job1", "fota")["status"] == "IN_PROGRESS"
    harness.scheduler.advance(1)
    assert harness.execution("job1", "fota")["status"] == "TIMED_OUT"


def test_reset_forgets_timers_and_notification_memory(fota: Harness) -> None:
    fota.reply(jobs_topic("fota", "start-next"), {"stepTimeoutInMinutes": 1})
    fota.jobs.reset()
    assert fota.scheduler.armed == []
    fota.moto.reset()
    fota.job("job1", [fota.thing("fota")])  # same ids after a reset: no leak, no duplicate
    assert fota.execution("job1", "fota")["versionNumber"] == 1
    assert len(fota.bridge.notifications("fota")) == 2


# ---------------------------------------------------------------- staged rollout


def _queued_things(harness: Harness, job_id: str) -> list[str]:
    summaries = harness.iot.list_job_executions_for_job(jobId=job_id)["executionSummaries"]
    return sorted(s["thingArn"].rsplit("/", 1)[1] for s in summaries)


def test_rollout_queues_at_most_maximum_per_minute_things_a_minute(harness: Harness) -> None:
    """CreateJob's jobExecutionsRolloutConfig.maximumPerMinute: 2 things now, 2 a minute later,
    the last one the minute after; the job completes only after the last has its execution."""
    names = [f"r{i}" for i in range(5)]
    harness.job("staged", [harness.thing(name) for name in names],
                jobExecutionsRolloutConfig={"maximumPerMinute": 2})
    assert _queued_things(harness, "staged") == ["r0", "r1"]
    for name in ("r0", "r1"):
        harness.reply(jobs_topic(name, "staged/update"), {"status": "SUCCEEDED"})
    assert harness.iot.describe_job(jobId="staged")["job"]["status"] == "IN_PROGRESS"
    harness.scheduler.advance(59)
    assert _queued_things(harness, "staged") == ["r0", "r1"]
    harness.scheduler.advance(1)
    assert _queued_things(harness, "staged") == ["r0", "r1", "r2", "r3"]
    assert [t for t, _ in harness.bridge.notifications("r2")] == [jobs_topic("r2", "notify"),
                                                                  jobs_topic("r2", "notify-next")]
    harness.scheduler.advance(60)
    assert _queued_things(harness, "staged") == names
    for name in names[2:]:
        harness.reply(jobs_topic(name, "staged/update"), {"status": "SUCCEEDED"})
    assert harness.iot.describe_job(jobId="staged")["job"]["status"] == "COMPLETED"


def test_a_cancelled_rollout_queues_no_more_things(harness: Harness) -> None:
    harness.job("staged", [harness.thing(f"c{i}") for i in range(3)],
                jobExecutionsRolloutConfig={"maximumPerMinute": 1})
    harness.iot.cancel_job(jobId="staged")
    harness.scheduler.advance(180)
    summaries = harness.iot.list_job_executions_for_job(jobId="staged")["executionSummaries"]
    assert [s["jobExecutionSummary"]["status"] for s in summaries] == ["CANCELED"]

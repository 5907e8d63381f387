"""The iot-jobs-data HTTPS API through boto3's own client model, and the loop scheduler."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import AsyncIterator
from typing import Any

import pytest
from botocore.exceptions import ClientError
from aws_iot_harness import START_EPOCH, Harness

from otaharness.servers.aws_iot.jobs import LoopScheduler
from otaharness.servers.aws_iot.jobs_http import JobsHttpApi

T0 = int(START_EPOCH)
DOCUMENT = {"operation": "app_fw_update", "fwversion": "1.0.1", "size": 13}


@pytest.fixture
async def data_plane(harness: Harness) -> AsyncIterator[Any]:
    """boto3 `iot-jobs-data` client on our API; thing `fota` with job `job1` queued."""
    harness.job("job1", [harness.thing("fota")], DOCUMENT)
    api = JobsHttpApi(harness.jobs)
    url = await api.start()
    yield harness.moto.client("iot-jobs-data", endpoint_url=url)
    await api.stop()


async def call(method: Any, **kwargs: Any) -> dict[str, Any]:
    """boto3 blocks: run it off the loop that serves the API."""
    return await asyncio.to_thread(method, **kwargs)


async def test_device_flow_over_https(harness: Harness, data_plane: Any) -> None:
    pending = await call(data_plane.get_pending_job_executions, thingName="fota")
    assert pending["inProgressJobs"] == []
    assert pending["queuedJobs"][0]["jobId"] == "job1" and pending["queuedJobs"][0]["versionNumber"] == 1

    started = (await call(data_plane.start_next_pending_job_execution, thingName="fota",
                          statusDetails={"progress": "0"}, stepTimeoutInMinutes=30))["execution"]
    assert (started["status"], started["versionNumber"], started["executionNumber"]) == ("IN_PROGRESS", 2, 1)
    assert json.loads(started["jobDocument"]) == DOCUMENT  # a string on the REST API
    assert started["thingName"] == "fota" and started["startedAt"] == T0
    assert started["approximateSecondsBeforeTimedOut"] == 1800
    assert harness.execution("job1", "fota")["versionNumber"] == 2  # same state as the control plane

    updated = await call(data_plane.update_job_execution, thingName="fota", jobId="job1", status="IN_PROGRESS",
                         expectedVersion=2, statusDetails={"progress": "50"}, includeJobExecutionState=True,
                         includeJobDocument=True)
    assert updated["executionState"] == {"status": "IN_PROGRESS", "statusDetails": {"progress": "50"},
                                         "versionNumber": 3}
    assert json.loads(updated["jobDocument"]) == DOCUMENT

    described = (await call(data_plane.describe_job_execution, thingName="fota", jobId="job1",
                            includeJobDocument=False))["execution"]
    assert described["versionNumber"] == 3 and "jobDocument" not in described
    next_one = (await call(data_plane.describe_job_execution, thingName="fota", jobId="$next"))["execution"]
    assert next_one["jobId"] == "job1" and "jobDocument" in next_one

    await call(data_plane.update_job_execution, thingName="fota", jobId="job1", status="SUCCEEDED")
    assert harness.execution("job1", "fota")["status"] == "SUCCEEDED"
    assert "execution" not in await call(data_plane.start_next_pending_job_execution, thingName="fota")
    assert "execution" not in await call(data_plane.describe_job_execution, thingName="fota", jobId="$next")


async def test_version_mismatch_over_https(data_plane: Any) -> None:
    await call(data_plane.start_next_pending_job_execution, thingName="fota")
    with pytest.raises(ClientError) as caught:
        await call(data_plane.update_job_execution, thingName="fota", jobId="job1", status="SUCCEEDED",
                   expectedVersion=1)
    assert caught.value.response["Error"]["Code"] == "InvalidStateTransitionException"
    assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == 409
    assert "expectedVersion 1" in caught.value.response["Error"]["Message"]
    with pytest.raises(data_plane.exceptions.InvalidStateTransitionException):
        await call(data_plane.update_job_execution, thingName="fota", jobId="job1", status="SUCCEEDED",
                   expectedVersion=5)


async def test_errors_map_to_the_model_exceptions(data_plane: Any) -> None:
    with pytest.raises(data_plane.exceptions.ResourceNotFoundException):
        await call(data_plane.describe_job_execution, thingName="fota", jobId="nojob")
    with pytest.raises(data_plane.exceptions.ResourceNotFoundException):
        await call(data_plane.get_pending_job_executions, thingName="ghost")
    with pytest.raises(data_plane.exceptions.InvalidRequestException):
        await call(data_plane.start_next_pending_job_execution, thingName="fota", stepTimeoutInMinutes=99999)
    with pytest.raises(data_plane.exceptions.InvalidRequestException):
        await call(data_plane.update_job_execution, thingName="fota", jobId="job1", status="CANCELED")
    await call(data_plane.update_job_execution, thingName="fota", jobId="job1", status="REJECTED")
    with pytest.raises(data_plane.exceptions.TerminalStateException):
        await call(data_plane.describe_job_execution, thingName="fota", jobId="job1")
    with pytest.raises(data_plane.exceptions.InvalidStateTransitionException):
        await call(data_plane.update_job_execution, thingName="fota", jobId="job1", status="IN_PROGRESS")


async def test_loop_scheduler_arms_and_cancels_from_any_thread() -> None:
    loop = asyncio.get_running_loop()
    scheduler = LoopScheduler(loop)
    fired: list[str] = []
    done = asyncio.Event()

    def arm_from_thread() -> None:
        scheduler.schedule(0.01, lambda: (fired.append("thread"), done.set()))
        scheduler.schedule(0.01, lambda: fired.append("cancelled")).cancel()

    thread = threading.Thread(target=arm_from_thread)
    thread.start()
    thread.join()
    on_loop = scheduler.schedule(0.0, lambda: fired.append("loop"))
    late = scheduler.schedule(0.02, lambda: fired.append("late"))
    late.cancel()
    await asyncio.wait_for(done.wait(), 2)
    await asyncio.sleep(0.03)
    assert on_loop is not None
    assert sorted(fired) == ["loop", "thread"]

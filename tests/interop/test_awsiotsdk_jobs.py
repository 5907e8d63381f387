"""Our jobs data plane against the AWS IoT Device SDK for Python (awsiotsdk 1.31.0, awscrt 0.36.1):
the v1 IotJobsClient over MQTT 3.1.1 and the request/response IotJobsClientV2 over MQTT 5, each
built by the SDK's own ``mtls_from_path`` builder and connected over mutual TLS to our MQTT gateway
(``endpoints()["mqtts"]``) with a certificate from ``create_keys_and_certificate`` attached to the
thing it connects as; the gateway forwards to a real mosquitto (shared/protocols/aws-iot-jobs.md
§3). Real time.

The SDK parses every reply into its model classes (epoch-second timestamps, jobDocument object,
integer versions) and the V2 client correlates replies by clientToken alone, so a reply we got
wrong surfaces here as a parse error or a timeout."""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import shutil
import threading
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import pytest_asyncio

iotjobs = pytest.importorskip("awsiot.iotjobs")
awsiot = pytest.importorskip("awsiot")
from awscrt import io, mqtt, mqtt_request_response  # noqa: E402
from awsiot import mqtt5_client_builder, mqtt_connection_builder  # noqa: E402

from otaharness.runtime.broker import MosquittoBroker  # noqa: E402
from otaharness.runtime.clock import RealClock  # noqa: E402
from otaharness.servers.aws_iot import AwsIotBackend  # noqa: E402

MOSQUITTO = shutil.which("mosquitto") or ("/usr/sbin/mosquitto" if Path("/usr/sbin/mosquitto").exists() else None)
pytestmark = [pytest.mark.interop,
              pytest.mark.skipif(MOSQUITTO is None, reason="mosquitto is not installed")]

TIMEOUT = 10.0  # real seconds for any one SDK operation
DOCUMENT = {"operation": "app_fw_update", "size": 13, "fwversion": "1.0.1",
            "location": {"protocol": "https", "host": "fota.s3.amazonaws.com", "path": "job1"}}
QOS1 = mqtt.QoS.AT_LEAST_ONCE


@pytest_asyncio.fixture
async def backend() -> AsyncIterator[tuple[AwsIotBackend, int]]:
    """The back end, and the port of its MQTT gateway (mutual TLS) on 127.0.0.1."""
    threads_before = set(threading.enumerate())
    async with MosquittoBroker() as broker:
        aws = AwsIotBackend(RealClock())
        await aws.start(broker.host, broker.port, broker.service_credentials)
        try:
            mqtts = urlsplit(aws.endpoints()["mqtts"])
            assert (mqtts.scheme, mqtts.hostname) == ("mqtts", "127.0.0.1")
            yield aws, mqtts.port
        finally:
            aws.reset()
            await aws.stop()
    await asyncio.get_running_loop().shutdown_default_executor()  # asyncio.to_thread's workers
    # awscrt's own event-loop threads are native; only Python threads are ours to check.
    left = [t for t in threading.enumerate()
            if t not in threads_before and t.is_alive() and not isinstance(t, threading._DummyThread)]
    assert not left, f"threads left running: {left}"


@pytest.fixture
def bootstrap() -> io.ClientBootstrap:
    group = io.EventLoopGroup(1)
    return io.ClientBootstrap(group, io.DefaultHostResolver(group))


async def done(future: concurrent.futures.Future) -> Any:
    return await asyncio.wait_for(asyncio.wrap_future(future), TIMEOUT)


async def queue_job(aws: AwsIotBackend, thing: str, job_id: str = "job1") -> tuple[str, str]:
    """Create the thing with its own certificate (ACTIVE, attached) and queue a job for it;
    returns the certificate and private key files, as a device holds them."""
    iot = aws.client("iot")
    arn = (await asyncio.to_thread(iot.create_thing, thingName=thing))["thingArn"]
    certificate = await asyncio.to_thread(iot.create_keys_and_certificate, setAsActive=True)
    await asyncio.to_thread(iot.attach_thing_principal, thingName=thing,
                            principal=certificate["certificateArn"])
    cert_file = aws.pki.write(f"{thing}.crt", certificate["certificatePem"])
    key_file = aws.pki.write(f"{thing}.key", certificate["keyPair"]["PrivateKey"], secret=True)
    await asyncio.to_thread(iot.create_job, jobId=job_id, targets=[arn], document=json.dumps(DOCUMENT))
    return str(cert_file), str(key_file)


def connected_over_mtls(aws: AwsIotBackend, thing: str) -> bool:
    """The gateway let ``thing`` in on its certificate (not as a plain-MQTT stand-in)."""
    assert aws.gateway is not None
    return any(event.client_id == thing and event.what.startswith(f"connected as {thing} (certificate ")
               for event in aws.gateway.events)


def deliver(loop: asyncio.AbstractEventLoop, queue: asyncio.Queue[Any]) -> Callable[[Any], None]:
    """An SDK callback (called on a CRT thread) that hands its argument to the test's loop."""
    return lambda response: loop.call_soon_threadsafe(queue.put_nowait, response)


async def test_v1_jobs_client_over_mqtt311(backend: tuple[AwsIotBackend, int], bootstrap: io.ClientBootstrap) -> None:
    aws, port = backend
    cert_file, key_file = await queue_job(aws, "tracker1")
    loop = asyncio.get_running_loop()
    connection = mqtt_connection_builder.mtls_from_path(
        endpoint="127.0.0.1", port=port, cert_filepath=cert_file, pri_key_filepath=key_file,
        ca_filepath=aws.endpoints()["ca"], client_bootstrap=bootstrap, client_id="tracker1",
        clean_session=True, keep_alive_secs=30)
    await done(connection.connect())
    try:
        assert connected_over_mtls(aws, "tracker1")
        jobs = iotjobs.IotJobsClient(connection)
        inbox: dict[str, asyncio.Queue[Any]] = {name: asyncio.Queue() for name in
                                                ("started", "start_rejected", "updated", "update_rejected")}
        start = iotjobs.StartNextPendingJobExecutionSubscriptionRequest(thing_name="tracker1")
        update = iotjobs.UpdateJobExecutionSubscriptionRequest(thing_name="tracker1", job_id="job1")
        for subscribe, request, name in [
            (jobs.subscribe_to_start_next_pending_job_execution_accepted, start, "started"),
            (jobs.subscribe_to_start_next_pending_job_execution_rejected, start, "start_rejected"),
            (jobs.subscribe_to_update_job_execution_accepted, update, "updated"),
            (jobs.subscribe_to_update_job_execution_rejected, update, "update_rejected"),
        ]:
            subscribed, _topic = subscribe(request=request, qos=QOS1, callback=deliver(loop, inbox[name]))
            await done(subscribed)

        await done(jobs.publish_start_next_pending_job_execution(
            iotjobs.StartNextPendingJobExecutionRequest(thing_name="tracker1", client_token="tok-1",
                                                        status_details={"progress": "0"},
                                                        step_timeout_in_minutes=10), QOS1))
        started = await asyncio.wait_for(inbox["started"].get(), TIMEOUT)
        assert started.client_token == "tok-1"
        execution = started.execution
        assert (execution.job_id, execution.thing_name, execution.status) == ("job1", "tracker1", "IN_PROGRESS")
        assert (execution.version_number, execution.execution_number) == (2, 1)
        assert execution.job_document == DOCUMENT and execution.status_details == {"progress": "0"}

        mismatched = iotjobs.UpdateJobExecutionRequest(thing_name="tracker1", job_id="job1", client_token="tok-2",
                                                      status="SUCCEEDED", expected_version=1)
        await done(jobs.publish_update_job_execution(mismatched, QOS1))
        rejected = await asyncio.wait_for(inbox["update_rejected"].get(), TIMEOUT)
        assert (rejected.code, rejected.client_token) == (iotjobs.RejectedErrorCode.VERSION_MISMATCH, "tok-2")
        assert (rejected.execution_state.status, rejected.execution_state.version_number) == ("IN_PROGRESS", 2)

        await done(jobs.publish_update_job_execution(iotjobs.UpdateJobExecutionRequest(
            thing_name="tracker1", job_id="job1", client_token="tok-3", status="SUCCEEDED", expected_version=2,
            include_job_execution_state=True, status_details={"progress": "100"}), QOS1))
        updated = await asyncio.wait_for(inbox["updated"].get(), TIMEOUT)
        assert updated.client_token == "tok-3"
        assert (updated.execution_state.status, updated.execution_state.version_number) == ("SUCCEEDED", 3)
        assert updated.execution_state.status_details == {"progress": "100"}
        assert updated.timestamp.year >= 2024  # epoch seconds, parsed with fromtimestamp
        described = await asyncio.to_thread(aws.client("iot").describe_job_execution,
                                            jobId="job1", thingName="tracker1")
        assert described["execution"]["status"] == "SUCCEEDED"
    finally:
        await done(connection.disconnect())


async def test_v2_jobs_client_over_mqtt5(backend: tuple[AwsIotBackend, int], bootstrap: io.ClientBootstrap) -> None:
    aws, port = backend
    cert_file, key_file = await queue_job(aws, "tracker2")
    connected: concurrent.futures.Future[None] = concurrent.futures.Future()
    stopped: concurrent.futures.Future[None] = concurrent.futures.Future()
    client = mqtt5_client_builder.mtls_from_path(
        endpoint="127.0.0.1", port=port, cert_filepath=cert_file, pri_key_filepath=key_file,
        ca_filepath=aws.endpoints()["ca"], client_bootstrap=bootstrap, client_id="tracker2",
        keep_alive_interval_sec=30,
        on_lifecycle_connection_success=lambda _data: connected.done() or connected.set_result(None),
        on_lifecycle_stopped=lambda _data: stopped.done() or stopped.set_result(None))
    client.start()
    try:
        await done(connected)
        assert connected_over_mtls(aws, "tracker2")
        jobs = iotjobs.IotJobsClientV2(client, mqtt_request_response.ClientOptions(
            max_request_response_subscriptions=4, max_streaming_subscriptions=2,
            operation_timeout_in_seconds=int(TIMEOUT)))

        pending = await done(jobs.get_pending_job_executions(
            iotjobs.GetPendingJobExecutionsRequest(thing_name="tracker2")))
        assert [s.job_id for s in pending.queued_jobs] == ["job1"] and pending.in_progress_jobs == []

        started = await done(jobs.start_next_pending_job_execution(
            iotjobs.StartNextPendingJobExecutionRequest(thing_name="tracker2")))
        assert (started.execution.status, started.execution.version_number) == ("IN_PROGRESS", 2)
        assert started.execution.job_document == DOCUMENT

        with pytest.raises(awsiot.V2ServiceException) as failure:
            await done(jobs.update_job_execution(iotjobs.UpdateJobExecutionRequest(
                thing_name="tracker2", job_id="job1", status="SUCCEEDED", expected_version=7)))
        error = failure.value.modeled_error
        assert error.code == iotjobs.RejectedErrorCode.VERSION_MISMATCH
        assert error.execution_state.version_number == 2

        described = await done(jobs.describe_job_execution(
            iotjobs.DescribeJobExecutionRequest(thing_name="tracker2", job_id="job1")))
        assert (described.execution.status, described.execution.version_number) == ("IN_PROGRESS", 2)

        updated = await done(jobs.update_job_execution(iotjobs.UpdateJobExecutionRequest(
            thing_name="tracker2", job_id="job1", status="SUCCEEDED", expected_version=2,
            include_job_execution_state=True)))
        assert (updated.execution_state.status, updated.execution_state.version_number) == ("SUCCEEDED", 3)
        del jobs  # the request/response client goes before its protocol client stops
    finally:
        client.stop()
        await done(stopped)

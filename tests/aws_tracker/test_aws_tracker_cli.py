"""`otaharness emulate aws-tracker` on real time: parsing, a small fleet upgrading, bad URLs."""

from __future__ import annotations

import asyncio
import json
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

from otaharness.emulators.aws_tracker import cli
from otaharness.cli import build_parser
from otaharness.runtime.broker import MosquittoBroker
from otaharness.runtime.clock import RealClock
from otaharness.runtime.mqtt import MqttClient
from otaharness.servers.aws_iot import DATA_ENDPOINT, AwsIotBackend

MOSQUITTO = shutil.which("mosquitto") or ("/usr/sbin/mosquitto" if Path("/usr/sbin/mosquitto").exists() else None)
pytestmark = pytest.mark.skipif(MOSQUITTO is None, reason="mosquitto is not installed")


@pytest_asyncio.fixture
async def backend() -> AsyncIterator[tuple[AwsIotBackend, MosquittoBroker]]:
    async with MosquittoBroker() as broker:
        aws = AwsIotBackend(RealClock())
        await aws.start(broker.host, broker.port, broker.service_credentials)
        try:
            yield aws, broker
        finally:
            aws.reset()
            await aws.stop()


def test_arguments_through_the_otaharness_parser() -> None:
    args = build_parser().parse_args(
        ["emulate", "aws-tracker", "--mqtt", "mqtt://127.0.0.1:1884", "--count", "3", "--step-driven"])
    trackers = cli.build_trackers(args, RealClock())
    assert [t.thing_name for t in trackers] == ["tracker-1", "tracker-2", "tracker-3"]
    assert {(t.mqtt_host, t.mqtt_port, t.autonomous, t.s3_endpoint) for t in trackers} == {
        ("127.0.0.1", 1884, False, None)}


def test_mqtts_needs_the_trackers_credentials(tmp_path: Path) -> None:
    args = build_parser().parse_args(["emulate", "aws-tracker", "--mqtt", "mqtts://127.0.0.1:8883",
                                      "--count", "2", "--credentials-dir", str(tmp_path)])
    with pytest.raises(cli.EndpointError, match="tracker-1.cert.pem does not exist"):
        cli.build_trackers(args, RealClock())
    args = build_parser().parse_args(["emulate", "aws-tracker", "--mqtt", "mqtts://127.0.0.1:8883"])
    with pytest.raises(cli.EndpointError, match="--cert and --key"):
        cli.build_trackers(args, RealClock())


@pytest.mark.parametrize("option, value", [("--mqtt", "http://127.0.0.1:1883"), ("--s3-endpoint", "s3://x")])
def test_bad_endpoint_urls_exit_with_2(option: str, value: str) -> None:
    argv = ["emulate", "aws-tracker", "--mqtt", "mqtt://127.0.0.1:1883", option, value]
    with pytest.raises(SystemExit) as stopped:  # the command line's own check
        build_parser().parse_args(argv)
    assert stopped.value.code == 2


async def test_emulated_fleet_upgrades_over_mutual_tls_until_interrupted(
        backend: tuple[AwsIotBackend, MosquittoBroker], tmp_path: Path) -> None:
    """Each tracker with its own certificate from create_keys_and_certificate, as a user would
    download them from AWS, in a credentials folder."""
    aws, broker = backend
    endpoints = aws.endpoints()
    iot, s3 = aws.client("iot"), aws.client("s3")
    arns = []
    for i in (1, 2, 3):
        arns.append((await asyncio.to_thread(iot.create_thing, thingName=f"cli-{i}"))["thingArn"])
        cert = await asyncio.to_thread(iot.create_keys_and_certificate, setAsActive=True)
        await asyncio.to_thread(iot.attach_thing_principal, thingName=f"cli-{i}", principal=cert["certificateArn"])
        (tmp_path / f"cli-{i}.cert.pem").write_text(cert["certificatePem"])
        (tmp_path / f"cli-{i}.private.key").write_text(cert["keyPair"]["PrivateKey"])
    await asyncio.to_thread(s3.create_bucket, Bucket="fota-bucket")
    await asyncio.to_thread(s3.put_object, Bucket="fota-bucket", Key="up", Body=b"SOME HEX DATA", ACL="public-read")

    # The harness's own view of the broker, as its service user.
    username, password = broker.service_credentials
    watcher = MqttClient("watcher", broker.host, broker.port, username=username, password=password)
    asked: list[str] = []
    watcher.add_handler("$aws/things/+/jobs/$next/get", lambda topic, _payload: asked.append(topic))
    await watcher.connect()
    await watcher.subscribe("$aws/things/+/jobs/$next/get")

    args = build_parser().parse_args([
        "emulate", "aws-tracker", "--mqtt", endpoints["mqtts"], "--s3-endpoint", endpoints["aws"],
        "--ca", endpoints["ca"], "--credentials-dir", str(tmp_path), "--server-name", DATA_ENDPOINT,
        "--count", "3", "--prefix", "cli-", "--reboot-seconds", "0.05"])
    fleet = asyncio.create_task(cli.run(args))
    try:
        async with asyncio.timeout(10):
            while len(set(asked)) < 3:
                await asyncio.sleep(0.02)
        document = {"operation": "app_fw_update", "size": 13, "fwversion": "1.0.1",
                    "location": {"protocol": "https", "host": "fota-bucket.s3.amazonaws.com", "path": "up"}}
        await asyncio.to_thread(iot.create_job, jobId="up", targets=arns, document=json.dumps(document))

        async def statuses() -> set[str]:
            found = await asyncio.to_thread(iot.list_job_executions_for_job, jobId="up")
            return {e["jobExecutionSummary"]["status"] for e in found["executionSummaries"]}

        async with asyncio.timeout(10):
            while await statuses() != {"SUCCEEDED"}:
                await asyncio.sleep(0.05)
    finally:
        fleet.cancel()
        with pytest.raises(asyncio.CancelledError):
            await fleet
        await watcher.disconnect()

"""The measured cases, from outside, against the AWS IoT back end as it runs: a device with its
own certificate over mutual TLS sends deeply nested JSON (60 KB of brackets, far past the reader's
32 levels) and 5,000-digit integers to the Jobs MQTT API (through the mqtts gateway and a real
mosquitto), to a shadow, and to the iot-jobs-data HTTPS API. AWS answers such requests as
client errors: ``InvalidRequest`` on MQTT, 400 on the shadow, 400 InvalidRequestException on
HTTPS; before the one JSON reader they were InternalError / 503. Each refusal has its control:
the same device's well-formed request is served right after, and the refused ones changed
nothing."""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import pytest
import pytest_asyncio

from aws_iot_harness import request_reply
from otaharness.runtime.broker import MosquittoBroker, find_mosquitto
from otaharness.runtime.clock import RealClock
from otaharness.runtime.mqtt import MqttClient
from otaharness.runtime.pki import client_context
from otaharness.servers.aws_iot import AwsIotBackend


TIMEOUT = 10.0
DEEP = b"[" * 30_000 + b"]" * 30_000  # 60 KB, within the 128 KB payload limit
HUGE = b'{"expectedVersion": ' + b"9" * 5000 + b"}"


@dataclass
class Device:
    aws: AwsIotBackend
    thing: str
    cert_file: Path
    key_file: Path

    def tls(self) -> Any:
        return client_context(self.aws.endpoints()["ca"], self.cert_file, self.key_file)

    async def status(self, job_id: str) -> str:
        iot = self.aws.client("iot")
        described = await asyncio.to_thread(iot.describe_job_execution, jobId=job_id, thingName=self.thing)
        return described["execution"]["status"]


@pytest_asyncio.fixture
async def device() -> AsyncIterator[Device]:
    """Thing A with its own ACTIVE certificate and job ``job1`` QUEUED for it. Without mosquitto
    the test is skipped, except under CI=true, where it fails (CI installs it)."""
    if find_mosquitto() is None:
        if os.environ.get("CI") == "true":
            pytest.fail("mosquitto is required under CI (Debian package mosquitto)")
        pytest.skip("mosquitto is not installed")
    async with MosquittoBroker() as broker:
        aws = AwsIotBackend(RealClock())
        await aws.start(broker.host, broker.port, broker.service_credentials)
        try:
            iot = aws.client("iot")

            def provision() -> tuple[str, str]:
                iot.create_thing(thingName="A")
                created = iot.create_keys_and_certificate(setAsActive=True)
                iot.attach_thing_principal(thingName="A", principal=created["certificateArn"])
                arn = iot.describe_thing(thingName="A")["thingArn"]
                iot.create_job(jobId="job1", targets=[arn], document=json.dumps({"operation": "fw"}))
                return created["certificatePem"], created["keyPair"]["PrivateKey"]

            certificate, key = await asyncio.to_thread(provision)
            yield Device(aws, "A", aws.pki.write("A.crt", certificate), aws.pki.write("A.key", key, secret=True))
        finally:
            aws.reset()
            await aws.stop()
    await asyncio.get_running_loop().shutdown_default_executor()


async def ask(client: MqttClient, topic: str, payload: Any) -> tuple[str, dict[str, Any]]:
    """Publish raw ``payload`` on ``topic``: (accepted/rejected, the reply document)."""
    return await request_reply(client, topic, payload, TIMEOUT)


async def test_jobs_and_shadow_over_mqtts_refuse_hostile_json_as_invalid_request(device: Device) -> None:
    mqtts = urlsplit(device.aws.endpoints()["mqtts"])
    client = MqttClient("A", "127.0.0.1", mqtts.port, keepalive=60, tls=device.tls())
    await client.connect(timeout=TIMEOUT)
    try:
        jobs = "$aws/things/A/jobs"
        for topic, payload in ((f"{jobs}/start-next", DEEP), (f"{jobs}/job1/update", HUGE),
                               (f"{jobs}/job1/get", b'{"a":' * 40 + b"1" + b"}" * 40)):
            outcome, reply = await ask(client, topic, payload)
            assert (outcome, reply["code"]) == ("rejected", "InvalidRequest"), (topic, reply)
        assert await device.status("job1") == "QUEUED"

        shadow = "$aws/things/A/shadow/update"
        outcome, reply = await ask(client, shadow, b'{"state": {"reported": ' + DEEP[:20_000] + b"}}")
        assert (outcome, reply["code"]) == ("rejected", 400), reply
        outcome, reply = await ask(client, shadow, b'{"state": {"reported": {"n": ' + b"9" * 5000 + b"}}}")
        assert (outcome, reply["code"]) == ("rejected", 400), reply

        # The controls: the same device, well-formed requests, served.
        outcome, reply = await ask(client, f"{jobs}/start-next", b'{"clientToken": "ok"}')
        assert outcome == "accepted" and reply["execution"]["status"] == "IN_PROGRESS", reply
        outcome, reply = await ask(client, shadow, b'{"state": {"reported": {"fw": "1.0.1"}}}')
        assert outcome == "accepted" and reply["version"] == 1, reply
    finally:
        await client.disconnect()


async def test_jobs_https_api_refuses_hostile_json_with_400_invalid_request(device: Device) -> None:
    base = device.aws.endpoints()["iot-jobs-data"]
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=device.tls())) as session:
        async def call(method: str, path: str, body: bytes | None = None) -> tuple[int, str, dict[str, Any]]:
            async with session.request(method, base + path, data=body,
                                       headers={"Content-Type": "application/json"}) as response:
                return (response.status, response.headers.get("x-amzn-ErrorType", ""),
                        json.loads(await response.read()))

        for method, path, body in (("PUT", "/things/A/jobs/$next", DEEP),
                                   ("POST", "/things/A/jobs/job1", HUGE),
                                   ("POST", "/things/A/jobs/job1", b'{"status": ["IN_PROGRESS"]}')):
            status, error_type, reply = await call(method, path, body)
            assert (status, error_type) == (400, "InvalidRequestException"), (path, status, reply)
        assert await device.status("job1") == "QUEUED"

        status, _, reply = await call("PUT", "/things/A/jobs/$next", b"{}")  # the control
        assert status == 200 and reply["execution"]["status"] == "IN_PROGRESS", reply

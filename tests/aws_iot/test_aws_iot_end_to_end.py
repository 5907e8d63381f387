"""End to end on a real mosquitto: AwsIotBackend (moto + bridge + iot-jobs-data) and a device on
the runtime's MqttClient doing notify-next, start-next, update and a shadow report."""

from __future__ import annotations

import asyncio
import json
import shutil
import socket
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from otaharness.runtime.pki import client_context

from otaharness.servers.aws_iot import AwsIotBackend

mqtt = pytest.importorskip("otaharness.runtime.mqtt")
clock_module = pytest.importorskip("otaharness.runtime.clock")

MOSQUITTO = shutil.which("mosquitto") or ("/usr/sbin/mosquitto" if Path("/usr/sbin/mosquitto").exists() else None)
pytestmark = pytest.mark.skipif(MOSQUITTO is None, reason="mosquitto is not installed")
JOBS = "$aws/things/fota/jobs"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def mosquitto(tmp_path: Path) -> Iterator[int]:
    port = free_port()
    config = tmp_path / "mosquitto.conf"
    config.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n")
    process = subprocess.Popen([str(MOSQUITTO), "-c", str(config)], stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    try:
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.1).close()
                break
            except OSError:
                if process.poll() is not None:
                    pytest.fail("mosquitto exited at start")
                time.sleep(0.02)
        yield port
    finally:
        process.terminate()
        process.wait(timeout=5)


@pytest.fixture
async def backend(mosquitto: int) -> AsyncIterator[AwsIotBackend]:
    aws = AwsIotBackend(clock_module.RealClock())
    await aws.start("127.0.0.1", mosquitto)
    yield aws
    aws.reset()
    await aws.stop()


class Device:
    """A tracker on MqttClient over mutual TLS: every received message goes to one queue per topic."""

    def __init__(self, port: int, tls: Any) -> None:
        self.client = mqtt.MqttClient("fota", "127.0.0.1", port, tls=tls)
        self.queues: dict[str, asyncio.Queue[dict[str, Any]]] = {}

    async def subscribe(self, *topics: str) -> None:
        for topic in topics:
            self.queues[topic] = asyncio.Queue()
            self.client.add_handler(topic, self._receive)
            await self.client.subscribe(topic, qos=1)

    def _receive(self, topic: str, payload: bytes) -> None:
        self.queues[topic].put_nowait(json.loads(payload))

    async def next(self, topic: str) -> dict[str, Any]:
        return await asyncio.wait_for(self.queues[topic].get(), 5)


async def test_tracker_runs_a_fota_job_through_mosquitto(backend: AwsIotBackend, mosquitto: int) -> None:
    iot = backend.client("iot")
    endpoints = backend.endpoints()
    assert set(endpoints) == {"aws", "iot-jobs-data", "mqtts", "ca"}
    arn = (await asyncio.to_thread(iot.create_thing, thingName="fota"))["thingArn"]
    cert = await asyncio.to_thread(iot.create_keys_and_certificate, setAsActive=True)
    await asyncio.to_thread(iot.attach_thing_principal, thingName="fota", principal=cert["certificateArn"])
    pki = backend.pki
    tls = client_context(endpoints["ca"], pki.write("fota.crt", cert["certificatePem"]),
                         pki.write("fota.key", cert["keyPair"]["PrivateKey"], secret=True))
    device = Device(int(endpoints["mqtts"].rsplit(":", 1)[1]), tls)
    await device.client.connect()
    try:
        await device.subscribe(f"{JOBS}/notify-next", f"{JOBS}/start-next/accepted",
                               f"{JOBS}/job1/update/accepted", "$aws/things/fota/shadow/update/accepted")
        await asyncio.to_thread(iot.create_job, jobId="job1", targets=[arn],
                                document=json.dumps({"operation": "app_fw_update", "fwversion": "1.0.1"}))
        announced = await device.next(f"{JOBS}/notify-next")  # published from moto's thread
        assert announced["execution"]["jobId"] == "job1" and announced["execution"]["status"] == "QUEUED"

        await device.client.publish(f"{JOBS}/start-next", {"clientToken": "tok-1"}, qos=1)
        started = await device.next(f"{JOBS}/start-next/accepted")
        assert started["clientToken"] == "tok-1"
        assert (started["execution"]["status"], started["execution"]["versionNumber"]) == ("IN_PROGRESS", 2)

        await device.client.publish(f"{JOBS}/job1/update",
                                    {"status": "SUCCEEDED", "expectedVersion": "2", "clientToken": "tok-2",
                                     "includeJobExecutionState": True}, qos=1)
        updated = await device.next(f"{JOBS}/job1/update/accepted")
        assert updated["executionState"]["status"] == "SUCCEEDED" and updated["clientToken"] == "tok-2"
        assert await device.next(f"{JOBS}/notify-next") == {"timestamp": updated["timestamp"]}

        execution = (await asyncio.to_thread(iot.describe_job_execution, jobId="job1", thingName="fota"))["execution"]
        assert (execution["status"], execution["versionNumber"]) == ("SUCCEEDED", 3)

        await device.client.publish("$aws/things/fota/shadow/update",
                                    {"state": {"reported": {"dev": {"v": {"appV": "1.0.1"}}}}}, qos=1)
        await device.next("$aws/things/fota/shadow/update/accepted")
        shadow = await asyncio.to_thread(backend.client("iot-data").get_thing_shadow, thingName="fota")
        assert json.loads(shadow["payload"].read())["state"]["reported"]["dev"]["v"]["appV"] == "1.0.1"
    finally:
        await device.client.disconnect()


async def test_presigned_s3_urls_work_over_https_and_the_server_name_is_checked(backend: AwsIotBackend) -> None:
    """A presigned GET of a private object, over TLS verified against the scenario CA, addressed
    virtual-host style by name (SNI and certificate check for <bucket>.s3.amazonaws.com)."""
    import ssl
    import urllib.error
    import urllib.parse
    import urllib.request

    s3 = backend.client("s3")
    await asyncio.to_thread(s3.create_bucket, Bucket="private-fw")
    await asyncio.to_thread(s3.put_object, Bucket="private-fw", Key="fw.bin", Body=b"IMAGE")
    url = await asyncio.to_thread(s3.generate_presigned_url, "get_object",
                                  Params={"Bucket": "private-fw", "Key": "fw.bin"}, ExpiresIn=300)
    context = ssl.create_default_context(cafile=backend.endpoints()["ca"])

    def fetch(address: str, host: str) -> tuple[int, bytes]:
        request = urllib.request.Request(address, headers={"Host": host})
        try:
            with urllib.request.urlopen(request, context=context, timeout=10) as response:
                return response.status, response.read()
        except urllib.error.HTTPError as error:
            return error.code, error.read()

    status, body = await asyncio.to_thread(fetch, url, urllib.parse.urlsplit(url).netloc)
    assert (status, body) == (200, b"IMAGE")
    unsigned = url.split("?", 1)[0]  # moto checks that a private GET is signed (not the signature)
    assert (await asyncio.to_thread(fetch, unsigned, urllib.parse.urlsplit(url).netloc))[0] == 403

    # The same server, dialled by a host name its certificate does not name, is refused.
    wrong = ssl.create_default_context(cafile=backend.endpoints()["ca"])
    host, port = urllib.parse.urlsplit(backend.endpoints()["aws"]).netloc.split(":")

    def dial_as(name: str) -> None:
        with socket.create_connection((host, int(port)), timeout=10) as raw:
            wrong.wrap_socket(raw, server_hostname=name).close()

    await asyncio.to_thread(dial_as, "fw.s3.amazonaws.com")  # named by the certificate
    with pytest.raises(ssl.SSLCertVerificationError, match="Hostname mismatch"):
        await asyncio.to_thread(dial_as, "storage.example.com")

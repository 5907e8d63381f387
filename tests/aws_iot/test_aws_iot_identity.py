"""AWS IoT device identity, tried from outside: every way a device (or a stranger on the network)
could pretend to be someone else, against a real mosquitto behind our MQTT gateway (mutual TLS)
and the iot-jobs-data HTTPS API, on real time.

Each refusal has its positive control in the same test: the same client with the right identity
succeeds, so that a test fails if the refusal comes for the wrong reason (or for every client).
"""

from __future__ import annotations

import asyncio
import json
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import pytest_asyncio
from botocore.exceptions import ClientError

from aws_iot_harness import request_reply
from otaharness.runtime.broker import MosquittoBroker, find_mosquitto
from otaharness.runtime.clock import RealClock
from otaharness.runtime.mqtt import Message, MqttClient, MqttError
from otaharness.runtime.pki import Issued, client_context
from otaharness.servers.aws_iot import AwsIotBackend

pytestmark = pytest.mark.skipif(find_mosquitto() is None, reason="mosquitto is not installed")

TIMEOUT = 10.0  # real seconds for anything we wait for
QUIET = 1.0  # real seconds a message that must not come is waited for, after the control got its own
DOCUMENT = {"operation": "app_fw_update", "fwversion": "1.0.1"}


@dataclass
class Device:
    thing: str
    cert_file: Path
    key_file: Path
    certificate_id: str
    certificate_arn: str


@dataclass
class World:
    aws: AwsIotBackend
    broker: MosquittoBroker
    clients: list[MqttClient] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.iot_client = self.aws.client("iot")
        mqtts = urlsplit(self.aws.endpoints()["mqtts"])
        assert (mqtts.scheme, mqtts.hostname) == ("mqtts", "127.0.0.1")
        self.mqtts_port = mqtts.port
        self.ca_file = self.aws.endpoints()["ca"]

    async def iot(self, operation: str, **arguments: Any) -> Any:
        """A control-plane call (moto answers in its own thread, boto3 blocks)."""
        call = getattr(self.iot_client, operation)
        return await asyncio.wait_for(asyncio.to_thread(call, **arguments), TIMEOUT)

    async def thing(self, name: str) -> Device:
        """A thing with its own certificate from CreateKeysAndCertificate, ACTIVE and attached."""
        await self.iot("create_thing", thingName=name)
        created = await self.iot("create_keys_and_certificate", setAsActive=True)
        await self.iot("attach_thing_principal", thingName=name, principal=created["certificateArn"])
        return Device(name, self.aws.pki.write(f"{name}.crt", created["certificatePem"]),
                      self.aws.pki.write(f"{name}.key", created["keyPair"]["PrivateKey"], secret=True),
                      created["certificateId"], created["certificateArn"])

    async def give(self, thing: str, issued: Issued, file_name: str) -> Device:
        """``issued`` registered ACTIVE (as if AWS's CA had issued it) and attached to ``thing``."""
        registered = self.aws.register_issued_certificate(issued)
        await self.iot("attach_thing_principal", thingName=thing, principal=registered["certificateArn"])
        return Device(thing, self.aws.pki.write(f"{file_name}.crt", issued.certificate_pem),
                      self.aws.pki.write(f"{file_name}.key", issued.key_pem, secret=True),
                      registered["certificateId"], registered["certificateArn"])

    def tls(self, cert_file: Path | None = None, key_file: Path | None = None) -> ssl.SSLContext:
        return client_context(self.ca_file, cert_file, key_file)

    def device_client(self, client_id: str, device: Device | None, *, protocol: int = 4,
                      certificate: tuple[Path, Path] | None = None) -> MqttClient:
        """A client of the mqtts endpoint presenting ``device``'s certificate (or ``certificate``;
        neither: none at all)."""
        cert_file, key_file = certificate or ((device.cert_file, device.key_file) if device else (None, None))
        client = MqttClient(client_id, "127.0.0.1", self.mqtts_port, protocol=protocol, keepalive=60,
                            tls=self.tls(cert_file, key_file))
        self.clients.append(client)
        return client

    async def connected(self, device: Device, *, protocol: int = 4) -> MqttClient:
        client = self.device_client(device.thing, device, protocol=protocol)
        await client.connect(timeout=TIMEOUT)
        return client

    async def queue_job(self, job_id: str, *things: str) -> None:
        arns = [(await self.iot("describe_thing", thingName=thing))["thingArn"] for thing in things]
        await self.iot("create_job", jobId=job_id, targets=arns, document=json.dumps(DOCUMENT))

    async def status(self, job_id: str, thing: str) -> str:
        described = await self.iot("describe_job_execution", jobId=job_id, thingName=thing)
        return described["execution"]["status"]

    def gateway_events(self) -> list[str]:
        assert self.aws.gateway is not None
        return [event.what for event in self.aws.gateway.events]


@pytest_asyncio.fixture
async def world() -> AsyncIterator[World]:
    async with MosquittoBroker() as broker:
        assert broker.service_credentials is not None, (
            "mosquitto_passwd is missing: the broker lets anonymous clients on $aws/ topics")
        aws = AwsIotBackend(RealClock())
        await aws.start(broker.host, broker.port, broker.service_credentials)
        world = World(aws, broker)
        try:
            yield world
        finally:
            for client in world.clients:
                await client.disconnect()
            aws.reset()
            await aws.stop()
    await asyncio.get_running_loop().shutdown_default_executor()


async def next_message(stream: Any) -> Message:
    return await asyncio.wait_for(stream.__anext__(), TIMEOUT)


def collect(client: MqttClient, topic_filter: str) -> list[Message]:
    """Every message ``client`` receives on ``topic_filter`` from now on."""
    received: list[Message] = []
    client.add_handler(topic_filter, lambda topic, payload: received.append(Message(topic, payload)))
    return received


def lost_connection(client: MqttClient) -> asyncio.Future[MqttError]:
    """Resolved with the error when ``client``'s established connection is lost."""
    lost: asyncio.Future[MqttError] = asyncio.get_running_loop().create_future()
    client.on_disconnect = lambda error: lost.done() or lost.set_result(error)
    return lost


async def request(client: MqttClient, topic: str, payload: Any) -> tuple[str, dict[str, Any]]:
    """A Jobs MQTT API request from ``client``: (accepted/rejected, the reply document)."""
    return await request_reply(client, topic, payload, TIMEOUT)


# -- the TLS handshake ---------------------------------------------------------------------------


async def test_no_client_certificate_is_refused_in_the_handshake(world: World) -> None:
    a = await world.thing("A")
    anonymous = world.device_client("A", None)
    # TLS 1.3: the server refuses after the client's Finished, with the alert as the reason.
    with pytest.raises(MqttError, match="alert certificate required"):
        await anonymous.connect(timeout=TIMEOUT)
    assert not anonymous.is_connected

    control = world.device_client("A", a)
    await control.connect(timeout=TIMEOUT)
    assert control.is_connected


@pytest.mark.parametrize("issue, reason", [
    # Registered ACTIVE and attached to A: only its issuer is wrong.
    (lambda pki: pki.rogue_ca.issue("AWS IoT Certificate"), "alert unknown ca"),
    # Registered ACTIVE and attached to A: only its validity (on the real clock) is wrong.
    (lambda pki: pki.device_ca.issue_expired("AWS IoT Certificate"), "certificate expired"),
], ids=["another CA", "expired"])
async def test_a_certificate_of_another_ca_or_expired_is_refused(world: World, issue, reason) -> None:
    a = await world.thing("A")
    wrong = await world.give("A", issue(world.aws.pki), "A-wrong")
    refused = world.device_client("A", wrong)
    with pytest.raises(MqttError, match=reason):
        await refused.connect(timeout=TIMEOUT)
    assert not refused.is_connected

    control = world.device_client("A", a)
    await control.connect(timeout=TIMEOUT)
    assert control.is_connected


# -- certificate status ----------------------------------------------------------------------------


async def test_an_inactive_certificate_is_refused_until_activated_again(world: World) -> None:
    a = await world.thing("A")
    await world.iot("update_certificate", certificateId=a.certificate_id, newStatus="INACTIVE")
    refused_client = world.device_client("A", a)
    with pytest.raises(MqttError):
        await refused_client.connect(timeout=TIMEOUT)
    assert not refused_client.is_connected
    assert any(f"{a.certificate_id[:12]} is INACTIVE" in what for what in world.gateway_events()), (
        world.gateway_events())

    await world.iot("update_certificate", certificateId=a.certificate_id, newStatus="ACTIVE")
    control = world.device_client("A", a)
    await control.connect(timeout=TIMEOUT)
    assert await control.subscribe("$aws/things/A/jobs/notify-next", qos=1, timeout=TIMEOUT) == 1


async def test_an_open_connection_is_cut_when_its_certificate_is_revoked(world: World) -> None:
    a, b = await world.thing("A"), await world.thing("B")
    client_a, client_b = await world.connected(a), await world.connected(b)
    lost_a, lost_b = lost_connection(client_a), lost_connection(client_b)
    assert await client_a.subscribe("$aws/things/A/jobs/notify-next", qos=1, timeout=TIMEOUT) == 1

    await world.iot("update_certificate", certificateId=a.certificate_id, newStatus="REVOKED")
    error = await asyncio.wait_for(lost_a, TIMEOUT)
    assert "connection to" in str(error)
    assert not client_a.is_connected
    assert any(f"disconnected: certificate {a.certificate_id[:12]} is REVOKED" in what
               for what in world.gateway_events()), world.gateway_events()

    # Only A's certificate: B's connection carries on.
    assert not lost_b.done() and client_b.is_connected
    assert await client_b.subscribe("$aws/things/B/jobs/notify-next", qos=1, timeout=TIMEOUT) == 1

    again = world.device_client("A", a)
    with pytest.raises(MqttError):
        await again.connect(timeout=TIMEOUT)


# -- a thing acting on another thing's topics ----------------------------------------------------------


async def test_thing_b_subscribing_to_a_s_topics_is_closed_over_mqtt311(world: World) -> None:
    a, b = await world.thing("A"), await world.thing("B")
    client_a, client_b = await world.connected(a), await world.connected(b)
    lost_b = lost_connection(client_b)
    # The control: B may subscribe to its own notify-next on the same connection.
    assert await client_b.subscribe("$aws/things/B/jobs/notify-next", qos=1, timeout=TIMEOUT) == 1

    with pytest.raises(MqttError, match="lost"):
        await client_b.subscribe("$aws/things/A/jobs/notify-next", qos=1, timeout=TIMEOUT)
    await asyncio.wait_for(lost_b, TIMEOUT)
    assert not client_b.is_connected
    assert "SUBSCRIBE to '$aws/things/A/jobs/notify-next' refused" in world.gateway_events()

    # A's own subscription is unaffected.
    assert client_a.is_connected
    assert await client_a.subscribe("$aws/things/A/jobs/notify-next", qos=1, timeout=TIMEOUT) == 1


async def test_thing_b_subscribing_to_a_s_topics_gets_suback_not_authorized_over_mqtt5(world: World) -> None:
    a, b = await world.thing("A"), await world.thing("B")
    client_a = await world.connected(a, protocol=5)
    client_b = await world.connected(b, protocol=5)
    seen_by_b = collect(client_b, "$aws/things/A/jobs/notify-next")
    notify_a = client_a.messages("$aws/things/A/jobs/notify-next")

    with pytest.raises(MqttError, match="Not authorized"):
        await client_b.subscribe("$aws/things/A/jobs/notify-next", qos=1, timeout=TIMEOUT)
    with pytest.raises(MqttError, match="Not authorized"):
        await client_b.subscribe("$aws/things/+/jobs/notify-next", qos=1, timeout=TIMEOUT)
    # MQTT 5 keeps the connection; B's own topics still work.
    assert client_b.is_connected
    assert await client_b.subscribe("$aws/things/B/jobs/notify-next", qos=1, timeout=TIMEOUT) == 1
    assert await client_a.subscribe("$aws/things/A/jobs/notify-next", qos=1, timeout=TIMEOUT) == 1

    await world.queue_job("job1", "A")
    notified = await next_message(notify_a)
    assert json.loads(notified.payload)["execution"]["jobId"] == "job1"
    await asyncio.sleep(QUIET)
    assert seen_by_b == []


@pytest.mark.parametrize("protocol", [4, 5], ids=["mqtt311", "mqtt5"])
async def test_thing_b_cannot_update_a_s_job_execution(world: World, protocol: int) -> None:
    a, b = await world.thing("A"), await world.thing("B")
    await world.queue_job("job1", "A")
    client_a = await world.connected(a, protocol=protocol)
    client_b = await world.connected(b, protocol=protocol)
    lost_b = lost_connection(client_b)
    outcome, started = await request(client_a, "$aws/things/A/jobs/start-next", {"clientToken": "a-1"})
    assert (outcome, started["execution"]["status"]) == ("accepted", "IN_PROGRESS")

    forged = {"status": "SUCCEEDED", "statusDetails": {"by": "B"}, "clientToken": "b-1"}
    with pytest.raises(MqttError) as refused:
        await client_b.publish("$aws/things/A/jobs/job1/update", forged, qos=1, timeout=TIMEOUT)
    assert "PUBLISH to '$aws/things/A/jobs/job1/update' refused" in world.gateway_events()
    if protocol == 4:  # AWS IoT closes a 3.1.1 connection that publishes where it may not
        assert "lost" in str(refused.value)
        await asyncio.wait_for(lost_b, TIMEOUT)
        assert not client_b.is_connected
    else:  # MQTT 5: PUBACK 0x87, the connection stays
        assert "Not authorized" in str(refused.value)
        assert client_b.is_connected and not lost_b.done()

    # A asks after B (A's request reaches the jobs service behind anything B got through).
    outcome, described = await request(client_a, "$aws/things/A/jobs/job1/get", {"clientToken": "a-2"})
    assert (outcome, described["execution"]["status"]) == ("accepted", "IN_PROGRESS")
    assert "statusDetails" not in described["execution"] or described["execution"]["statusDetails"] != {"by": "B"}
    assert await world.status("job1", "A") == "IN_PROGRESS"

    # The control: the same update from A itself is accepted.
    outcome, updated = await request(client_a, "$aws/things/A/jobs/job1/update",
                                     {"status": "SUCCEEDED", "clientToken": "a-3"})
    assert outcome == "accepted", updated
    assert await world.status("job1", "A") == "SUCCEEDED"


# -- a client id naming another thing ---------------------------------------------------------------------


def connect_packet(client_id: str, level: int) -> bytes:
    """A clean-session CONNECT (MQTT 3.1.1 §3.1 / MQTT 5 §3.1), keepalive 30 s, no credentials."""
    raw_id = client_id.encode()
    body = (b"\x00\x04MQTT" + bytes([level, 0x02]) + (30).to_bytes(2, "big")
            + (b"\x00" if level == 5 else b"") + len(raw_id).to_bytes(2, "big") + raw_id)
    assert len(body) < 128
    return bytes([0x10, len(body)]) + body


async def raw_connect(world: World, device: Device, client_id: str, level: int) -> bytes:
    """Everything the gateway sends on a TLS connection with ``device``'s certificate after a
    CONNECT as ``client_id``, up to the close (or TIMEOUT)."""
    reader, writer = await asyncio.wait_for(asyncio.open_connection(
        "127.0.0.1", world.mqtts_port, ssl=world.tls(device.cert_file, device.key_file),
        server_hostname="127.0.0.1"), TIMEOUT)
    received = bytearray()
    try:
        writer.write(connect_packet(client_id, level))
        await writer.drain()
        async with asyncio.timeout(TIMEOUT):
            while chunk := await reader.read(4096):
                received += chunk
                if level == 5 and received[:1] == b"\x20" and len(received) >= 2 + received[1]:
                    if received[3:4] == b"\x00":  # accepted: the gateway will not close
                        break
    except (ConnectionError, ssl.SSLError):
        pass
    finally:
        writer.close()
        try:
            await writer.wait_closed()
        except (ConnectionError, ssl.SSLError):
            pass
    return bytes(received)


async def test_b_s_certificate_with_a_s_client_id_is_refused_and_learns_nothing_of_a(world: World) -> None:
    a, b = await world.thing("A"), await world.thing("B")
    client_a = await world.connected(a)
    lost_a = lost_connection(client_a)

    # MQTT 3.1.1: closed without CONNACK, exactly as for a thing that does not exist.
    assert await raw_connect(world, b, "A", 4) == b""
    assert await raw_connect(world, b, "no-such-thing", 4) == b""
    # MQTT 5: CONNACK 0x87 (not authorized), the same for both.
    assert await raw_connect(world, b, "A", 5) == b"\x20\x03\x00\x87\x00"
    assert await raw_connect(world, b, "no-such-thing", 5) == b"\x20\x03\x00\x87\x00"

    impostor = world.device_client("A", b)
    with pytest.raises(MqttError):
        await impostor.connect(timeout=TIMEOUT)
    assert not impostor.is_connected

    # A's connection was not taken over (a CONNECT with A's client id reaching the broker would
    # have closed it): it is still there and answers.
    assert not lost_a.done() and client_a.is_connected
    assert await client_a.subscribe("$aws/things/A/jobs/notify-next", qos=1, timeout=TIMEOUT) == 1
    # The controls: B as itself, over the client and over raw bytes.
    connack = await raw_connect(world, b, "B", 5)
    assert (connack[0], connack[3]) == (0x20, 0x00), connack  # CONNACK, reason Success
    control = world.device_client("B", b)
    await control.connect(timeout=TIMEOUT)
    assert control.is_connected


# -- a client that skips the gateway --------------------------------------------------------------------


async def test_an_anonymous_client_of_the_broker_gets_nothing_of_a_s_topics(world: World) -> None:
    a = await world.thing("A")
    client_a = await world.connected(a)
    notify_a = client_a.messages("$aws/things/A/jobs/notify-next")
    assert await client_a.subscribe("$aws/things/A/jobs/notify-next", qos=1, timeout=TIMEOUT) == 1

    stranger = MqttClient("stranger", world.broker.host, world.broker.port, keepalive=60)
    world.clients.append(stranger)
    await stranger.connect(timeout=TIMEOUT)
    seen = collect(stranger, "$aws/#")
    for topic_filter in ("$aws/things/A/jobs/notify-next", "$aws/things/+/jobs/#", "$aws/#", "#"):
        try:
            await stranger.subscribe(topic_filter, qos=1, timeout=TIMEOUT)
        except MqttError as refused:  # a SUBACK failure is as good as a silent filter
            assert "refused subscription" in str(refused), refused
    assert stranger.is_connected
    # Nor can it act for A through the bridge.
    await stranger.publish("$aws/things/A/jobs/start-next", {"clientToken": "stranger"}, qos=1,
                           timeout=TIMEOUT)

    await world.queue_job("job1", "A")
    notified = await next_message(notify_a)
    assert json.loads(notified.payload)["execution"]["jobId"] == "job1"
    await asyncio.sleep(QUIET)
    assert seen == []
    assert await world.status("job1", "A") == "QUEUED"


# -- the jobs HTTPS API ------------------------------------------------------------------------------------


async def test_jobs_https_api_serves_a_certificate_only_its_own_thing(world: World) -> None:
    a, b = await world.thing("A"), await world.thing("B")
    await world.queue_job("job1", "A", "B")

    def call(device: Device, thing: str) -> dict[str, Any]:
        jobs = world.aws.client("iot-jobs-data", certificate=(str(device.cert_file), str(device.key_file)))
        return jobs.get_pending_job_executions(thingName=thing)

    async def pending(device: Device, thing: str) -> dict[str, Any]:
        return await asyncio.wait_for(asyncio.to_thread(call, device, thing), TIMEOUT)

    own = await pending(a, "A")
    assert [job["jobId"] for job in own["queuedJobs"]] == ["job1"] and own["inProgressJobs"] == []
    assert [job["jobId"] for job in (await pending(b, "B"))["queuedJobs"]] == ["job1"]

    with pytest.raises(ClientError) as forbidden:
        await pending(a, "B")
    error = forbidden.value.response
    assert (error["Error"]["Code"], error["ResponseMetadata"]["HTTPStatusCode"]) == ("ForbiddenException", 403)
    assert "'B' is not attached" in error["Error"]["Message"]

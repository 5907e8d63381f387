"""MqttClient against real brokers (a mosquitto process, the amqtt fallback) over real sockets."""

import asyncio
import json
import os
import resource
import signal
import socket

import pytest
import pytest_asyncio

from otaharness.runtime.broker import AmqttBroker, MosquittoBroker, free_port
from otaharness.runtime.mqtt import (
    Message, MqttArgumentError, MqttClient, MqttError, encode_payload, validate_topic_filter)


@pytest_asyncio.fixture
async def mosquitto():
    async with MosquittoBroker() as broker:
        yield broker


@pytest_asyncio.fixture(params=["mosquitto", "amqtt"])
async def any_broker(request):
    async with (MosquittoBroker() if request.param == "mosquitto" else AmqttBroker()) as broker:
        yield broker


async def connected(broker, client_id: str, **options) -> MqttClient:
    # As the service user where the broker has one: anonymous clients are kept off $-topics.
    if broker.service_credentials is not None:
        options.setdefault("username", broker.service_credentials[0])
        options.setdefault("password", broker.service_credentials[1])
    client = MqttClient(client_id, broker.host, broker.port, **options)
    await client.connect()
    return client


def loop_resources(loop: asyncio.AbstractEventLoop) -> tuple[int, int]:
    """(registered readers/writers, live timers): asyncio has no public view of these."""
    return len(loop._selector.get_map()), sum(not timer.cancelled() for timer in loop._scheduled)


async def settled_resources(loop: asyncio.AbstractEventLoop, expected: tuple[int, int]) -> tuple[int, int]:
    """loop_resources once a fake server's side of a closed connection has wound down too."""
    for _ in range(100):
        if loop_resources(loop) == expected:
            break
        await asyncio.sleep(0.01)
    return loop_resources(loop)


async def test_publish_and_subscribe_qos0_qos1_including_aws_topics(any_broker):
    device = await connected(any_broker, "tracker-1")
    backend = await connected(any_broker, "jobs-bridge")
    received: list[Message] = []
    backend.add_handler("$aws/things/+/jobs/#",
                        lambda topic, payload: received.append(Message(topic, payload)))
    device_inbox = device.messages("$aws/things/tracker-1/jobs/start-next/accepted")
    assert await backend.subscribe("$aws/things/+/jobs/#", qos=1) == 1
    assert await device.subscribe("$aws/things/tracker-1/jobs/start-next/accepted", qos=0) == 0

    await device.publish("$aws/things/tracker-1/jobs/start-next", {"clientToken": "t1"}, qos=1)
    await device.publish("$aws/things/tracker-1/jobs/get", "plain text", qos=0)
    await backend.publish("$aws/things/tracker-1/jobs/start-next/accepted", b"\x00\x01binary", qos=1)

    accepted = await asyncio.wait_for(device_inbox.__anext__(), 5)
    assert accepted == Message("$aws/things/tracker-1/jobs/start-next/accepted", b"\x00\x01binary")
    async with asyncio.timeout(5):
        while len(received) < 3:
            await asyncio.sleep(0.005)
    # Two publishers: no order between them. The bridge also sees the responses it sends.
    assert sorted(received) == [
        Message("$aws/things/tracker-1/jobs/get", b"plain text"),
        Message("$aws/things/tracker-1/jobs/start-next", b'{"clientToken":"t1"}'),
        Message("$aws/things/tracker-1/jobs/start-next/accepted", b"\x00\x01binary"),
    ]

    await device.disconnect()
    await backend.disconnect()
    with pytest.raises(StopAsyncIteration):
        await device_inbox.__anext__()


async def test_wildcards_follow_mqtt_rules_including_dollar_topics(mosquitto):
    client = await connected(mosquitto, "watcher")
    publisher = await connected(mosquitto, "publisher")
    seen: dict[str, list[str]] = {}
    filters = ["#", "+/things/+/jobs/notify", "$aws/things/+/jobs/notify", "$aws/#",
               "devices/+/status", "devices/#", "devices/+"]
    for topic_filter in filters:
        seen[topic_filter] = []
        client.add_handler(topic_filter, lambda topic, payload, f=topic_filter: seen[f].append(topic))
    await client.subscribe("#")
    await client.subscribe("$aws/#")
    for topic in ["$aws/things/t1/jobs/notify", "devices/a/status", "devices", "devices/a/b/c"]:
        await publisher.publish(topic, b"", qos=1)
    await asyncio.sleep(0.05)

    assert seen["#"] == ["devices/a/status", "devices", "devices/a/b/c"]  # never a $ topic
    assert seen["+/things/+/jobs/notify"] == []
    assert seen["$aws/things/+/jobs/notify"] == ["$aws/things/t1/jobs/notify"]
    assert seen["$aws/#"] == ["$aws/things/t1/jobs/notify"]
    assert seen["devices/+/status"] == ["devices/a/status"]
    assert seen["devices/#"] == ["devices/a/status", "devices", "devices/a/b/c"]  # '#' also the parent
    assert seen["devices/+"] == []
    await client.disconnect()
    await publisher.disconnect()


async def test_handlers_can_be_removed_and_coroutine_handlers_run_as_tasks(mosquitto):
    client = await connected(mosquitto, "echo")
    calls = []

    def plain(topic, payload):
        calls.append(("plain", payload))

    async def replying(topic, payload):
        await asyncio.sleep(0)
        await client.publish("echo/out", payload + b"!", qos=1)

    client.add_handler("echo/in", plain)
    client.add_handler("echo/in", replying)
    replies = client.messages("echo/out")
    await client.subscribe("echo/#")
    await client.publish("echo/in", b"one")
    assert await asyncio.wait_for(replies.__anext__(), 5) == Message("echo/out", b"one!")
    client.remove_handler("echo/in", plain)
    await client.publish("echo/in", b"two")
    assert await asyncio.wait_for(replies.__anext__(), 5) == Message("echo/out", b"two!")
    assert calls == [("plain", b"one")]
    assert not client.handler_errors
    await client.disconnect()


async def test_failing_handlers_are_recorded_and_do_not_stop_delivery(mosquitto):
    client = await connected(mosquitto, "fragile")
    later = client.messages("t/#")

    def broken(topic, payload):
        raise RuntimeError("handler bug")

    client.add_handler("t/#", broken)
    await client.subscribe("t/#")
    await client.publish("t/1", b"x")
    assert (await asyncio.wait_for(later.__anext__(), 5)).topic == "t/1"
    assert [str(error) for error in client.handler_errors] == ["handler bug"]
    await client.disconnect()


async def test_mqtt5_client_and_bind_address_are_used(mosquitto):
    client = await connected(mosquitto, "v5-device", protocol=5, bind_address="127.1.0.7")
    inbox = client.messages("v5/#")
    assert await client.subscribe("v5/#", qos=1) == 1
    await client.publish("v5/hello", {"n": 1}, qos=1)
    assert await asyncio.wait_for(inbox.__anext__(), 5) == Message("v5/hello", b'{"n":1}')
    await client.disconnect()
    assert "New connection from 127.1.0.7" in mosquitto.log_path.read_text()


async def test_connect_to_nothing_raises_mqtt_error():
    client = MqttClient("lonely", "127.0.0.1", free_port())
    with pytest.raises(MqttError, match="cannot connect"):
        await client.connect()
    assert not client.is_connected


async def fake_broker(reply: bytes):
    """A TCP server that answers anything with ``reply`` (or stays silent if it is empty)."""
    async def serve(reader, writer):
        await reader.read(1024)
        if reply:
            writer.write(reply)
            await writer.drain()
        await reader.read()  # hold the connection open until the client closes it
        writer.close()

    return await asyncio.start_server(serve, "127.0.0.1", 0)


async def test_refused_connack_raises_mqtt_error_with_the_reason():
    server = await fake_broker(b"\x20\x02\x00\x05")  # CONNACK: not authorized (3.1.1 §3.2.2.3)
    loop = asyncio.get_running_loop()
    before = loop_resources(loop)
    async with server:
        client = MqttClient("intruder", "127.0.0.1", server.sockets[0].getsockname()[1])
        with pytest.raises(MqttError, match="refused the connection: Not authorized"):
            await client.connect()
        assert not client.is_connected
        await client.disconnect()
        assert await settled_resources(loop, before) == before


async def test_missing_connack_times_out_and_leaves_nothing_behind():
    server = await fake_broker(b"")
    loop = asyncio.get_running_loop()
    before = loop_resources(loop)
    async with server:
        client = MqttClient("patient", "127.0.0.1", server.sockets[0].getsockname()[1])
        with pytest.raises(MqttError, match="no CONNACK"):
            await client.connect(timeout=0.2)
        await client.disconnect()
        assert await settled_resources(loop, before) == before


async def test_broker_killed_surfaces_as_disconnect_and_failed_publishes():
    broker = MosquittoBroker()
    await broker.start()
    try:
        client = await connected(broker, "survivor")
        inbox = client.messages("x/#")
        await client.subscribe("x/#")
        lost = asyncio.get_running_loop().create_future()
        client.on_disconnect = lost.set_result

        os.kill(broker.pid, signal.SIGSTOP)  # the PUBACK can never come
        pending = asyncio.create_task(client.publish("x/1", b"lost", qos=1))
        await asyncio.sleep(0.05)
        assert not pending.done()
        os.kill(broker.pid, signal.SIGKILL)

        with pytest.raises(MqttError, match="lost"):
            await asyncio.wait_for(pending, 5)
        assert isinstance(await asyncio.wait_for(lost, 5), MqttError)
        assert not client.is_connected
        with pytest.raises(MqttError, match="lost"):
            await inbox.__anext__()
        with pytest.raises(MqttError, match="not connected"):
            await client.publish("x/2", b"")
        await client.disconnect()
        assert asyncio.all_tasks() == {asyncio.current_task()}
    finally:
        await broker.stop()


async def test_disconnect_leaves_no_task_reader_writer_or_timer(mosquitto):
    loop = asyncio.get_running_loop()
    before = loop_resources(loop)
    client = await connected(mosquitto, "tidy", keepalive=60)
    assert loop_resources(loop) == (before[0] + 1, before[1] + 1)  # its socket, its keepalive timer
    started = asyncio.Event()

    async def never_finishes(topic, payload):
        started.set()
        await asyncio.sleep(3600)

    client.add_handler("slow", never_finishes)
    stream = client.messages("slow")
    await client.subscribe("slow")
    await client.publish("slow", b"go")
    await asyncio.wait_for(started.wait(), 5)

    await client.disconnect()
    assert not client.is_connected
    assert asyncio.all_tasks() == {asyncio.current_task()}
    assert loop_resources(loop) == before
    assert [message async for message in stream] == [Message("slow", b"go")]


async def test_unsubscribe_stops_delivery(mosquitto):
    client = await connected(mosquitto, "fickle")
    with pytest.raises(MqttError, match="already connected"):
        await client.connect()
    inbox = client.messages("#")
    await client.subscribe("news/a")
    await client.subscribe("news/b")
    await client.unsubscribe("news/a")
    await client.publish("news/a", "dropped", qos=1)
    await client.publish("news/b", "kept", qos=1)  # same connection: delivered in order
    assert await asyncio.wait_for(inbox.__anext__(), 5) == Message("news/b", b"kept")
    await client.disconnect()


async def test_client_can_reconnect_after_disconnect(mosquitto):
    client = await connected(mosquitto, "phoenix")
    await client.disconnect()
    await client.connect()
    inbox = client.messages("again")
    await client.subscribe("again")
    await client.publish("again", "yes")
    assert (await asyncio.wait_for(inbox.__anext__(), 5)).payload == b"yes"
    await client.disconnect()


@pytest.mark.slow  # a load run: 1,000 MQTT clients
async def test_a_thousand_clients_each_receive_one_message(mosquitto):
    count = 1000
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    needed = 3 * count + 200
    if soft < needed:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(needed, hard), hard))
    loop = asyncio.get_running_loop()
    devices = [MqttClient(f"device-{i}", mosquitto.host, mosquitto.port) for i in range(count)]
    await asyncio.gather(*(device.connect() for device in devices))
    received = {i: loop.create_future() for i in range(count)}
    for i, device in enumerate(devices):
        device.add_handler(f"fleet/{i}/cmd", lambda topic, payload, i=i: received[i].set_result(payload))
    await asyncio.gather(*(device.subscribe(f"fleet/{i}/cmd") for i, device in enumerate(devices)))
    server = await connected(mosquitto, "fleet-server")
    await asyncio.gather(*(server.publish(f"fleet/{i}/cmd", json.dumps({"id": i}), qos=1)
                           for i in range(count)))
    payloads = await asyncio.wait_for(asyncio.gather(*received.values()), 20)
    assert [json.loads(payload)["id"] for payload in payloads] == list(range(count))
    await asyncio.gather(server.disconnect(), *(device.disconnect() for device in devices))


def test_topic_filters_are_validated():
    for good in ["a", "a/b", "+", "#", "a/+/c", "a/#", "$aws/things/+/jobs/#", "/"]:
        validate_topic_filter(good)
    for bad in ["", "a/#/c", "a#", "a/b+", "##"]:
        with pytest.raises(MqttArgumentError):
            validate_topic_filter(bad)


def test_payloads_are_encoded_by_type():
    assert encode_payload(b"\x00") == b"\x00"
    assert encode_payload(bytearray(b"ab")) == b"ab"
    assert encode_payload("é") == "é".encode()
    assert encode_payload({"a": [1, None]}) == b'{"a":[1,null]}'
    with pytest.raises(MqttArgumentError, match="int"):
        encode_payload(5)
    with pytest.raises(MqttArgumentError, match="protocol"):
        MqttClient("x", "127.0.0.1", 1883, protocol=3)


def test_on_the_virtual_clock_no_timeout_fires_while_messages_cross_mosquitto():
    """The contract with otaharness/runtime/clock.py: with broker.flush as a quiet probe, time
    never jumps while a message is inside mosquitto, and a simulated day of keepalives is cheap."""
    from otaharness.runtime.clock import VirtualClock, VirtualEventLoop

    async def scenario(clock):
        loop = asyncio.get_running_loop()
        broker = MosquittoBroker()
        await broker.start()
        clock.add_quiet_probe(broker.flush)
        device = await connected(broker, "device")  # keepalive 600 s: loop_misc every 300 s
        server = await connected(broker, "server")

        async def respond(topic, payload):
            for part in range(5):  # a burst per request
                await server.publish(f"res/{part}", payload, qos=part % 2)

        server.add_handler("req", respond)
        await server.subscribe("req")
        replies = device.messages("res/+")
        await device.subscribe("res/+")

        async def requests(count):
            for i in range(count):
                await device.publish("req", str(i))
                async with asyncio.timeout(1.0):  # one virtual second
                    for _part in range(5):
                        assert (await replies.__anext__()).payload == str(i).encode()

        exchange = asyncio.create_task(requests(100))
        await clock.run_until(exchange.done, timeout=3600)
        await exchange  # raises TimeoutError if time had jumped over a message in flight
        assert loop.time() < 1.0

        jumps_before = clock.stats.jumps
        await clock.run_for(86400)  # a quiet day
        assert clock.stats.jumps - jumps_before <= 86400 / 300 + 2  # both clients' timers coincide
        assert device.is_connected and server.is_connected
        exchange = asyncio.create_task(requests(1))
        await clock.run_until(exchange.done, timeout=60)
        await exchange
        for client in (device, server):
            await client.disconnect()
        clock.remove_quiet_probe(broker.flush)
        await broker.stop()

    clock = VirtualClock()
    loop = VirtualEventLoop(clock)
    try:
        loop.run_until_complete(scenario(clock))
    finally:
        loop.run_until_complete(loop.shutdown_default_executor())
        loop.close()
    assert clock.stats.virtual_seconds_skipped >= 86400


async def test_an_ip_literal_is_resolved_without_the_loops_thread_pool():
    """A fleet's TLS connections go to 127.0.0.1: asyncio's getaddrinfo would hand each to a
    thread; a name still goes to the resolver."""
    from otaharness.runtime.mqtt import _resolve

    class NoPool:
        def __init__(self) -> None:
            self.asked: list[str] = []

        async def getaddrinfo(self, host, port, **_options):
            self.asked.append(host)
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", port))]

    loop = NoPool()
    assert (await _resolve(loop, "127.0.0.1", 8883))[0][4] == ("127.0.0.1", 8883)
    assert (await _resolve(loop, "::1", 8883))[0][4][:2] == ("::1", 8883)
    assert loop.asked == []
    assert (await _resolve(loop, "iot.example", 8883))[0][4] == ("127.0.0.1", 8883)
    assert loop.asked == ["iot.example"]

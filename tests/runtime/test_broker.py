"""Broker management against a real mosquitto process, and the flush barrier the clock relies on."""

import asyncio
import fcntl
import logging
import os
import re
import shutil
import signal
import socket
import struct
import termios

import pytest
import pytest_asyncio

from otaharness.runtime import broker as broker_module
from otaharness.runtime.broker import (
    AmqttBroker, BrokerError, BrokerPreferenceError, BrokerUnavailable, ExternalBroker,
    MosquittoBroker, TcpSocketState, _encode_connect, _encode_publish, _encode_subscribe,
    broker_backlog, choose_broker)
from otaharness.runtime.mqtt import MqttClient


@pytest_asyncio.fixture
async def mosquitto():
    async with MosquittoBroker() as broker:
        yield broker


def raw_connection(port: int, client_id: str, subscribe: str | None = None) -> socket.socket:
    """A blocking MQTT 3.1.1 connection that can send bursts faster than any client library."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    sock.sendall(_encode_connect(client_id))
    assert sock.recv(4) == b"\x20\x02\x00\x00"  # CONNACK, accepted
    if subscribe is not None:
        sock.sendall(_encode_subscribe(1, subscribe))
        assert sock.recv(5) == b"\x90\x03\x00\x01\x00"  # SUBACK for packet 1, granted QoS 0
    return sock


def readable_bytes(sock: socket.socket) -> int:
    return struct.unpack("i", fcntl.ioctl(sock.fileno(), termios.FIONREAD, b"\0\0\0\0"))[0]


async def test_mosquitto_start_and_stop_leave_no_process_or_temp_dir():
    broker = MosquittoBroker()
    await broker.start()
    pid, port, log_path = broker.pid, broker.port, broker.log_path
    assert re.fullmatch(r"mosquitto \d+\.\d+\.\d+", broker.name)
    assert broker.url == f"mqtt://127.0.0.1:{broker.port}"
    socket.create_connection((broker.host, broker.port), timeout=1).close()
    assert "running" in log_path.read_text()
    os.kill(pid, 0)  # alive

    await broker.stop()

    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    assert not log_path.parent.exists()
    assert broker.port is None
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=1)


async def test_two_brokers_run_at_once_on_different_ports():
    async with MosquittoBroker() as first, MosquittoBroker() as second:
        assert first.port != second.port
        received = []
        listener = MqttClient("listener", second.host, second.port)
        talker = MqttClient("talker", first.host, first.port)
        await listener.connect()
        await talker.connect()
        listener.add_handler("#", lambda topic, payload: received.append(topic))
        await listener.subscribe("#")
        await talker.publish("only/on/first", b"x", qos=1)
        await listener.publish("only/on/second", b"y", qos=1)
        await asyncio.sleep(0.05)
        assert received == ["only/on/second"]
        await listener.disconnect()
        await talker.disconnect()


async def test_a_broker_that_dies_at_start_reports_its_output(tmp_path):
    fake = tmp_path / "mosquitto"
    fake.write_text("#!/bin/sh\necho 'Error: Unable to open config file nonsense.'\nexit 1\n")
    fake.chmod(0o755)
    broker = MosquittoBroker(str(fake))
    with pytest.raises(BrokerError, match="(?s)exited at start.*Unable to open config file"):
        await broker.start()
    assert broker.log_path is not None and not broker.log_path.parent.exists()


def drain_like_the_clock(broker, subscriber: socket.socket) -> int:
    """What the virtual clock does: flush, and stop once the recipient has nothing to read."""
    consumed = 0
    while True:
        assert broker.flush() is True
        if not readable_bytes(subscriber):
            return consumed
        consumed += len(subscriber.recv(1 << 20))


def send_burst(publisher: socket.socket, count: int = 200) -> int:
    packets = [_encode_publish(f"flood/{i}", b"p" * 200) for i in range(count)]
    publisher.sendall(b"".join(packets))  # now all in mosquitto's receive queue
    return sum(map(len, packets))  # QoS 0 PUBLISH packets are forwarded byte for byte


async def test_flush_lets_nothing_of_a_burst_stay_behind(mosquitto):
    subscriber = raw_connection(mosquitto.port, "burst-sub", subscribe="flood/#")
    publisher = raw_connection(mosquitto.port, "burst-pub")
    try:
        for _burst in range(3):
            sent = send_burst(publisher)
            assert drain_like_the_clock(mosquitto, subscriber) == sent
    finally:
        subscriber.close()
        publisher.close()


async def test_flush_waits_for_input_the_broker_has_not_read(mosquitto):
    subscriber = raw_connection(mosquitto.port, "burst-sub", subscribe="flood/#")
    publisher = raw_connection(mosquitto.port, "burst-pub")
    os.kill(mosquitto.pid, signal.SIGSTOP)
    try:
        sent = send_burst(publisher)
        assert broker_backlog(mosquitto.port) == sent  # all of it unread in mosquitto's socket
        assert mosquitto.flush(timeout=0.2) is False
    finally:
        os.kill(mosquitto.pid, signal.SIGCONT)
    try:
        assert drain_like_the_clock(mosquitto, subscriber) == sent
    finally:
        subscriber.close()
        publisher.close()


def test_backlog_counts_bytes_no_selector_can_see_yet(monkeypatch):
    loopback, device = bytes([127, 0, 0, 1]), bytes([127, 1, 0, 7])

    def sockets(*, device_sends=0, broker_unread=0, broker_sends=0, device_unread=0):
        broker_side = [
            TcpSocketState(10, 1883, 0, loopback, bytes(4), unread=0, unsent=0),  # the listener
            TcpSocketState(1, 1883, 40001, loopback, device, unread=broker_unread, unsent=broker_sends),
            TcpSocketState(1, 1883, 40002, loopback, loopback, unread=0, unsent=0),
        ]
        client_side = [
            TcpSocketState(1, 40001, 1883, device, loopback, unread=device_unread, unsent=device_sends),
            TcpSocketState(1, 40002, 1883, loopback, loopback, unread=0, unsent=0),
        ]
        monkeypatch.setattr(broker_module, "tcp_sockets", lambda port: broker_side + client_side)
        return broker_backlog(1883)

    assert sockets() == 0
    assert sockets(device_sends=60) == 60  # held back in the device's socket (Nagle, cwnd)
    assert sockets(broker_unread=90) == 90
    assert sockets(broker_sends=700) == 700
    assert sockets(broker_sends=700, device_unread=213) == 0  # its selector sees it readable


async def test_flush_keeps_working_while_clients_exchange_200_messages(mosquitto):
    sender = MqttClient("sender", mosquitto.host, mosquitto.port)
    receiver = MqttClient("receiver", mosquitto.host, mosquitto.port)
    await sender.connect()
    await receiver.connect()
    received = []
    receiver.add_handler("chat/#", lambda topic, payload: received.append(payload))
    await receiver.subscribe("chat/#", qos=1)

    async def send_all():
        for i in range(200):
            await sender.publish(f"chat/{i % 7}", str(i), qos=i % 2)

    sending = asyncio.create_task(send_all())
    flushes = 0
    while not sending.done():
        assert mosquitto.flush() is True
        flushes += 1
        await asyncio.sleep(0)
    await sending
    assert mosquitto.flush() is True
    for _ in range(100):  # a flush made it all readable; a few loop passes read it
        if len(received) == 200:
            break
        await asyncio.sleep(0.001)
    assert sorted(int(p) for p in received) == list(range(200))
    assert flushes > 10  # flushed while the messages were crossing
    await sender.disconnect()
    await receiver.disconnect()


async def test_flush_of_a_dead_broker_returns_false(mosquitto, caplog):
    assert mosquitto.flush() is True
    os.kill(mosquitto.pid, signal.SIGKILL)
    await asyncio.sleep(0.05)
    with caplog.at_level(logging.WARNING):
        assert mosquitto.flush() is False
        assert mosquitto.flush() is False


async def test_external_broker_flushes_and_leaves_the_broker_running(mosquitto):
    external = ExternalBroker(mosquitto.url)
    assert (external.host, external.port, external.url) == ("127.0.0.1", mosquitto.port, mosquitto.url)
    await external.start()
    assert external.flush() is True
    await external.stop()
    os.kill(mosquitto.pid, 0)
    socket.create_connection((mosquitto.host, mosquitto.port), timeout=1).close()


async def test_amqtt_broker_starts_on_a_free_port_and_stops():
    broker = AmqttBroker()
    await broker.start()
    assert broker.name.startswith("amqtt ")
    assert broker.flush() is True
    socket.create_connection((broker.host, broker.port), timeout=1).close()
    await broker.stop()
    assert broker.port is None


def test_choose_broker_auto_prefers_mosquitto(monkeypatch):
    monkeypatch.setattr(shutil, "which", lambda name, path=None: "/opt/bin/mosquitto")
    chosen = choose_broker("auto", ci=True)
    assert isinstance(chosen, MosquittoBroker) and chosen.binary == "/opt/bin/mosquitto"


def test_choose_broker_finds_mosquitto_in_sbin(monkeypatch):
    def which(name, path=None):
        return "/usr/sbin/mosquitto" if path and "/usr/sbin" in path else None

    monkeypatch.setattr(shutil, "which", which)
    assert choose_broker(ci=False).binary == "/usr/sbin/mosquitto"


def test_choose_broker_without_mosquitto_falls_back_to_amqtt_with_a_warning(monkeypatch, caplog):
    monkeypatch.setattr(shutil, "which", lambda name, path=None: None)
    with caplog.at_level(logging.WARNING, logger=broker_module.__name__):
        chosen = choose_broker("auto", ci=False)
    assert isinstance(chosen, AmqttBroker)
    assert any("fallback" in record.getMessage() for record in caplog.records)


def test_choose_broker_without_mosquitto_under_ci_is_an_error(monkeypatch):
    monkeypatch.setattr(shutil, "which", lambda name, path=None: None)
    with pytest.raises(BrokerUnavailable, match="mosquitto"):
        choose_broker("auto", ci=True)
    with pytest.raises(BrokerUnavailable):
        choose_broker("mosquitto", ci=False)


def test_choose_broker_forced_choices_and_urls(monkeypatch):
    monkeypatch.setattr(shutil, "which", lambda name, path=None: None)
    assert isinstance(choose_broker("amqtt", ci=True), AmqttBroker)
    external = choose_broker("mqtt://broker.example:1884", ci=True)
    assert isinstance(external, ExternalBroker)
    assert (external.host, external.port) == ("broker.example", 1884)
    assert choose_broker("mqtt://10.0.0.5", ci=True).port == 1883
    with pytest.raises(BrokerPreferenceError, match="hivemq"):
        choose_broker("hivemq", ci=False)

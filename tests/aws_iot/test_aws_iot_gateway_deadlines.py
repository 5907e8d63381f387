"""The MQTT gateway's deadline for a TLS handshake plus CONNECT: a client that connects and sends
nothing, or stops half-way through its handshake, is cut on real time (and the gateway says so);
a virtual jump of hours while a real-time client is half-way through costs it nothing."""

from __future__ import annotations

import asyncio
import socket
import ssl
import threading

from virtual_loop import run_on_virtual_clock

from otaharness.runtime.clock import VirtualClock
from otaharness.runtime.pki import Pki
from otaharness.servers.aws_iot.identities import Identities, Principal
from otaharness.servers.aws_iot.mqtt_gateway import MqttGateway
from otaharness.servers.read_deadlines import ReadLimits

QUICK = ReadLimits(handshake=0.3)
TLS_CLIENT_HELLO_START = b"\x16\x03\x01\x00\xc8\x01\x00\x00\xc4\x03\x03"  # a ClientHello, cut short


def identities_with_nobody() -> Identities:
    def no_backend():
        raise AssertionError("nobody gets as far as authentication here")
    return Identities(no_backend)


async def cut_after_sending(gateway: MqttGateway, data: bytes) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", gateway.port)
    writer.write(data)
    try:
        return await asyncio.wait_for(reader.read(), 30)  # EOF: the gateway closed
    except ConnectionResetError:
        return b""
    finally:
        writer.close()


async def test_a_silent_or_half_shaken_tls_client_is_cut_and_recorded() -> None:
    pki = Pki()
    try:
        context = pki.server_context(["127.0.0.1"])
        gateway = MqttGateway(identities_with_nobody(), context, broker_host="127.0.0.1",
                              broker_port=1, read_limits=QUICK)
        await gateway.start()
        try:
            await cut_after_sending(gateway, b"")
            await cut_after_sending(gateway, TLS_CLIENT_HELLO_START)
        finally:
            await gateway.stop()
    finally:
        pki.close()
    cut = [event.what for event in gateway.events if "TLS handshake and CONNECT" in event.what]
    assert len(cut) == 2, list(gateway.events)


async def test_a_plain_client_without_connect_is_cut() -> None:
    gateway = MqttGateway(identities_with_nobody(), None, broker_host="127.0.0.1", broker_port=1,
                          plain_principal=Principal("plain", None, service=True), read_limits=QUICK)
    await gateway.start()
    try:
        await cut_after_sending(gateway, b"\x10\x20")  # a CONNECT's first two bytes, no more
    finally:
        await gateway.stop()
    assert any("no CONNECT within" in event.what for event in gateway.events), list(gateway.events)


def test_a_virtual_jump_of_hours_during_a_real_time_handshake_cuts_nothing() -> None:
    """The real-time client (a thread) opens TCP, the scenario lets 3 hours pass in jumps, then the
    client completes its TLS handshake: the gateway was still there."""
    connected, may_go_on = threading.Event(), threading.Event()
    answer: list[bytes] = []
    pki = Pki()

    def real_time_client(port: int) -> None:
        with socket.create_connection(("127.0.0.1", port), timeout=30) as client:
            connected.set()
            may_go_on.wait(30)
            tls = ssl.create_default_context()
            tls.check_hostname, tls.verify_mode = False, ssl.CERT_NONE
            with tls.wrap_socket(client) as secured:
                answer.append(secured.version().encode())

    async def scenario(clock: VirtualClock) -> None:
        loop = asyncio.get_running_loop()
        context = pki.server_context(["127.0.0.1"])
        gateway = MqttGateway(identities_with_nobody(), context, broker_host="127.0.0.1",
                              broker_port=1)  # default limits: far beyond this test's real time
        await gateway.start()
        client = threading.Thread(target=real_time_client, args=(gateway.port,))
        client.start()
        try:
            with clock.busy("the client connects"):
                assert await loop.run_in_executor(None, connected.wait, 30)
            await clock.settle()
            await clock.run_for(3 * 3600)
            may_go_on.set()
            with clock.busy("the client sends its hello and reads the answer"):
                await loop.run_in_executor(None, client.join, 30)
            assert not any("within" in event.what for event in gateway.events)
        finally:
            await gateway.stop()

    try:
        clock = run_on_virtual_clock(scenario)
    finally:
        pki.close()
    assert clock.monotonic() >= 3 * 3600
    assert answer and answer[0].startswith(b"TLS"), answer

"""The MQTT gateway's deadline for a TLS handshake plus CONNECT: a client that connects and sends
nothing, or stops half-way through its handshake, is cut on real time (and the gateway says so);
a virtual jump of hours while a real-time client is half-way through costs it nothing."""

from __future__ import annotations

import asyncio

from virtual_loop import real_time_tls_client_across_a_jump

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
    pki = Pki()
    gateways: list[MqttGateway] = []

    async def serve():
        context = pki.server_context(["127.0.0.1"])
        gateway = MqttGateway(identities_with_nobody(), context, broker_host="127.0.0.1",
                              broker_port=1)  # default limits: far beyond this test's real time
        await gateway.start()
        gateways.append(gateway)
        return gateway.port, gateway.stop

    try:
        clock, version = real_time_tls_client_across_a_jump(
            serve, lambda secured: secured.version().encode(), 3 * 3600)
    finally:
        pki.close()
    assert not any("within" in event.what for event in gateways[0].events)
    assert clock.monotonic() >= 3 * 3600
    assert version is not None and version.startswith(b"TLS"), version

"""TLS sessions on the AWS back end's three endpoints (MQTT gateway, iot-jobs-data HTTPS, moto's
S3 over HTTPS): one TLS 1.3 session ticket after a full handshake, and a device holding it
resumes its session (the gateway still knows the device's certificate then)."""

from __future__ import annotations

import asyncio
import socket
import ssl
from collections.abc import AsyncIterator
from urllib.parse import urlsplit

import pytest
import pytest_asyncio

from otaharness.runtime.broker import MosquittoBroker, find_mosquitto
from otaharness.runtime.clock import RealClock
from otaharness.runtime.pki import client_context
from otaharness.servers.aws_iot import DATA_ENDPOINT, AwsIotBackend

pytestmark = pytest.mark.skipif(find_mosquitto() is None, reason="mosquitto is not installed")

NEW_SESSION_TICKET = 4  # TLS HandshakeType (RFC 8446 §4)


@pytest_asyncio.fixture
async def aws() -> AsyncIterator[AwsIotBackend]:
    async with MosquittoBroker() as broker:
        backend = AwsIotBackend(RealClock())
        await backend.start(broker.host, broker.port, broker.service_credentials)
        try:
            yield backend
        finally:
            backend.reset()
            await backend.stop()
    await asyncio.get_running_loop().shutdown_default_executor()


def device_context(aws: AwsIotBackend) -> tuple[ssl.SSLContext, list[int]]:
    """A device's context (certificate from the device CA) and the tickets it is sent, counted."""
    issued = aws.pki.device_ca.issue("tracker-1", client=True)
    certificate, key = aws.pki.write_identity("tracker-1", issued)
    context = client_context(aws.endpoints()["ca"], certificate, key)
    tickets: list[int] = []

    def on_message(_connection, direction, _version, content_type, message_type, _data) -> None:
        if direction == "read" and content_type == ssl._TLSContentType.HANDSHAKE \
                and message_type == NEW_SESSION_TICKET:
            tickets.append(1)

    context._msg_callback = on_message  # CPython's own hook (used by its test suite)
    return context, tickets


def connect(context: ssl.SSLContext, port: int, session: ssl.SSLSession | None = None) -> ssl.SSLSocket:
    """A completed handshake; a TLS 1.3 ticket arrives after it, read here (the server then
    waits for the device's first request, so the read ends on its timeout)."""
    raw = socket.create_connection(("127.0.0.1", port), timeout=5)
    connection = context.wrap_socket(raw, server_hostname=DATA_ENDPOINT, session=session)
    connection.settimeout(0.5)
    try:
        connection.recv(1)
    except TimeoutError:
        pass
    return connection


@pytest.mark.parametrize("endpoint", ["mqtts", "iot-jobs-data", "aws"])
async def test_one_ticket_and_the_device_resumes_with_it(aws: AwsIotBackend, endpoint: str) -> None:
    port = urlsplit(aws.endpoints()[endpoint]).port
    assert port is not None
    context, tickets = device_context(aws)

    def handshakes() -> tuple[int, bool, bool]:
        first = connect(context, port)
        try:
            assert first.version() == "TLSv1.3" and not first.session_reused
            session = first.session
        finally:
            first.close()
        count = len(tickets)
        second = connect(context, port, session)
        try:
            return count, second.session_reused, second.getpeercert() is not None
        finally:
            second.close()

    count, reused, server_known = await asyncio.to_thread(handshakes)
    assert count == 1  # OpenSSL's default would be 2
    assert reused and server_known

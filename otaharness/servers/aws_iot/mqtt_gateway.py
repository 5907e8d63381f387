"""AWS IoT Core's MQTT device gateway (port 8883 in AWS): mutual TLS, identity from the client
certificate, a thing's policy enforced per packet, then on to the scenario's broker.

What it enforces (docs/aws-iot-identity.md has the AWS facts and their sources):

* TLS with a client certificate chaining to the account's device CA or a CA registered with
  `register_ca_certificate` (or itself registered without a CA); the certificate must be
  registered and ACTIVE (:mod:`identities`). Expiry and chain are checked by OpenSSL on the real
  clock.
* CONNECT: the client id must name a thing attached to the certificate — the policy
  ``iot:Connect`` on ``client/${iot:Connection.Thing.ThingName}``. Refused: MQTT 5 gets CONNACK
  0x87, MQTT 3.1.1 has the connection closed without CONNACK (as observed of AWS).
* SUBSCRIBE / PUBLISH: only ``$aws/things/<thing>/…`` of the connection's own thing. MQTT 3.1.1:
  a refused SUBSCRIBE or PUBLISH closes the connection (AWS sends no SUBACK 0x80). MQTT 5: a
  refused filter gets SUBACK 0x87 in its place, a refused QoS 1 PUBLISH PUBACK 0x87, a refused
  QoS 0 PUBLISH DISCONNECT 0x87. Nothing refused reaches the broker.
* A certificate set INACTIVE or REVOKED loses its open connections at once (AWS: "within a few
  minutes"); a CA set INACTIVE does not cut the certificates registered under it (AWS keeps
  those working until each is revoked).

Why a front in Python rather than mosquitto's own TLS with its dynamic-security plugin: AWS's
identity is a certificate *plus* a client id naming a thing attached to it, while mosquitto maps a
certificate to one username (its CN) and a dynsec client to at most one client id; Debian's
mosquitto 2.0.11 reloads neither its CA file nor a CRL without a restart, which would drop every
connection whenever a CA is registered; and the same rules then hold for the amqtt fallback and a
user's broker. The front runs in the scenario's loop, so the virtual clock sees its sockets.
Upstream it connects as the broker's service user, the only one allowed on ``$aws/…`` topics.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import ssl
from dataclasses import dataclass
from typing import Any

from otaharness.protocols import mqtt_wire as wire
from otaharness.runtime import timeline
from otaharness.runtime.pki import ClientTrust, tune_asyncio_tls
from otaharness.runtime.tasks import BackgroundTasks
from otaharness.servers.aws_iot.identities import Identities, IdentityRefused, Principal
from otaharness.servers.read_deadlines import (
    DEFAULT_READ_LIMITS,
    ReadDeadline,
    ReadLimits,
)

log = logging.getLogger(__name__)

# AWS IoT's message size limit is 128 KB of payload; a little more for topic and properties.
MAX_PACKET = 128 * 1024 + 1024
# asyncio's own TLS handshake timer runs on the loop's clock alone, which jumps in scenarios; the
# gateway's read deadline (both clocks, read_deadlines.py) bounds handshake plus CONNECT instead,
# so asyncio's is set out of the way.
ASYNCIO_HANDSHAKE_TIMEOUT = 365 * 86400.0
EVENTS_KEPT = 2000


@dataclass(frozen=True)
class GatewayEvent:
    time: float
    peer: str
    client_id: str | None
    what: str


def thing_topic_allowed(thing: str, topic: str) -> bool:
    """Whether a topic or filter lies within ``$aws/things/<thing>/…`` (the thing level literal,
    not a wildcard)."""
    levels = topic.split("/")
    return len(levels) >= 4 and levels[0] == "$aws" and levels[1] == "things" and levels[2] == thing


class _Session:
    """One device connection: authorized packets go up, the broker's come down."""

    def __init__(self, gateway: MqttGateway, reader: asyncio.StreamReader,
                 writer: asyncio.StreamWriter, principal: Principal, peer: str,
                 connect_deadline: ReadDeadline) -> None:
        self.gateway = gateway
        self.connect_deadline = connect_deadline
        self.reader = reader
        self.writer = writer
        self.principal = principal
        self.peer = peer
        self.client_id: str | None = None
        self.thing: str | None = None
        self.level = wire.MQTT_311
        self.upstream: asyncio.StreamWriter | None = None
        self._aliases: dict[int, str] = {}
        self._refused_filters: dict[int, list[int]] = {}  # packet id -> positions refused
        self.closed = False

    def event(self, what: str) -> None:
        self.gateway.record(self.peer, self.client_id, what)

    def allowed(self, topic: str) -> bool:
        if self.principal.service:
            return True
        return self.thing is not None and thing_topic_allowed(self.thing, topic)

    async def run(self) -> None:
        try:
            buffer = bytearray()
            first = await self._next_packet(self.reader, buffer)  # cut by the connect deadline
            self.connect_deadline.stop()
            if first is None:
                return
            connect = wire.parse_connect(first)
            self.level, self.client_id = connect.level, connect.client_id
            if not self.principal.service:
                self.thing = self.gateway.identities.thing_of(self.principal, connect.client_id)
                if self.thing is None:
                    self.event(f"CONNECT refused: no thing named {connect.client_id!r} is attached "
                               f"to {self.principal.describe()}")
                    if self.level == wire.MQTT_5:
                        self.writer.write(wire.encode_connack_refused(self.level))
                    return
            up_reader, self.upstream = await asyncio.open_connection(
                self.gateway.broker_host, self.gateway.broker_port)
            self.upstream.write(wire.connect_with_credentials(
                connect, self.gateway.service_username, self.gateway.service_password))
            self.event(f"connected as {self.thing or 'service'} ({self.principal.describe()})")
            down = asyncio.ensure_future(self._client_to_broker(buffer))
            up = asyncio.ensure_future(self._broker_to_client(up_reader))
            try:
                await asyncio.wait([down, up], return_when=asyncio.FIRST_COMPLETED)
            finally:
                for task in (down, up):
                    task.cancel()
                await asyncio.gather(down, up, return_exceptions=True)
                for task in (down, up):
                    if not task.cancelled() and isinstance(task.exception(), wire.MqttWireError):
                        self.event(f"malformed packet: {task.exception()}")
        except wire.MqttWireError as error:
            self.event(f"malformed packet: {error}")
        except (ConnectionError, ssl.SSLError, OSError) as error:
            self.event(f"connection ended: {error or type(error).__name__}")
        finally:
            await self.close()

    async def _next_packet(self, reader: asyncio.StreamReader, buffer: bytearray) -> bytes | None:
        while True:
            packet = wire.take_packet(buffer, MAX_PACKET)
            if packet is not None:
                return packet
            chunk = await reader.read(65536)
            if not chunk:
                return None
            buffer += chunk

    async def _client_to_broker(self, buffer: bytearray) -> None:
        assert self.upstream is not None
        while (packet := await self._next_packet(self.reader, buffer)) is not None:
            kind = wire.packet_type(packet)
            if kind == wire.PUBLISH and not self._publish_allowed(packet):
                if self.closed:
                    return
                continue
            if kind == wire.SUBSCRIBE:
                packet = self._filter_subscribe(packet)
                if self.closed:
                    return
                if not packet:
                    continue
            if kind == wire.CONNECT:
                raise wire.MqttWireError("a second CONNECT")
            if kind == wire.PUBLISH:
                timeline.exchange("aws-iot", self.peer, "→", (packet, self.level), wire.publish_text)
            self.upstream.write(packet)
            await self.upstream.drain()

    def _publish_allowed(self, packet: bytes) -> bool:
        publish = wire.parse_publish(packet, self.level)
        topic = publish.topic
        if publish.topic_alias is not None:
            if topic:
                self._aliases[publish.topic_alias] = topic
            else:
                topic = self._aliases.get(publish.topic_alias, "")
        if self.allowed(topic):
            return True
        self.event(f"PUBLISH to {topic!r} refused")
        if self.level == wire.MQTT_5 and publish.qos == 1 and publish.packet_id is not None:
            self.writer.write(wire.encode_puback_refused(publish.packet_id))
        else:
            self._refuse_and_close()
        return False

    def _filter_subscribe(self, packet: bytes) -> bytes:
        """The SUBSCRIBE with refused filters taken out (answered for in the SUBACK); b"" when
        none is left, in which case the SUBACK is sent here."""
        subscribe = wire.parse_subscribe(packet, self.level)
        allowed, refused = [], []
        for position, (topic_filter, options) in enumerate(subscribe.entries):
            if self.allowed(topic_filter):
                allowed.append((topic_filter, options))
            else:
                refused.append(position)
                self.event(f"SUBSCRIBE to {topic_filter!r} refused")
        if not refused:
            return packet
        if self.level != wire.MQTT_5:
            self._refuse_and_close()  # AWS IoT closes a 3.1.1 connection, no SUBACK
            return b""
        failure = wire.NOT_AUTHORIZED_5
        if not allowed:
            self.writer.write(wire.encode_suback(subscribe.packet_id, bytes([failure] * len(refused)),
                                                 self.level))
            return b""
        self._refused_filters[subscribe.packet_id] = refused
        return wire.encode_subscribe(subscribe, allowed)

    def _refuse_and_close(self) -> None:
        """AWS IoT's answer to a denied action it has no reason code for: the connection ends
        (MQTT 5: DISCONNECT 0x87 first)."""
        if self.level == wire.MQTT_5:
            self.writer.write(wire.encode_disconnect(wire.NOT_AUTHORIZED_5, self.level))
        self.closed = True

    async def _broker_to_client(self, reader: asyncio.StreamReader) -> None:
        buffer = bytearray()
        while (packet := await self._next_packet(reader, buffer)) is not None:
            if self._refused_filters and wire.packet_type(packet) == wire.SUBACK:
                packet = self._patch_suback(packet)
            elif wire.packet_type(packet) == wire.PUBLISH:
                timeline.exchange("aws-iot", self.peer, "←", (packet, self.level), wire.publish_text)
            self.writer.write(packet)
            await self.writer.drain()

    def _patch_suback(self, packet: bytes) -> bytes:
        packet_id, properties, codes = wire.parse_suback(packet, self.level)
        refused = self._refused_filters.pop(packet_id, None)
        if refused is None:
            return packet
        failure = wire.NOT_AUTHORIZED_5 if self.level == wire.MQTT_5 else wire.SUBACK_FAILURE_311
        merged, granted = [], iter(codes)
        for position in range(len(codes) + len(refused)):
            merged.append(failure if position in refused else next(granted))
        return wire.encode_suback(packet_id, bytes(merged), self.level, properties)

    async def close(self, why: str | None = None) -> None:
        if why is not None:
            self.event(why)
        self.closed = True
        self.gateway.forget(self)
        for writer in (self.upstream, self.writer):
            if writer is not None and not writer.is_closing():
                writer.close()
        for writer in (self.upstream, self.writer):
            if writer is not None:
                try:
                    await writer.wait_closed()
                except (ConnectionError, ssl.SSLError, OSError):
                    pass


class MqttGateway:
    """Listens on loopback with TLS; forwards authorized traffic to the broker."""

    def __init__(self, identities: Identities, context: ssl.SSLContext | None, *, broker_host: str,
                 broker_port: int, service_username: str | None = None,
                 service_password: str | None = None, host: str = "127.0.0.1",
                 plain_principal: Principal | None = None,
                 read_limits: ReadLimits = DEFAULT_READ_LIMITS) -> None:
        """``context`` None with a ``plain_principal``: plain MQTT, every client acting as that
        principal (identity not enforced). A client has ``read_limits.handshake`` seconds for its
        TLS handshake and CONNECT together (on both clocks: read_deadlines.py)."""
        if (context is None) == (plain_principal is None):
            raise ValueError("give either a TLS context or a plain principal")
        self.identities = identities
        self.read_limits = read_limits
        self.context = context
        self._trust = ClientTrust(context) if context is not None else None
        self.plain_principal = plain_principal
        self.broker_host = broker_host
        self.broker_port = broker_port
        self.service_username = service_username
        self.service_password = service_password
        self.host = host
        self.port: int | None = None
        self.events: collections.deque[GatewayEvent] = collections.deque(maxlen=EVENTS_KEPT)
        self._server: asyncio.Server | None = None
        self._sessions: set[_Session] = set()
        self._tasks = BackgroundTasks("MQTT gateway")
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def url(self) -> str:
        if self.port is None:
            raise RuntimeError("the MQTT gateway is not started")
        return f"{'mqtts' if self.context is not None else 'mqtt'}://{self.host}:{self.port}"

    async def start(self, port: int = 0) -> str:
        self._loop = asyncio.get_running_loop()
        tune_asyncio_tls()
        # TLS is started per connection in _accept, under the connection's read deadline.
        self._server = await asyncio.start_server(
            self._accept, self.host, port, backlog=4096, limit=MAX_PACKET)
        self.port = self._server.sockets[0].getsockname()[1]
        return self.url

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None
        for session in list(self._sessions):
            await session.close()
        await self._tasks.cancel_all()
        self.port = None

    def record(self, peer: str, client_id: str | None, what: str) -> None:
        now = self._loop.time() if self._loop is not None else 0.0
        self.events.append(GatewayEvent(now, peer, client_id, what))
        log.info("mqtt gateway %s %s: %s", peer, client_id or "-", what)
        timeline.note("aws-iot", "session", f"{peer} ({client_id or '-'}): {what}")

    def forget(self, session: _Session) -> None:
        self._sessions.discard(session)

    def trust(self, ca_pems: list[str]) -> None:
        """Accept client certificates chaining to these CAs from now on (the status of each
        CA is still checked per connection)."""
        if self._trust is not None:
            self._trust.add(ca_pems)

    def recheck(self) -> None:
        """Re-authenticate every open connection (a certificate or CA changed status): those no
        longer allowed are cut, as AWS IoT does."""
        for session in list(self._sessions):
            if session.principal is self.plain_principal:
                continue
            try:
                self.identities.authenticate_again(session.principal)
            except IdentityRefused as refused:
                self._tasks.spawn(session.close(f"disconnected: {refused}"))

    def recheck_threadsafe(self) -> None:
        """:meth:`recheck` from another thread (moto answers control-plane calls in its own)."""
        if self._loop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self.recheck)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer_address = writer.get_extra_info("peername")
        peer = f"{peer_address[0]}:{peer_address[1]}" if peer_address else "?"
        loop = asyncio.get_running_loop()

        def too_slow(phase: str) -> None:
            self.record(peer, None, f"no {phase} within {deadline.limit:g} s: connection closed")
            writer.transport.abort()

        deadline = ReadDeadline(loop, too_slow, min_rate=self.read_limits.min_rate)
        deadline.start("TLS handshake and CONNECT" if self.context is not None else "CONNECT",
                       self.read_limits.handshake)
        try:
            await self._admit(reader, writer, peer, deadline)
        finally:
            deadline.stop()  # however the connection ended before its CONNECT

    async def _admit(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, peer: str,
                     deadline: ReadDeadline) -> None:
        """TLS, then the certificate's principal, then the session (which reads CONNECT)."""
        raw_transport = writer.transport
        if self.context is not None:
            try:
                await writer.start_tls(self.context, ssl_handshake_timeout=ASYNCIO_HANDSHAKE_TIMEOUT)
            except (ConnectionError, ssl.SSLError, OSError, AttributeError) as error:
                # AttributeError: a connection closed cleanly mid-handshake (our deadline's abort, a
                # client's FIN) makes loop.start_tls return None, which StreamWriter.start_tls
                # (CPython 3.11) then dereferences.
                if writer.transport is None:
                    writer._transport = raw_transport  # StreamWriter.__del__ reads it
                else:
                    log.info("mqtt gateway %s: TLS handshake failed: %s", peer, error)
                raw_transport.abort()
                return
        ssl_object: Any = writer.get_extra_info("ssl_object")
        der = ssl_object.getpeercert(binary_form=True) if ssl_object is not None else None
        try:
            principal = self.plain_principal or self.identities.authenticate(der)
        except IdentityRefused as refused:
            self.record(peer, None, f"refused: {refused}")
            writer.close()
            try:
                await writer.wait_closed()
            except (ConnectionError, ssl.SSLError, OSError):
                pass
            return
        session = _Session(self, reader, writer, principal, peer, deadline)
        self._sessions.add(session)
        await session.run()

"""The asyncio MQTT client every emulator and server uses.

Built on paho-mqtt 2.x's external-loop API: paho reports its socket through the ``on_socket_*``
callbacks and we drive ``loop_read``/``loop_write`` from ``loop.add_reader``/``add_writer``. Not
paho's own thread loop (it stalls near 340 connections) and not aiomqtt (its misc loop wakes every
second per client: millions of wake-ups for thousands of clients over simulated days). The only
timer is ``loop_misc`` every keepalive/2 seconds of loop time (on a shared grid).

Keepalive: paho measures keepalive in real time (``time.monotonic``) while the timer that calls
``loop_misc`` runs on loop time, which the virtual clock only ever moves faster than real time.
So PINGREQs still go out before the broker's real-time keepalive deadline (1.5 × keepalive).

TLS (``tls=`` an SSLContext): we open the TCP connection and shake hands ourselves, without
blocking the loop (paho's own TLS setup blocks in ``do_handshake()``, which would deadlock with a
server in the same loop), then hand paho the ready socket. A handshake refused by the server —
also one refused after the client's Finished, as TLS 1.3 servers do with a bad client
certificate — fails ``connect()`` with the TLS library's reason.

A lost connection surfaces: pending connect/subscribe/publish calls fail with :class:`MqttError`,
``messages()`` iterators raise it, and the ``on_disconnect`` hook is called. Reconnecting is the
caller's business (``await client.connect()`` again; subscriptions of a clean session are gone).
"""

from __future__ import annotations

import asyncio
import collections
import inspect
import json
import logging
import math
import socket
import ssl
from collections.abc import Callable
from typing import Any, NamedTuple

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode, MQTTProtocolVersion
from paho.mqtt.matcher import MQTTMatcher
from paho.mqtt.reasoncodes import ReasonCode

from otaharness.runtime.pki import tls_failure_reason
from otaharness.runtime.tasks import BackgroundTasks

HANDLER_ERRORS_KEPT = 100
log = logging.getLogger(__name__)

# Loop-time seconds. Safe on a virtual clock: time only jumps once the broker has been flushed,
# so an acknowledgement still on its way is delivered before a timeout can fire.
CONNECT_TIMEOUT = 10.0
ACK_TIMEOUT = 30.0
DISCONNECT_TIMEOUT = 5.0

# A handler gets (topic, payload); if it returns an awaitable (a coroutine function), that runs
# as a task the client tracks and cancels on disconnect().
Handler = Callable[[str, bytes], Any]
DisconnectHook = Callable[["MqttError"], Any]


class MqttError(Exception):
    """The broker refused something, did not answer in time, or the connection was lost."""


class MqttArgumentError(ValueError):
    """A call with an invalid topic filter, payload type or protocol version."""


class Message(NamedTuple):
    topic: str
    payload: bytes


def validate_topic_filter(topic_filter: str) -> None:
    """MQTT 3.1.1 §4.7.1: '#' only as the whole last level, '+' only as a whole level."""
    if not topic_filter:
        raise MqttArgumentError("empty topic filter")
    levels = topic_filter.split("/")
    for index, level in enumerate(levels):
        if "#" in level and (level != "#" or index != len(levels) - 1):
            raise MqttArgumentError(f"topic filter {topic_filter!r}: '#' must be the whole last level")
        if "+" in level and level != "+":
            raise MqttArgumentError(f"topic filter {topic_filter!r}: '+' must be a whole level")


def encode_payload(payload: bytes | bytearray | str | dict[str, Any]) -> bytes:
    if isinstance(payload, (bytes, bytearray)):
        return bytes(payload)
    if isinstance(payload, str):
        return payload.encode()
    if isinstance(payload, dict):
        return json.dumps(payload, separators=(",", ":")).encode()
    raise MqttArgumentError(f"payload must be bytes, str or dict, not {type(payload).__name__}")


_TCP_QUICKACK: int | None = getattr(socket, "TCP_QUICKACK", None)  # Linux only
_PROTOCOLS = {4: MQTTProtocolVersion.MQTTv311, 5: MQTTProtocolVersion.MQTTv5}


class _PahoClient(paho.Client):
    """paho with a socket we opened (and secured) ourselves, remembering why a read failed."""

    prepared_socket: socket.socket | None = None
    last_socket_error: OSError | None = None

    def _create_socket(self) -> Any:
        sock, self.prepared_socket = self.prepared_socket, None
        return sock if sock is not None else super()._create_socket()

    def _sock_recv(self, bufsize: int) -> bytes:
        try:
            return super()._sock_recv(bufsize)
        except BlockingIOError:
            raise
        except OSError as error:
            self.last_socket_error = error
            raise

    def _sock_send(self, buf: bytes | bytearray) -> int:
        try:
            return super()._sock_send(buf)
        except BlockingIOError:
            raise
        except OSError as error:
            self.last_socket_error = error
            raise


class MqttClient:
    def __init__(self, client_id: str, host: str, port: int, *, bind_address: str | None = None,
                 keepalive: int = 600, clean_session: bool = True, protocol: int = 4,
                 username: str | None = None, password: str | None = None,
                 tls: ssl.SSLContext | None = None, server_hostname: str | None = None) -> None:
        """``tls``: connect over TLS with this context, checking the server's certificate for
        ``server_hostname`` (default: ``host``), also sent as SNI when it is a name."""
        if protocol not in _PROTOCOLS:
            raise MqttArgumentError(f"protocol must be 4 (MQTT 3.1.1) or 5 (MQTT 5), not {protocol!r}")
        self.client_id = client_id
        self.host = host
        self.port = port
        self.bind_address = bind_address
        self.keepalive = keepalive
        self.clean_session = clean_session
        self.protocol = protocol
        self.tls = tls
        self.server_hostname = server_hostname
        # Called with the MqttError when an established connection is lost (not on disconnect()).
        self.on_disconnect: DisconnectHook | None = None
        # Exceptions raised by handlers and hooks (also logged), for an after-scenario check: the
        # most recent ones (a client serving for weeks must not keep every traceback).
        self.handler_errors: collections.deque[BaseException] = collections.deque(maxlen=HANDLER_ERRORS_KEPT)

        self._paho = _PahoClient(
            CallbackAPIVersion.VERSION2, client_id=client_id,
            clean_session=clean_session if protocol == 4 else None,  # MQTT 5: clean_start instead
            protocol=_PROTOCOLS[protocol], reconnect_on_failure=False)
        self._paho.max_inflight_messages_set(0)  # no client-side limit on QoS 1 in flight
        if username is not None:
            self._paho.username_pw_set(username, password)
        self._paho.on_socket_open = self._on_socket_open
        self._paho.on_socket_close = self._on_socket_close
        self._paho.on_socket_register_write = self._on_socket_register_write
        self._paho.on_socket_unregister_write = self._on_socket_unregister_write
        self._paho.on_connect = self._on_connect
        self._paho.on_disconnect = self._on_disconnect
        self._paho.on_subscribe = self._on_subscribe
        self._paho.on_unsubscribe = self._on_unsubscribe
        self._paho.on_publish = self._on_publish
        self._paho.on_message = self._on_message

        self._loop: asyncio.AbstractEventLoop | None = None
        self._handlers = MQTTMatcher()  # topic filter -> list of handlers; MQTT wildcard rules
        self._connack: asyncio.Future[None] | None = None
        self._socket_closed: asyncio.Future[None] | None = None
        self._acks: dict[tuple[str, int], asyncio.Future[Any]] = {}  # (kind, mid) -> future
        self._misc_timer: asyncio.TimerHandle | None = None
        self._tasks = BackgroundTasks(f"MQTT client {client_id}")
        self._streams: set[MessageStream] = set()
        self._established = False
        self._disconnecting = False

    def __repr__(self) -> str:
        state = "connected" if self.is_connected else "not connected"
        return f"<MqttClient {self.client_id} {self.host}:{self.port} {state}>"

    @property
    def is_connected(self) -> bool:
        return self._paho.is_connected()

    # --- public API ---------------------------------------------------------------------------------

    async def connect(self, timeout: float = CONNECT_TIMEOUT) -> None:
        """Open the connection and wait for a successful CONNACK."""
        if self.is_connected:
            raise MqttError(f"{self.client_id}: already connected")
        self._loop = asyncio.get_running_loop()
        self._disconnecting = False
        self._established = False
        self._connack = self._loop.create_future()
        options: dict[str, Any] = {"clean_start": self.clean_session} if self.protocol == 5 else {}
        self._paho.last_socket_error = None
        if self.tls is not None:
            try:
                self._paho.prepared_socket = await asyncio.wait_for(self._open_tls(), timeout)
            except TimeoutError:
                self._connack = None
                raise MqttError(f"{self.client_id}: TLS handshake with {self.host}:{self.port} "
                                f"did not finish within {timeout} s") from None
            except OSError as exc:  # ssl.SSLError included
                self._connack = None
                raise MqttError(f"{self.client_id}: TLS with {self.host}:{self.port} failed: "
                                f"{tls_failure_reason(exc)}") from exc
        try:
            # A blocking TCP connect; on loopback it completes (or is refused) at once.
            self._paho.connect(self.host, self.port, keepalive=self.keepalive,
                               bind_address=self.bind_address or "", **options)
        except OSError as exc:
            self._connack = None
            raise MqttError(f"{self.client_id}: cannot connect to {self.host}:{self.port}: {exc}") from exc
        try:
            async with asyncio.timeout(timeout):
                await self._connack
        except TimeoutError:
            self.abort()
            raise MqttError(f"{self.client_id}: no CONNACK from {self.host}:{self.port} "
                            f"within {timeout} s") from None
        finally:
            self._connack = None
        self._established = True
        self._schedule_misc()

    async def _open_tls(self) -> ssl.SSLSocket:
        assert self._loop is not None and self.tls is not None
        loop = self._loop
        family, kind, proto, _name, address = (await _resolve(loop, self.host, self.port))[0]
        raw = socket.socket(family, kind, proto)
        try:
            raw.setblocking(False)
            if self.bind_address:
                raw.bind((self.bind_address, 0))
            await loop.sock_connect(raw, address)
            raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            sock = self.tls.wrap_socket(raw, server_hostname=self.server_hostname or self.host,
                                        do_handshake_on_connect=False)
        except BaseException:
            raw.close()
            raise
        try:
            while True:
                try:
                    sock.do_handshake()
                    return sock
                except ssl.SSLWantReadError:
                    await _ready(loop, sock, loop.add_reader, loop.remove_reader)
                except ssl.SSLWantWriteError:
                    await _ready(loop, sock, loop.add_writer, loop.remove_writer)
        except BaseException:
            sock.close()
            raise

    async def disconnect(self, timeout: float = DISCONNECT_TIMEOUT) -> None:
        """Send DISCONNECT (if still connected) and leave no reader, writer, timer or task behind."""
        self._disconnecting = True
        loop = self._loop
        if loop is not None and self._paho.socket() is not None:
            self._socket_closed = loop.create_future()
            self._paho.disconnect()  # paho closes the socket once DISCONNECT is written
            try:
                async with asyncio.timeout(timeout):
                    await self._socket_closed
            except TimeoutError:
                self.abort()
            finally:
                self._socket_closed = None
        else:
            self._paho.disconnect()  # just marks paho's state as disconnected
        self._cancel_misc()
        for stream in list(self._streams):
            stream.close()
        await self._tasks.cancel_all()

    async def subscribe(self, topic_filter: str, qos: int = 1, timeout: float = ACK_TIMEOUT) -> int:
        """Subscribe and return the QoS the broker granted."""
        validate_topic_filter(topic_filter)
        self._require_connected("SUBSCRIBE")
        result, mid = self._paho.subscribe(topic_filter, qos)
        self._check(result, f"SUBSCRIBE {topic_filter}")
        assert mid is not None  # paho gives one whenever result is success
        reason_codes: list[ReasonCode] = await self._await_ack("subscribe", mid, timeout)
        granted = reason_codes[0]
        if granted.is_failure:
            raise MqttError(f"{self.client_id}: broker refused subscription to {topic_filter!r}: {granted}")
        return granted.value

    async def unsubscribe(self, topic_filter: str, timeout: float = ACK_TIMEOUT) -> None:
        validate_topic_filter(topic_filter)
        self._require_connected("UNSUBSCRIBE")
        result, mid = self._paho.unsubscribe(topic_filter)
        self._check(result, f"UNSUBSCRIBE {topic_filter}")
        assert mid is not None
        reason_codes: list[ReasonCode] = await self._await_ack("unsubscribe", mid, timeout)
        failures = [code for code in reason_codes if code.is_failure]  # MQTT 5 only has codes
        if failures:
            raise MqttError(f"{self.client_id}: unsubscribe from {topic_filter!r} failed: {failures[0]}")

    async def publish(self, topic: str, payload: bytes | bytearray | str | dict[str, Any],
                      qos: int = 0, retain: bool = False, timeout: float = ACK_TIMEOUT) -> None:
        """Publish; a dict payload is sent as JSON. QoS 1/2 wait for the broker's acknowledgement."""
        data = encode_payload(payload)
        self._require_connected(f"PUBLISH {topic}")
        info = self._paho.publish(topic, data, qos=qos, retain=retain)
        self._check(info.rc, f"PUBLISH {topic}")
        if qos == 0:
            return  # written by the writer callback; QoS 0 has no acknowledgement
        reason: ReasonCode = await self._await_ack("publish", info.mid, timeout)
        if reason.is_failure:
            raise MqttError(f"{self.client_id}: broker refused PUBLISH to {topic!r}: {reason}")

    def add_handler(self, topic_filter: str, handler: Handler) -> None:
        """Call ``handler(topic, payload)`` for each received message matching ``topic_filter``.

        Only routes what arrives: subscribing is separate. Wildcards follow MQTT (§4.7.2: '+'
        and '#' do not match a first level starting with '$')."""
        validate_topic_filter(topic_filter)
        try:
            handlers: list[Handler] = self._handlers[topic_filter]
        except KeyError:
            handlers = []
            self._handlers[topic_filter] = handlers
        handlers.append(handler)

    def remove_handler(self, topic_filter: str, handler: Handler) -> None:
        handlers: list[Handler] = self._handlers[topic_filter]
        handlers.remove(handler)
        if not handlers:
            del self._handlers[topic_filter]

    def messages(self, topic_filter: str) -> MessageStream:
        """Messages matching ``topic_filter`` as an async iterator (also an async context manager).

        Receiving starts now; it ends on disconnect() and raises MqttError on connection loss."""
        return MessageStream(self, topic_filter)

    # --- paho callbacks: the socket ---------------------------------------------------------------

    def _on_socket_open(self, client: paho.Client, userdata: Any, sock: Any) -> None:
        assert self._loop is not None
        # No Nagle: a small packet must not wait in our kernel for the broker's delayed ACK
        # (the virtual clock would see a quiet loop while a message is still on its way).
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._loop.add_reader(sock, self._on_readable, sock)

    def _on_readable(self, sock: socket.socket) -> None:
        self._paho.loop_read()
        # TLS: records already decrypted wait inside the SSL object, where no selector sees them.
        while isinstance(sock, ssl.SSLSocket) and self._paho.socket() is sock and sock.pending():
            self._paho.loop_read()
        if _TCP_QUICKACK is not None and self._paho.socket() is sock:
            # Acknowledge at once, so that the broker's congestion window never waits for our
            # delayed ACK with more packets for us queued behind it.
            sock.setsockopt(socket.IPPROTO_TCP, _TCP_QUICKACK, 1)

    def _on_socket_close(self, client: paho.Client, userdata: Any, sock: Any) -> None:
        assert self._loop is not None
        self._loop.remove_reader(sock)
        self._loop.remove_writer(sock)

    def _on_socket_register_write(self, client: paho.Client, userdata: Any, sock: Any) -> None:
        # Written on the loop's next turn, as a writable socket's add_writer would, without
        # asking the selector first: a socket with room in its buffer (nearly always) then
        # costs no epoll_ctl to watch it and none to stop (a tracker's publish, the jobs
        # bridge's replies). Only what the socket cannot take now waits for it to be writable.
        assert self._loop is not None
        self._loop.call_soon(self._write_queued, sock)

    def _write_queued(self, sock: Any) -> None:
        if self._paho.socket() is not sock:
            return  # closed meanwhile
        self._paho.loop_write()
        if self._paho.want_write() and self._paho.socket() is sock:
            self._loop.add_writer(sock, self._paho.loop_write)  # removed by unregister_write

    def _on_socket_unregister_write(self, client: paho.Client, userdata: Any, sock: Any) -> None:
        assert self._loop is not None
        self._loop.remove_writer(sock)

    def abort(self) -> None:
        """Drop the connection without DISCONNECT, as a device losing power or a peer that does
        not answer: the broker just sees the socket close (and publishes any will)."""
        sock = self._paho.socket()
        if not isinstance(sock, socket.socket):
            return
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self._paho.loop_read()  # reads end-of-file: paho closes the socket, calls _on_disconnect

    # --- paho callbacks: MQTT ---------------------------------------------------------------------

    def _on_connect(self, client: paho.Client, userdata: Any, flags: Any, reason: ReasonCode,
                    properties: Any) -> None:
        if self._connack is None or self._connack.done():
            return
        if reason.is_failure:
            self._connack.set_exception(MqttError(
                f"{self.client_id}: {self.host}:{self.port} refused the connection: {reason}"))
        else:
            self._connack.set_result(None)

    def _on_disconnect(self, client: paho.Client, userdata: Any, flags: Any, reason: ReasonCode,
                       properties: Any) -> None:
        self._cancel_misc()
        if self._disconnecting:
            error = MqttError(f"{self.client_id}: disconnected")
        else:
            if self._paho.last_socket_error is not None:
                why = tls_failure_reason(self._paho.last_socket_error)
            elif not self._established:
                why = "closed by the server before CONNACK"
            else:
                why = str(reason)
            error = MqttError(f"{self.client_id}: connection to {self.host}:{self.port} lost ({why})")
        pending = list(self._acks.values())
        self._acks.clear()
        if self._connack is not None:
            pending.append(self._connack)
        for future in pending:
            if not future.done():
                future.set_exception(error)
        if self._socket_closed is not None and not self._socket_closed.done():
            self._socket_closed.set_result(None)
        if self._disconnecting or not self._established:
            return  # the caller of disconnect()/connect() learns it from the call itself
        self._established = False
        log.info("%s", error)
        for stream in list(self._streams):
            stream.fail(error)
        if self.on_disconnect is not None:
            self._invoke(self.on_disconnect, error)

    def _on_subscribe(self, client: paho.Client, userdata: Any, mid: int,
                      reason_codes: list[ReasonCode], properties: Any) -> None:
        self._resolve_ack("subscribe", mid, reason_codes)

    def _on_unsubscribe(self, client: paho.Client, userdata: Any, mid: int,
                        reason_codes: list[ReasonCode], properties: Any) -> None:
        self._resolve_ack("unsubscribe", mid, reason_codes)

    def _on_publish(self, client: paho.Client, userdata: Any, mid: int, reason: ReasonCode,
                    properties: Any) -> None:
        self._resolve_ack("publish", mid, reason)  # QoS 0 mids were never awaited: ignored

    def _on_message(self, client: paho.Client, userdata: Any, message: paho.MQTTMessage) -> None:
        topic, payload = message.topic, bytes(message.payload)
        for handlers in self._handlers.iter_match(topic):
            for handler in list(handlers):
                self._invoke(handler, topic, payload)

    # --- helpers ------------------------------------------------------------------------------------

    def _invoke(self, callback: Callable[..., Any], *args: Any) -> None:
        """Run a handler or hook; an awaitable result becomes a tracked task. Errors are logged."""
        try:
            result = callback(*args)
        except Exception as exc:
            self._handler_failed(callback, exc)
            return
        if inspect.isawaitable(result):
            self._tasks.spawn(result, on_error=lambda exc: self._handler_failed(callback, exc))

    def _handler_failed(self, callback: Callable[..., Any], exc: BaseException | None) -> None:
        assert exc is not None
        self.handler_errors.append(exc)
        log.error("%s: handler %s failed", self.client_id, getattr(callback, "__qualname__", callback),
                  exc_info=exc)

    def _require_connected(self, what: str) -> None:
        if not self.is_connected:
            raise MqttError(f"{self.client_id}: cannot {what}: not connected")

    def _check(self, result: MQTTErrorCode, what: str) -> None:
        if result != MQTTErrorCode.MQTT_ERR_SUCCESS:
            raise MqttError(f"{self.client_id}: {what} failed: {paho.error_string(result)}")

    async def _await_ack(self, kind: str, mid: int, timeout: float) -> Any:
        assert self._loop is not None
        future: asyncio.Future[Any] = self._loop.create_future()
        self._acks[(kind, mid)] = future
        try:
            async with asyncio.timeout(timeout):
                return await future
        except TimeoutError:
            raise MqttError(f"{self.client_id}: no {kind} acknowledgement within {timeout} s") from None
        finally:
            if self._acks.get((kind, mid)) is future:
                del self._acks[(kind, mid)]

    def _resolve_ack(self, kind: str, mid: int, result: Any) -> None:
        future = self._acks.pop((kind, mid), None)
        if future is not None and not future.done():
            future.set_result(result)

    def _schedule_misc(self) -> None:
        if self.keepalive > 0 and self._loop is not None:
            # On a grid of loop time, so that the timers of all clients with this keepalive fall
            # on the same instants: one virtual-clock jump (and broker flush) per period, not one
            # per client. Running loop_misc early is harmless: paho checks its own deadlines.
            period = self.keepalive / 2
            due = (math.floor(self._loop.time() / period) + 1) * period
            self._misc_timer = self._loop.call_at(due, self._run_misc)

    def _run_misc(self) -> None:
        self._misc_timer = None
        if self._paho.loop_misc() == MQTTErrorCode.MQTT_ERR_SUCCESS and self.is_connected:
            self._schedule_misc()

    def _cancel_misc(self) -> None:
        if self._misc_timer is not None:
            self._misc_timer.cancel()
            self._misc_timer = None


def _numeric_address(host: str, port: int) -> list[tuple[Any, ...]] | None:
    """The address of an IP literal, found without a resolver (None for a name)."""
    try:
        return socket.getaddrinfo(host, port, type=socket.SOCK_STREAM,
                                  flags=socket.AI_NUMERICHOST | socket.AI_NUMERICSERV)
    except (socket.gaierror, UnicodeError):
        return None


async def _resolve(loop: asyncio.AbstractEventLoop, host: str, port: int) -> list[tuple[Any, ...]]:
    """asyncio's getaddrinfo hands every look-up to its thread pool, an IP literal's too: a
    fleet's connections to 127.0.0.1 each paid a hand-over to a thread and back (3 % of a
    5,000-tracker process). asyncio's own create_connection skips the pool for a literal; so
    does this."""
    return _numeric_address(host, port) or await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)


async def _ready(loop: asyncio.AbstractEventLoop, sock: socket.socket, add: Callable[..., Any],
                 remove: Callable[..., Any]) -> None:
    """Wait until ``sock`` is readable (add_reader) or writable (add_writer)."""
    waiter = loop.create_future()
    add(sock, lambda: waiter.done() or waiter.set_result(None))
    try:
        await waiter
    finally:
        remove(sock)


class _End(NamedTuple):
    error: MqttError | None


class MessageStream:
    """Async iterator over the messages of one topic filter (see :meth:`MqttClient.messages`)."""

    def __init__(self, client: MqttClient, topic_filter: str) -> None:
        self.topic_filter = topic_filter
        self._client = client
        self._queue: asyncio.Queue[Message | _End] = asyncio.Queue()
        self._open = True
        client.add_handler(topic_filter, self._deliver)
        client._streams.add(self)

    def close(self) -> None:
        """Stop receiving; messages already received are still yielded, then the iteration ends."""
        self._finish(_End(None))

    def fail(self, error: MqttError) -> None:
        self._finish(_End(error))

    def _finish(self, end: _End) -> None:
        if not self._open:
            return
        self._open = False
        self._client.remove_handler(self.topic_filter, self._deliver)
        self._client._streams.discard(self)
        self._queue.put_nowait(end)

    def _deliver(self, topic: str, payload: bytes) -> None:
        self._queue.put_nowait(Message(topic, payload))

    def __aiter__(self) -> MessageStream:
        return self

    async def __anext__(self) -> Message:
        item = await self._queue.get()
        if isinstance(item, Message):
            return item
        self._queue.put_nowait(item)  # every later call ends the same way
        if item.error is not None:
            raise item.error
        raise StopAsyncIteration

    async def __aenter__(self) -> MessageStream:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self.close()

"""The runtime's TCP link proxy: every device reaches one upstream service through it.

Devices connect from their own loopback address (``runtime.address_of(name)``), so the proxy
knows whose link a connection is and applies that device's link fault (``runtime/faults.py``).
It is built on asyncio Protocols: no task per connection, no polling; timers exist only while
delayed or throttled data waits, and they run on the loop's (virtual) clock. Flow control is end
to end: a side that cannot keep up, or data held back by a fault, pauses reading on the other.
Every open, forwarded chunk and close is written to the optional capture.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from otaharness.runtime import timeline
from otaharness.runtime.capture import PcapWriter, TcpConversation
from otaharness.runtime.faults import CutAfter, Delay, Drop, LinkFault, Refuse, Throttle

log = logging.getLogger(__name__)

# Bytes a pipe may hold back (delay, throttle) before it stops reading its source.
_HOLD_HIGH_WATER = 256 * 1024
# A throttled pipe releases data in slices of this much time's worth of bytes.
_THROTTLE_SLICE_SECONDS = 0.1


@dataclass
class LinkCounters:
    """What crossed (or did not cross) one device's link."""

    connections: int = 0
    refused: int = 0
    cuts: int = 0
    bytes_to_upstream: int = 0
    bytes_to_device: int = 0
    bytes_swallowed: int = 0


@dataclass(eq=False)
class _DeviceLink:
    """One device's link: its fault, what is left of a cut's byte budget, its connections."""

    fault: LinkFault | None = None
    cut_budget: int = 0
    counters: LinkCounters = field(default_factory=LinkCounters)
    connections: set[_Connection] = field(default_factory=set)


class _Marker:
    """A point in a pipe's queue where the stream ends (EOF) or the connection is cut."""

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return self.name


_EOF = _Marker("EOF")
_CUT = _Marker("CUT")


class _Pipe:
    """One direction of one connection: applies the fault, holds data back, releases it in order."""

    def __init__(self, conn: _Connection, to_upstream: bool) -> None:
        self.conn = conn
        self.to_upstream = to_upstream
        self.sink_blocked = False  # the receiving transport asked us to stop writing
        self.finished = False  # EOF delivered
        self._queue: deque[tuple[float, bytes | _Marker]] = deque()
        self._held_bytes = 0
        self._last_release = 0.0
        self._timer: asyncio.TimerHandle | None = None
        self._timer_when = 0.0
        self._reading_paused = False

    @property
    def source(self) -> asyncio.Transport | None:
        return self.conn.device_transport if self.to_upstream else self.conn.upstream_transport

    @property
    def sink(self) -> asyncio.Transport | None:
        return self.conn.upstream_transport if self.to_upstream else self.conn.device_transport

    def feed(self, data: bytes) -> None:
        conn = self.conn
        link = conn.link
        fault = link.fault
        if conn.closing:
            return
        if conn.cutting or isinstance(fault, Drop):
            link.counters.bytes_swallowed += len(data)
            return
        if isinstance(fault, CutAfter) and len(data) >= link.cut_budget:
            kept = link.cut_budget
            link.counters.bytes_swallowed += len(data) - kept
            conn.proxy._cut_budget_spent(conn.device, fault)
            conn.cutting = True
            self._hold(data[:kept], fault)
            self._hold(_CUT, fault)
            return
        if isinstance(fault, CutAfter):
            link.cut_budget -= len(data)
        self._hold(data, fault)

    def feed_eof(self) -> None:
        if not self.conn.closing:
            self._hold(_EOF, self.conn.link.fault)

    def _hold(self, item: bytes | _Marker, fault: LinkFault | None) -> None:
        loop = self.conn.loop
        now = loop.time()
        if isinstance(item, bytes) and isinstance(fault, Throttle):
            rate = fault.bytes_per_second
            step = max(1, int(rate * _THROTTLE_SLICE_SECONDS))
            for start in range(0, len(item), step):
                piece = item[start:start + step]
                self._last_release = max(now, self._last_release) + len(piece) / rate
                self._queue.append((self._last_release, piece))
        elif not isinstance(item, bytes) or item:
            delay = fault.seconds if isinstance(fault, Delay) else 0.0
            self._last_release = max(now + delay, self._last_release)
            self._queue.append((self._last_release, item))
        if isinstance(item, bytes):
            self._held_bytes += len(item)
        if self._timer is None:
            self._release()
        else:
            self.update_reading()

    def _release(self) -> None:
        """Deliver everything due; arm one timer for the next item."""
        loop = self.conn.loop
        # asyncio may run a timer up to one clock resolution early; it is due all the same.
        horizon = max(loop.time(), self._timer_when if self._timer is not None else 0.0)
        self._timer = None
        while self._queue and self._queue[0][0] <= horizon:
            _, item = self._queue.popleft()
            if item is _CUT:
                self.conn.close()
                return
            if item is _EOF:
                self.finished = True
                self.conn.deliver_eof(self)
                if self.conn.closing:
                    return
            else:
                assert isinstance(item, bytes)
                self._held_bytes -= len(item)
                self.conn.deliver(self, item)
        if self._queue:
            self._timer_when = self._queue[0][0]
            self._timer = loop.call_at(self._timer_when, self._release)
        self.update_reading()

    def update_reading(self) -> None:
        """Pause the source while the sink is missing or full, or too much is held back."""
        source = self.source
        if source is None or self.conn.closing:
            return
        pause = self.sink is None or self.sink_blocked or self._held_bytes > _HOLD_HIGH_WATER
        if pause != self._reading_paused:
            self._reading_paused = pause
            if pause:
                source.pause_reading()
            else:
                source.resume_reading()

    def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._queue.clear()
        self._held_bytes = 0


def _loopback(address: str) -> bool:
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return address == "localhost"


class _Connection:
    """A device's connection through the proxy: the device side, the upstream side, two pipes."""

    def __init__(self, proxy: LinkProxy, device: str, device_transport: asyncio.Transport) -> None:
        self.proxy = proxy
        self.loop = proxy.loop
        self.device = device
        self.link = proxy._link(device)
        self.device_transport: asyncio.Transport | None = device_transport
        self.device_address: str = device_transport.get_extra_info("peername")[0]
        self.upstream_transport: asyncio.Transport | None = None
        self.up = _Pipe(self, to_upstream=True)
        self.down = _Pipe(self, to_upstream=False)
        self.closing = False
        self.cutting = False
        # Who sent the first FIN, for the capture; when the proxy closes (cut, refusal,
        # disconnect) the device sees its far end close first.
        self._client_closed_first = False
        self._open_sides = 1
        self._connect_task: asyncio.Task[None] | None = None
        self._conversation: TcpConversation | None = None
        if proxy.capture is not None:
            client = device_transport.get_extra_info("peername")
            server_ip = device_transport.get_extra_info("sockname")[0]
            self._conversation = proxy.capture.tcp_open(
                (client[0], client[1]), (server_ip, proxy.service_port), proxy.wall_time()
            )

    def connect_upstream(self) -> None:
        self.up.update_reading()  # hold the device's bytes until upstream is there
        self._connect_task = self.loop.create_task(self._connect())
        self._connect_task.add_done_callback(lambda _: self._forget_when_gone())

    async def _connect(self) -> None:
        host, port = self.proxy.upstream
        # Transparent on loopback: the server sees the device's own address (127.1.x.y), as it
        # would without the proxy (an ACS tells cookie-less CPEs apart by it).
        local = (self.device_address, 0) if _loopback(host) and _loopback(self.device_address) \
            else None
        try:
            await self.loop.create_connection(lambda: _UpstreamSide(self), host, port,
                                              local_addr=local)
        except OSError as exc:
            log.warning("%s: upstream %s:%s unreachable for %s: %s",
                        self.proxy.name, host, port, self.device, exc)
            self.close()

    def upstream_made(self, transport: asyncio.Transport) -> None:
        self._open_sides += 1
        self.upstream_transport = transport
        if self.closing:
            transport.abort()
            return
        self.up.update_reading()
        self.down.update_reading()

    def deliver(self, pipe: _Pipe, data: bytes) -> None:
        sink = pipe.sink
        assert sink is not None
        sink.write(data)
        if pipe.to_upstream:
            self.link.counters.bytes_to_upstream += len(data)
        else:
            self.link.counters.bytes_to_device += len(data)
        if self._conversation is not None:
            assert self.proxy.capture is not None
            self.proxy.capture.tcp_data(
                self._conversation, pipe.to_upstream, data, self.proxy.wall_time()
            )
        if self.proxy.on_forward is not None:
            self.proxy.on_forward(self.device, pipe.to_upstream, len(data))

    def deliver_eof(self, pipe: _Pipe) -> None:
        if self.up.finished and self.down.finished:
            self.close()
            return
        self._client_closed_first = pipe.to_upstream
        sink = pipe.sink
        assert sink is not None
        if sink.can_write_eof():
            sink.write_eof()
        else:
            self.close()

    def close(self, abort: bool = False) -> None:
        """Close both sides: gracefully (written data still goes out) unless ``abort``."""
        if self.closing:
            if abort:
                for transport in (self.device_transport, self.upstream_transport):
                    if transport is not None:
                        transport.abort()
            return
        self.closing = True
        self.up.stop()
        self.down.stop()
        if self._connect_task is not None:
            self._connect_task.cancel()
        for transport in (self.device_transport, self.upstream_transport):
            if transport is not None:
                transport.abort() if abort else transport.close()
        if self._conversation is not None:
            assert self.proxy.capture is not None
            self.proxy.capture.tcp_close(
                self._conversation, self.proxy.wall_time(), client_first=self._client_closed_first
            )

    def side_lost(self) -> None:
        self.close()
        self._open_sides -= 1
        self._forget_when_gone()

    def _forget_when_gone(self) -> None:
        # The connect task may still be about to open (and at once abort) an upstream socket.
        if self._open_sides == 0 and (self._connect_task is None or self._connect_task.done()):
            self.proxy._forget(self)


class _DeviceSide(asyncio.Protocol):
    def __init__(self, proxy: LinkProxy) -> None:
        self.proxy = proxy
        self.conn: _Connection | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.conn = self.proxy._accept(transport)

    def data_received(self, data: bytes) -> None:
        if self.conn is not None:
            self.conn.up.feed(data)

    def eof_received(self) -> bool:
        if self.conn is not None:
            self.conn.up.feed_eof()
        return True  # keep the other direction open (TCP half-close)

    def pause_writing(self) -> None:
        if self.conn is not None:
            self.conn.down.sink_blocked = True
            self.conn.down.update_reading()

    def resume_writing(self) -> None:
        if self.conn is not None:
            self.conn.down.sink_blocked = False
            self.conn.down.update_reading()

    def connection_lost(self, exc: Exception | None) -> None:
        if self.conn is not None:
            self.conn.side_lost()


class _UpstreamSide(asyncio.Protocol):
    def __init__(self, conn: _Connection) -> None:
        self.conn = conn

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.conn.upstream_made(transport)

    def data_received(self, data: bytes) -> None:
        self.conn.down.feed(data)

    def eof_received(self) -> bool:
        self.conn.down.feed_eof()
        return True

    def pause_writing(self) -> None:
        self.conn.up.sink_blocked = True
        self.conn.up.update_reading()

    def resume_writing(self) -> None:
        self.conn.up.sink_blocked = False
        self.conn.up.update_reading()

    def connection_lost(self, exc: Exception | None) -> None:
        self.conn.side_lost()


class LinkProxy:
    """A TCP proxy in front of one upstream endpoint, shared by all devices.

    ``device_of(peer_ip)`` names the device a connection comes from (each device binds its own
    127.x.y.z); it raises LookupError for an address that belongs to no device, and such a
    connection is closed. ``service_port`` is the protocol's well-known port, shown for the
    server in captures; ``wall_time`` gives capture timestamps (the clock's ``epoch``).
    """

    def __init__(
        self,
        name: str,
        upstream: tuple[str, int],
        *,
        service_port: int,
        device_of: Callable[[str], str],
        capture: PcapWriter | None = None,
        wall_time: Callable[[], float] = time.time,
        listen_host: str = "127.0.0.1",
        on_forward: Callable[[str, bool, int], None] | None = None,
    ) -> None:
        self.name = name
        self.upstream = upstream
        self.service_port = service_port
        self.device_of = device_of
        self.capture = capture
        self.wall_time = wall_time
        self.listen_host = listen_host
        # Told (device, to_upstream, byte count) after each chunk is passed on: what watches a
        # device's traffic (a power cut at a byte count, download progress) needs no polling.
        self.on_forward = on_forward
        self._links: dict[str, _DeviceLink] = {}
        self._connections: set[_Connection] = set()
        self._server: asyncio.Server | None = None
        self._all_forgotten: asyncio.Future[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._server = await self._loop.create_server(
            lambda: _DeviceSide(self), self.listen_host, 0
        )

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        if self._loop is None:
            raise RuntimeError(f"link proxy {self.name} is not started")
        return self._loop

    @property
    def address(self) -> tuple[str, int]:
        if self._server is None:
            raise RuntimeError(f"link proxy {self.name} is not started")
        host, port = self._server.sockets[0].getsockname()[:2]
        return host, port

    # -- faults -------------------------------------------------------------------------------

    def set_fault(self, device: str, fault: LinkFault) -> None:
        link = self._link(device)
        link.fault = fault
        link.cut_budget = fault.nbytes if isinstance(fault, CutAfter) else 0

    def clear_fault(self, device: str) -> None:
        self._link(device).fault = None

    def fault_of(self, device: str) -> LinkFault | None:
        link = self._links.get(device)
        return link.fault if link is not None else None

    def disconnect(self, device: str) -> None:
        """Close the device's live connections now (both sides see an orderly close)."""
        link = self._links.get(device)
        for conn in list(link.connections) if link is not None else []:
            conn.close()

    # -- counters -----------------------------------------------------------------------------

    def counters(self, device: str) -> LinkCounters:
        return self._link(device).counters

    @property
    def bytes_by_device(self) -> dict[str, int]:
        """Bytes forwarded per device, both directions together."""
        return {
            device: link.counters.bytes_to_upstream + link.counters.bytes_to_device
            for device, link in self._links.items()
        }

    # -- teardown -----------------------------------------------------------------------------

    async def close(self) -> None:
        """Stop listening, abort every connection and wait until all of them are gone."""
        if self._server is not None:
            self._server.close()
        if self._connections:
            self._all_forgotten = self.loop.create_future()
            for conn in list(self._connections):
                conn.close(abort=True)
            await self._all_forgotten
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None

    # -- internals used by connections -----------------------------------------------------------

    def _link(self, device: str) -> _DeviceLink:
        link = self._links.get(device)
        if link is None:
            link = self._links[device] = _DeviceLink()
        return link

    def _accept(self, transport: asyncio.Transport) -> _Connection | None:
        peer_ip = transport.get_extra_info("peername")[0]
        try:
            device = self.device_of(peer_ip)
        except LookupError:
            log.warning("%s: connection from %s, which is no device's address; closed",
                        self.name, peer_ip)
            transport.abort()
            return None
        conn = _Connection(self, device, transport)
        self._connections.add(conn)
        conn.link.connections.add(conn)
        conn.link.counters.connections += 1
        if isinstance(conn.link.fault, Refuse):
            conn.link.counters.refused += 1
            timeline.note(device, "fault", f"connection to {self.name} refused")
            conn.close()
        else:
            conn.connect_upstream()
        return conn

    def _cut_budget_spent(self, device: str, fault: CutAfter) -> None:
        link = self._link(device)
        link.counters.cuts += 1
        timeline.note(device, "fault", f"link to {self.name} cut after {fault.nbytes} bytes")
        if fault.once:
            link.fault = None
        else:
            link.cut_budget = fault.nbytes

    def _forget(self, conn: _Connection) -> None:
        self._connections.discard(conn)
        conn.link.connections.discard(conn)
        if not self._connections and self._all_forgotten is not None:
            if not self._all_forgotten.done():
                self._all_forgotten.set_result(None)

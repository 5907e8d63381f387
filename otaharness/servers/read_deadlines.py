"""Read deadlines for what a client sends: a slow client is cut, a slow clock is not.

A server must not let a client hold a connection open by sending its request slowly (slowloris:
headers byte by byte, a body or a websocket frame trickled in). The limits follow Apache's
mod_reqtimeout (``header=20-40,MinRate=500 body=20,MinRate=500``): a phase gets ``seconds``, and
every ``min_rate`` bytes received add one second, up to ``ceiling``.

The same servers run in two worlds. Under ``serve`` the loop's clock is real time. Inside a
scenario the loop's clock is virtual (``otaharness/runtime/clock.py``): it jumps hours ahead
whenever the loop is quiet, also while a peer that lives in real time — a subprocess, a thread,
a real device — is half-way through a request. A deadline on the loop's clock alone would cut
that peer after a jump; a deadline on the real clock alone would let a link proxy throttled in
virtual time (``throttled to 1 KiB/s``) be cut after a few real seconds, and would fire during
real pauses between steps when the scenario's clock stood still. So a deadline **expires only
when both the loop's clock and the real clock have passed it**: a client is slow only if it is
slow in every sense of time we can see.

Rechecks: when the loop's clock passed the deadline but real time has not, the check is
rescheduled after the larger of the real time left and the loop time already spent (doubling), so
a jump of thirty virtual days costs a few dozen timer callbacks, not one per ``seconds``.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable
from dataclasses import dataclass

MIN_RECHECK = 0.1  # seconds: never reschedule a check closer than this


@dataclass(frozen=True)
class ReadLimits:
    """How long a client may take to send each part of a request (seconds, bytes per second)."""

    headers: float = 20.0          # a request's line and headers, from their first byte
    headers_ceiling: float = 40.0  # however fast they trickle in
    body: float = 20.0             # a request body or a websocket frame, after its headers
    min_rate: float = 500.0        # every min_rate bytes received add one second
    handshake: float = 20.0        # a TLS handshake plus a protocol's opening packet (MQTT CONNECT)


DEFAULT_READ_LIMITS = ReadLimits()


class ReadDeadline:
    """One deadline at a time for one connection; ``expired(phase)`` is called when it passes
    on both clocks (see the module docstring)."""

    def __init__(self, loop: asyncio.AbstractEventLoop, expired: Callable[[str], None], *,
                 min_rate: float = DEFAULT_READ_LIMITS.min_rate) -> None:
        self._loop = loop
        self._expired = expired
        self._min_rate = min_rate
        self._handle: asyncio.TimerHandle | None = None
        self.phase: str | None = None
        self.limit = 0.0
        self._ceiling = math.inf
        self._loop_start = 0.0
        self._real_start = 0.0

    @property
    def active(self) -> bool:
        return self.phase is not None

    def start(self, phase: str, seconds: float, *, ceiling: float = math.inf) -> None:
        self.stop()
        self.phase = phase
        self.limit = seconds
        self._ceiling = ceiling
        self._loop_start = self._loop.time()
        self._real_start = time.monotonic()
        self._schedule(seconds)

    def received(self, nbytes: int) -> None:
        """Bytes of the current phase arrived: each ``min_rate`` of them buys one more second."""
        if self.phase is not None and nbytes:
            self.limit = min(self._ceiling, self.limit + nbytes / self._min_rate)

    def stop(self) -> None:
        self.phase = None
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None

    def _schedule(self, delay: float) -> None:
        self._handle = self._loop.call_at(self._loop.time() + max(delay, MIN_RECHECK), self._check)

    def _check(self) -> None:
        self._handle = None
        if self.phase is None:
            return
        loop_spent = self._loop.time() - self._loop_start
        real_left = self.limit - (time.monotonic() - self._real_start)
        loop_left = self.limit - loop_spent
        if loop_left <= 0 and real_left <= 0:
            phase, self.phase = self.phase, None
            self._expired(phase)
            return
        if loop_left > 0:
            self._schedule(max(loop_left, real_left))
        else:
            # The loop's clock ran ahead of real time (a virtual jump): wait for real time.
            self._schedule(max(real_left, loop_spent))


class WebSocketFrameBoundaries:
    """Follows where a client's websocket frames begin and end (RFC 6455 §5.2: 2 header bytes,
    0/2/8 bytes of extended length, 0/4 of mask, then the payload), so that a server knows
    whether a frame is half-received. It does not decode anything."""

    def __init__(self) -> None:
        self._header = bytearray()
        self._payload_left = 0

    @property
    def mid_frame(self) -> bool:
        return bool(self._header) or self._payload_left > 0

    def feed(self, data: bytes | bytearray | memoryview) -> None:
        view = memoryview(data)
        at = 0
        while at < len(view):
            if self._payload_left:
                taken = min(self._payload_left, len(view) - at)
                self._payload_left -= taken
                at += taken
                continue
            self._header.append(view[at])
            at += 1
            needed = self._header_length()
            if needed is not None and len(self._header) == needed:
                self._payload_left = self._payload_length()
                self._header.clear()

    def _header_length(self) -> int | None:
        if len(self._header) < 2:
            return None
        length7 = self._header[1] & 0x7F
        extended = 2 if length7 == 126 else 8 if length7 == 127 else 0
        mask = 4 if self._header[1] & 0x80 else 0
        return 2 + extended + mask

    def _payload_length(self) -> int:
        length7 = self._header[1] & 0x7F
        if length7 == 126:
            return int.from_bytes(self._header[2:4], "big")
        if length7 == 127:
            return int.from_bytes(self._header[2:10], "big")
        return length7

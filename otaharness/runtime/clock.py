"""One clock per scenario: virtual time that jumps only when the system is quiet.

Every timer in servers and emulators runs on the asyncio loop (``asyncio.sleep``,
``loop.call_later``, ``asyncio.timeout``), so making ``loop.time()`` virtual moves all of them at
once. The loop is an ordinary :class:`asyncio.SelectorEventLoop` given a :class:`QuietSelector`
(the public ``selector`` argument): asyncio calls ``select(timeout)`` with a non-zero timeout only
when nothing is runnable in the loop, which is exactly the moment to decide whether time may jump.

Time jumps to the next due timer (never past the target the harness asked for) only when, in
this order:

1. nothing is runnable in the loop and no socket of the loop is readable or writable;
2. nothing is *busy* outside the loop: executor jobs (counted automatically), and every wait that
   code marked with :meth:`VirtualClock.busy` (a thread, a subprocess, an HTTP request served by
   threads);
3. every registered quiet probe returned — e.g. the broker's flush barrier, after which a message
   still inside the mosquitto process has reached its recipient's socket — and the loop's sockets
   are still silent afterwards.

Why not looptime alone: its idle heuristic cannot see I/O pending in another process and let a
60 s timeout fire while messages crossed mosquitto. time-machine is used beside this clock only so
that wall-clock reads inside in-process libraries (moto's timestamps, log records) follow it.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import datetime as dt
import logging
import selectors
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

log = logging.getLogger(__name__)

UTC = dt.timezone.utc
GPS_EPOCH = dt.datetime(1980, 1, 6, tzinfo=UTC)
_GPS_EPOCH_UNIX = GPS_EPOCH.timestamp()

# Dates (UTC) from which one more leap second separates UTC from GPS time (IERS Bulletin C);
# GPS time had no leap seconds at its epoch, 1980-01-06.
_LEAP_SECOND_DATES = [
    dt.datetime(*d, tzinfo=UTC).timestamp()
    for d in [
        (1981, 7, 1), (1982, 7, 1), (1983, 7, 1), (1985, 7, 1), (1988, 1, 1), (1990, 1, 1),
        (1991, 1, 1), (1992, 7, 1), (1993, 7, 1), (1994, 7, 1), (1996, 1, 1), (1997, 7, 1),
        (1999, 1, 1), (2006, 1, 1), (2009, 1, 1), (2012, 7, 1), (2015, 7, 1), (2017, 1, 1),
    ]
]

DEFAULT_START = dt.datetime(2026, 1, 1, tzinfo=UTC)
FROZEN_WARNING_AFTER = 10.0  # real seconds


def gps_seconds(unix_seconds: float) -> float:
    """GPS time (seconds since 1980-01-06T00:00:00Z, counting leap seconds) of a UNIX time."""
    return unix_seconds - _GPS_EPOCH_UNIX + _leap_seconds(unix_seconds)


def _leap_seconds(unix_seconds: float) -> int:
    return sum(1 for leap in _LEAP_SECOND_DATES if unix_seconds >= leap)


def unix_from_gps(gps: float) -> float:
    """Inverse of :func:`gps_seconds`."""
    unix = gps + _GPS_EPOCH_UNIX
    return unix - _leap_seconds(unix - _leap_seconds(unix))


class ClockStuck(RuntimeError):
    """The harness waited in real time for a system that never became quiet."""


class Clock:
    """What servers and emulators read: monotonic seconds, UTC, GPS time, busy marks."""

    def monotonic(self) -> float:
        raise NotImplementedError

    def epoch(self) -> float:
        """UNIX seconds (virtual under the harness)."""
        raise NotImplementedError

    def utcnow(self) -> dt.datetime:
        return dt.datetime.fromtimestamp(self.epoch(), UTC)

    def gps(self) -> float:
        return gps_seconds(self.epoch())

    @contextlib.contextmanager
    def busy(self, reason: str) -> Iterator[None]:
        """Mark a wait on something outside the loop, so that time does not jump meanwhile."""
        yield


class RealClock(Clock):
    """Wall time, for ``serve``, ``emulate`` and external targets."""

    poll_interval = 0.05

    def monotonic(self) -> float:
        return time.monotonic()

    def epoch(self) -> float:
        return time.time()

    async def run_until(self, predicate: Callable[[], bool] | None, *, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while predicate is None or not predicate():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return predicate is None
            await asyncio.sleep(min(self.poll_interval, remaining))
        return True

    async def run_for(self, seconds: float) -> None:
        await asyncio.sleep(seconds)

    async def settle(self) -> None:
        # Real peers give no quiet signal: give in-flight messages a moment.
        await asyncio.sleep(0.2)

    def close(self) -> None:
        pass


@dataclass
class _Advance:
    """One request of the harness to let time pass: up to ``target`` or until ``predicate``."""

    target: float
    predicate: Callable[[], bool] | None
    future: asyncio.Future
    real_deadline: float  # ClockStuck when no quiet moment came before this (real) time


@dataclass
class ClockStats:
    jumps: int = 0
    probes: int = 0
    virtual_seconds_skipped: float = 0.0
    busy_waits: int = 0  # real waits for busy work outside the loop
    idle_waits: int = 0  # real waits while nobody lets time pass


class VirtualClock(Clock):
    """Virtual time for one scenario; see the module docstring for the quiet condition."""

    def __init__(self, start: dt.datetime = DEFAULT_START, *, real_time_limit: float = 60.0,
                 follow_wall_clock: bool = False) -> None:
        self._now = 0.0
        self._epoch_offset = start.timestamp()
        self._busy: collections.Counter[str] = collections.Counter()
        self._probes: list[Callable[[], object]] = []
        self._advance: _Advance | None = None
        self.real_time_limit = real_time_limit
        self.stats = ClockStats()
        self._frozen_since: float | None = None
        self._frozen_warned = False
        self._traveller = None
        self._coordinates = None
        if follow_wall_clock:
            import time_machine

            self._traveller = time_machine.travel(self.epoch(), tick=False)
            self._coordinates = self._traveller.start()

    # -- reading ---------------------------------------------------------------------------
    def monotonic(self) -> float:
        return self._now

    def epoch(self) -> float:
        return self._epoch_offset + self._now

    def set_utc(self, when: dt.datetime) -> None:
        """Set the wall clock (as NTP would): timers keep their monotonic deadlines."""
        if when.tzinfo is None:
            raise ValueError("give the time with a time zone, e.g. 2026-03-02T02:00:00Z")
        self._epoch_offset = when.timestamp() - self._now
        self._follow()

    # -- busy marks and probes ---------------------------------------------------------------
    @contextlib.contextmanager
    def busy(self, reason: str) -> Iterator[None]:
        self.enter_busy(reason)
        try:
            yield
        finally:
            self.exit_busy(reason)

    def enter_busy(self, reason: str) -> None:
        self._busy[reason] += 1

    def exit_busy(self, reason: str) -> None:
        self._busy[reason] -= 1
        if self._busy[reason] <= 0:
            del self._busy[reason]

    @property
    def busy_reasons(self) -> dict[str, int]:
        return dict(self._busy)

    def add_quiet_probe(self, probe: Callable[[], object]) -> None:
        """``probe()`` blocks until a component outside the loop has flushed what it holds."""
        self._probes.append(probe)

    def remove_quiet_probe(self, probe: Callable[[], object]) -> None:
        with contextlib.suppress(ValueError):
            self._probes.remove(probe)

    # -- letting time pass (called from coroutines on the clock's loop) ---------------------------
    async def run_until(self, predicate: Callable[[], bool] | None, *, timeout: float) -> bool:
        """Let virtual time pass until ``predicate()`` holds at a quiet moment, or ``timeout``
        virtual seconds have passed (then False). ``predicate=None`` just lets the time pass."""
        if self._advance is not None:
            raise RuntimeError("time is already being advanced by another caller")
        loop = asyncio.get_running_loop()
        advance = _Advance(self._now + timeout, predicate, loop.create_future(),
                           time.monotonic() + self.real_time_limit)
        self._advance = advance
        try:
            return await advance.future
        finally:
            self._advance = None

    async def run_for(self, seconds: float) -> None:
        await self.run_until(None, timeout=seconds)

    async def settle(self) -> None:
        """Run until quiet without letting time pass."""
        await self.run_until(None, timeout=0.0)

    # -- the selector's decision -------------------------------------------------------------------
    def _decide(self, timeout: float | None, real: selectors.BaseSelector) -> list:
        """Called by QuietSelector when the loop has nothing runnable; returns select() events."""
        events = real.select(0)
        if events:
            return events
        advance = self._advance
        if advance is None or advance.future.done():
            # Nobody lets time pass: wait for real I/O only (woken by call_soon_threadsafe too).
            self.stats.idle_waits += 1
            self._warn_if_frozen_too_long(timeout)
            return real.select(0.05)
        self._frozen_since = None
        if time.monotonic() > advance.real_deadline:
            advance.future.set_exception(ClockStuck(
                f"not quiet after {self.real_time_limit:.0f} s of real time; busy: "
                f"{self.busy_reasons or 'nothing marked'}"))
            return []
        if self._busy:
            self.stats.busy_waits += 1
            # Threads finishing wake the loop through its self-pipe (call_soon_threadsafe).
            return real.select(0.05)
        if self._probes:  # what they flush may make I/O ready: look again (only then, since a
            # long virtual-time run reaches a quiet moment hundreds of thousands of times)
            for probe in self._probes:
                self.stats.probes += 1
                probe()
            events = real.select(0)
            if events:
                return events
        # Quiet: decide. The stuck limit counts from the last quiet moment, so a long run that
        # keeps reaching quiet moments (a campaign of hours) is not stuck.
        advance.real_deadline = time.monotonic() + self.real_time_limit
        if advance.predicate is not None and advance.predicate():
            advance.future.set_result(True)
            return []
        next_due = self._now + timeout if timeout is not None else float("inf")
        if next_due <= advance.target:
            self._jump(next_due)
        else:
            self._jump(advance.target)
            advance.future.set_result(advance.predicate is None)
        return []

    def _warn_if_frozen_too_long(self, timeout: float | None) -> None:
        """A loop that waits on a timer while nobody lets time pass waits forever: say so once."""
        if timeout is None:
            return
        now = time.monotonic()
        if self._frozen_since is None:
            self._frozen_since = now
        elif now - self._frozen_since > FROZEN_WARNING_AFTER and not self._frozen_warned:
            self._frozen_warned = True
            log.warning("the loop has waited %.0f s of real time for a timer due in %.1f s of "
                        "scenario time, but nothing lets scenario time pass: run the coroutine "
                        "with runtime.run() or clock.run_until()", now - self._frozen_since,
                        timeout)

    def _jump(self, to: float) -> None:
        if to > self._now:
            self.stats.jumps += 1
            self.stats.virtual_seconds_skipped += to - self._now
            self._now = to
            self._follow()

    def _follow(self) -> None:
        if self._coordinates is not None:
            self._coordinates.move_to(self.epoch())

    def close(self) -> None:
        if self._traveller is not None:
            self._traveller.stop()
            self._traveller = self._coordinates = None


class QuietSelector(selectors.BaseSelector):
    """A real selector whose idle ``select()`` lets the virtual clock decide."""

    def __init__(self, clock: VirtualClock) -> None:
        self._clock = clock
        self._real = selectors.DefaultSelector()

    def register(self, fileobj, events, data=None):
        return self._real.register(fileobj, events, data)

    def unregister(self, fileobj):
        return self._real.unregister(fileobj)

    def modify(self, fileobj, events, data=None):
        return self._real.modify(fileobj, events, data)

    def select(self, timeout=None):
        if timeout is not None and timeout <= 0:
            return self._real.select(0)
        return self._clock._decide(timeout, self._real)

    def close(self):
        self._real.close()

    def get_key(self, fileobj):
        return self._real.get_key(fileobj)

    def get_map(self):
        return self._real.get_map()


class VirtualEventLoop(asyncio.SelectorEventLoop):
    """An asyncio loop on a VirtualClock; executor jobs count as busy."""

    def __init__(self, clock: VirtualClock) -> None:
        self.clock = clock
        super().__init__(QuietSelector(clock))

    def time(self) -> float:
        return self.clock.monotonic()

    def run_in_executor(self, executor, func, *args):
        reason = f"executor: {getattr(func, '__qualname__', func)!s}"
        self.clock.enter_busy(reason)
        future = super().run_in_executor(executor, func, *args)
        future.add_done_callback(lambda _: self.clock.exit_busy(reason))
        return future

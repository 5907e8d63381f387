"""The asyncio side of a load run: a worker's devices, what they report, and their faults.

Everything here runs in the device host process (``host.py``), which never imports Locust or
gevent. A kind (``kinds/<kind>.py``) subclasses :class:`DeviceFleet`; its devices are the
emulators' own classes, observed through :class:`Reporter`, which writes one JSON line per event
for the Locust worker to turn into request entries and fleet counters.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from otaharness.emulators.fleet import Fleet
from otaharness.emulators.fleet_report import FleetReport
from otaharness.runtime.pki import client_context

log = logging.getLogger(__name__)

# Device numbers are worker_index * STRIDE + n (n = 1, 2, ... on that worker): unique across
# workers and the same on every run with the same workers and users.
STRIDE = 1_000_000
START_RETRY_FIRST_SECONDS = 1.0
START_RETRY_MAX_SECONDS = 30.0
# A start failure's reason is logged at most once in this many seconds per worker: devices failing
# alike in between (a wrong CA, an unreachable back end: the whole fleet) are counted, then said.
ALIKE_FAILURES_SECONDS = 10.0
# Failures a device's start does not try again: the kind's own defect (logged with its traceback)
PROGRAMMING_ERRORS = (AttributeError, NameError, TypeError, AssertionError, NotImplementedError)


def device_number(worker_index: int, local: int) -> int:
    if not 1 <= local < STRIDE:
        raise ValueError(f"device {local} of a worker is outside 1..{STRIDE - 1}")
    return worker_index * STRIDE + local


class Reporter:
    """One JSON line per event on the host's stdout (an asyncio pipe: never blocks the loop).

    ``r``: a protocol round trip [type, name, milliseconds, bytes, error or null, device];
    ``s``: an upgrade started [device]; ``o``: an upgrade ended [device, ok, reason,
    milliseconds, bytes]; ``g``: gauges {connected, in_progress}; ``x``: the devices cannot
    start at all (a key file, CA or URL the kind cannot use), the reason.
    """

    def __init__(self, write: Callable[[bytes], None]) -> None:
        self._write = write
        self.fleet_report: FleetReport | None = None  # emulate's, for the worker's log

    def _tell(self, device: str, event: str, detail: str = "", **fields: Any) -> None:
        if self.fleet_report is not None:
            self.fleet_report.event(device, event, detail, **fields)

    def _emit(self, record: dict[str, Any]) -> None:
        self._write(json.dumps(record, separators=(",", ":")).encode() + b"\n")

    def request(self, request_type: str, name: str, started: float, length: int,
                device: str, error: str | None = None) -> None:
        elapsed_ms = (time.monotonic() - started) * 1000
        self._emit({"r": [request_type, name, round(elapsed_ms, 3), length, error, device]})
        if error is None and request_type != "HTTP":
            self._tell(device, "connected", name)

    def upgrade_started(self, device: str) -> None:
        self._emit({"s": device})
        self._tell(device, "download_started")

    def upgrade_ended(self, device: str, ok: bool, reason: str, started: float,
                      length: int) -> None:
        elapsed_ms = (time.monotonic() - started) * 1000
        self._emit({"o": [device, ok, reason, round(elapsed_ms, 3), length]})
        if ok:
            self._tell(device, "upgraded", bytes=length)
        else:
            self._tell(device, "upgrade_failed", reason, reason=reason)

    def gauges(self, connected: int, in_progress: int) -> None:
        self._emit({"g": {"connected": connected, "in_progress": in_progress}})

    def note(self, text: str) -> None:
        self._emit({"n": text})

    def cannot_start(self, reason: str) -> None:
        self._emit({"x": reason})


@dataclass
class HostSettings:
    """What the worker hands its host: the kind, the worker's index and the run's options."""

    kind: str
    worker_index: int
    options: dict[str, Any]

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> HostSettings:
        return cls(kind=data["kind"], worker_index=int(data["worker_index"]),
                   options=data["options"])


class AlikeFailures:
    """A worker's start failures by reason: the first device failing with a reason is logged,
    the devices failing the same way in the next ``ALIKE_FAILURES_SECONDS`` are counted and said
    in one line when that time is up, so a fleet of thousands facing one refusal logs a few lines,
    not thousands."""

    def __init__(self) -> None:
        self._pending: dict[str, list[str]] = {}  # reason -> devices not said yet
        self._said_at: dict[str, float] = {}
        self._timers: dict[str, asyncio.TimerHandle] = {}

    def failed(self, device: str, reason: str) -> None:
        loop = asyncio.get_running_loop()
        said_at = self._said_at.get(reason)
        if said_at is None or loop.time() - said_at >= ALIKE_FAILURES_SECONDS:
            log.warning("device %s did not start (%s); trying again, every %.0f s at most",
                        device, reason, START_RETRY_MAX_SECONDS)
            self._said_at[reason] = loop.time()
            return
        self._pending.setdefault(reason, []).append(device)
        if reason not in self._timers:
            self._timers[reason] = loop.call_at(said_at + ALIKE_FAILURES_SECONDS, self._say, reason)

    def _say(self, reason: str) -> None:
        self._timers.pop(reason, None)
        devices = self._pending.pop(reason, [])
        if devices:
            log.warning("%d more device(s) did not start alike (%s): %s%s; each tries again",
                        len(devices), reason, ", ".join(devices[:3]), ", ..." if len(devices) > 3 else "")
            self._said_at[reason] = asyncio.get_running_loop().time()

    def close(self) -> None:
        """Say what is counted and not said yet (the worker is ending)."""
        for reason, timer in list(self._timers.items()):
            timer.cancel()
            self._say(reason)


class DeviceFleet:
    """A worker's devices of one kind. Subclasses implement the ``_start_device`` family.

    Links, faults and power cuts are ``otaharness emulate``'s own (:class:`Fleet`): with
    ``--fault``, every device reaches its servers through the host's local proxies from its own
    loopback address, and the devices ``--fault-devices`` picks (counted on this worker, in the
    order they start) get the fault plan; without, devices dial their servers directly.
    """

    kind = ""

    def __init__(self, settings: HostSettings, report: Reporter) -> None:
        self.settings = settings
        self.options = settings.options
        self.report = report
        self.devices: dict[int, Any] = {}
        faults = list(self.options.get("fault") or [])
        self.links = Fleet(self.kind, argparse.Namespace(
            fault=faults, fault_devices=self.options.get("fault_devices") or "all",
            fault_endpoint=self.options.get("fault_endpoint"), direct=not faults),
            report=FleetReport(self.kind, human=sys.stderr, live=False))
        report.fleet_report = self.links.report
        self._resources = contextlib.AsyncExitStack()
        # device number -> the add() call starting it (or waiting to try again): a number
        # removed and added again (a Locust user's slot reused) is the new call's alone
        self._starting: dict[int, object] = {}
        # device number -> set once its start or stop in progress has ended: a device removed
        # while it was starting still connects (then is stopped), one removed after it started
        # takes its time to stop; its successor waits for that, else the two would hold one
        # identity at once (the broker takes over the first's session with the second's)
        self._settled: dict[int, asyncio.Event] = {}
        self._start_failures = AlikeFailures()

    def name_of(self, number: int) -> str:
        prefix = self.options.get("device_prefix") or self.default_prefix()
        return f"{prefix}{number:09d}"

    def default_prefix(self) -> str:
        return "OTAH"

    def private_folder(self, prefix: str) -> Path:
        """A new folder only this user reads, inside the host's temporary folder (which the
        host's janitor removes once the host ends, even if it was killed outright: host.py)."""
        return Path(tempfile.mkdtemp(prefix=prefix))

    async def open(self) -> None:
        """Start what the worker's devices share (listeners, PKI)."""
        ca = self.options.get("ca")
        if ca:  # every device would fail alike on a CA file that does not load
            try:
                client_context(ca)
            except (OSError, ValueError) as error:  # ssl.SSLError is an OSError
                raise ValueError(f"--ca {ca}: {error}") from None
        await self._resources.enter_async_context(self.links)

    async def add(self, number: int) -> None:
        """Start device ``number``; a start that fails (its back end refusing or unreachable, a
        provisioning call throttled) is tried again after 1, 2, 4 ... up to
        ``START_RETRY_MAX_SECONDS``, as a factory line or a device's own boot would, until it
        starts or is removed. The kind reports each failed call as a request entry; the log
        says a device's reason once, and devices failing alike together (``AlikeFailures``).
        A defect of the kind (``PROGRAMMING_ERRORS``) is logged with its traceback and not tried
        again."""
        if number in self.devices or number in self._starting:
            return
        attempt = self._starting[number] = object()

        def still_wanted() -> bool:
            return self._starting.get(number) is attempt

        delay, said = START_RETRY_FIRST_SECONDS, None
        try:
            while True:
                if (previous := self._settled.get(number)) is not None:
                    await previous.wait()  # the removed one's start or stop ends
                    if not still_wanted():
                        return
                try:
                    failure = await self._start_once(number, still_wanted)
                except PROGRAMMING_ERRORS:  # a defect, not the back end: no retry will mend it
                    log.exception("device %s did not start", self.name_of(number))
                    return
                if failure is None:
                    return
                reason = f"{type(failure).__name__}: {failure}"
                if reason != said:
                    self._start_failures.failed(self.name_of(number), reason)
                    said = reason
                await asyncio.sleep(delay)
                delay = min(2 * delay, START_RETRY_MAX_SECONDS)
                if not still_wanted():  # removed while it waited
                    return
        finally:
            if still_wanted():
                del self._starting[number]

    async def _start_once(self, number: int, still_wanted: Callable[[], bool]) -> Exception | None:
        """One try at starting device ``number``: its device kept if still wanted, else stopped
        again; the failure, if the start failed (not a programming error: that is raised)."""
        with self._settling(number):
            try:
                device = await self._start_device(number)
            except PROGRAMMING_ERRORS:
                raise
            except Exception as failure:  # noqa: BLE001 (any other: the device tries again)
                return failure
            if still_wanted():
                self.devices[number] = device
            else:  # removed while it started
                await self._stop_device(device)
            return None

    @contextlib.contextmanager
    def _settling(self, number: int) -> Iterator[None]:
        """Device ``number`` is starting or stopping while the block runs (``_settled``)."""
        settled = self._settled[number] = asyncio.Event()
        try:
            yield
        finally:
            settled.set()
            if self._settled.get(number) is settled:
                del self._settled[number]

    async def remove(self, number: int) -> None:
        self._starting.pop(number, None)
        device = self.devices.pop(number, None)
        if device is not None:
            with self._settling(number):
                await self._stop_device(device)

    async def reboot(self, numbers: list[int]) -> None:
        await asyncio.gather(*(self._reboot_device(self.devices[n]) for n in numbers
                               if n in self.devices), return_exceptions=True)

    async def close(self) -> None:
        for number in list(self.devices):
            await self.remove(number)
        self._start_failures.close()
        await self._close_shared()
        await self._resources.aclose()  # the links' summary (faults struck) goes to the log

    def gauges(self) -> tuple[int, int]:
        """(devices connected, upgrades in progress)."""
        return (sum(1 for d in self.devices.values() if self._connected(d)),
                sum(1 for d in self.devices.values() if self._upgrading(d)))

    # -- per kind --------------------------------------------------------------------------
    async def _start_device(self, number: int) -> Any:
        raise NotImplementedError

    async def _stop_device(self, device: Any) -> None:
        raise NotImplementedError

    async def _reboot_device(self, device: Any) -> None:
        raise NotImplementedError

    async def _close_shared(self) -> None:
        pass

    def _connected(self, device: Any) -> bool:
        raise NotImplementedError

    def _upgrading(self, device: Any) -> bool:
        raise NotImplementedError

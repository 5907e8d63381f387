"""The device host: ``python -m otaharness.load.host``, one per Locust worker.

A plain asyncio process (it never imports Locust or gevent, so threading, selectors, sockets and
ssl are the standard library's own): it runs its worker's devices on one event loop. Its
settings (``fleet.HostSettings``, with the back ends' tokens) come as the first JSON line on
stdin, not as an argument that every user's process list would show; then commands come as
JSON lines on stdin, events leave as JSON lines on stdout (``fleet.Reporter``):

    {"add": N}      start device number N          {"remove": N}   stop it for good
    {"reboot": [N, ...]}  reboot those devices     {"close": true} stop every device and exit

A kind whose shared part cannot open (``--station-sig-key`` or ``--fuota-verify-key`` missing, a
CA that does not load, the back end refusing its stations) sends ``{"x": reason}`` and exits with
status 2, its traceback left out: the worker ends the run with that one line.

End of stdin (the worker quit, or died: the pipe closes with it) is a close as well, and the
kernel sends SIGTERM if the worker dies first (PR_SET_PDEATHSIG), so no host outlives its
worker.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import importlib
import json
import logging
import os
import signal
import sys
from typing import Any

from otaharness.runtime.janitor import private_tempdir
from otaharness.runtime.runtime import raise_fd_limit

from .fleet import DeviceFleet, HostSettings, Reporter

KINDS = {
    "cpe": "otaharness.load.kinds.cpe:CpeFleet",
    "olt-gateway": "otaharness.load.kinds.olt_gateway:OltGatewayFleet",
    "basics-station": "otaharness.load.kinds.basics_station:BasicsStationFleet",
    "aws-tracker": "otaharness.load.kinds.aws_tracker:AwsTrackerFleet",
    "lorawan": "otaharness.load.kinds.lorawan:LorawanFleet",
}
GAUGE_SECONDS = 1.0
PR_SET_PDEATHSIG = 1

log = logging.getLogger("otaharness.load.host")


def fleet_class(kind: str) -> type[DeviceFleet]:
    module, _, name = KINDS[kind].partition(":")
    return getattr(importlib.import_module(module), name)


def die_with_parent() -> None:
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):  # not Linux: end of stdin still closes the host
        pass
    if os.getppid() == 1:  # the worker died before the line above
        sys.exit(0)


async def serve(settings: HostSettings) -> None:
    loop = asyncio.get_running_loop()
    transport, _protocol = await loop.connect_write_pipe(asyncio.streams.FlowControlMixin,
                                                        os.fdopen(sys.stdout.fileno(), "wb", 0))
    report = Reporter(transport.write)
    reader = asyncio.StreamReader(limit=1 << 20)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, lambda: None)  # the worker decides when to stop
    fleet = fleet_class(settings.kind)(settings, report)
    try:
        await fleet.open()
    except (Exception, SystemExit) as failure:  # noqa: BLE001 (any: told to the worker)
        report.cannot_start(str(failure) or type(failure).__name__)
        with contextlib.suppress(Exception):  # what did open: links, temporary homes
            await fleet.close()
        transport.close()
        raise CannotStart from None
    pending: set[asyncio.Task[Any]] = set()

    def spawn(coroutine: Any, what: str = "device command") -> None:
        task = asyncio.ensure_future(coroutine)
        pending.add(task)
        task.add_done_callback(pending.discard)
        task.add_done_callback(lambda task: _log_failure(task, what))

    async def gauges() -> None:
        while True:
            report.gauges(*fleet.gauges())
            await asyncio.sleep(GAUGE_SECONDS)

    async def commands() -> None:
        while line := await reader.readline():
            command = json.loads(line)
            if "add" in command:
                number = int(command["add"])
                spawn(fleet.add(number), f"starting device {fleet.name_of(number)}")
            elif "remove" in command:
                spawn(fleet.remove(int(command["remove"])))
            elif "reboot" in command:
                spawn(fleet.reboot([int(n) for n in command["reboot"]]))
            elif command.get("close"):
                break
        stop.set()

    tasks = [asyncio.ensure_future(gauges()), asyncio.ensure_future(commands())]
    try:
        await stop.wait()
    finally:
        for task in [*tasks, *pending]:
            task.cancel()
        await asyncio.gather(*tasks, *pending, return_exceptions=True)
        await fleet.close()
        report.gauges(0, 0)
        transport.close()


class CannotStart(Exception):
    """The fleet's shared part did not open; the worker was told why."""


def _log_failure(task: asyncio.Task[Any], what: str) -> None:
    """One line per failed device (its request entry names the call): a wrong token or an
    unreachable back end fails every device alike, and a traceback each buried the reason."""
    if not task.cancelled() and (failure := task.exception()) is not None:
        log.error("%s failed: %s: %s", what, type(failure).__name__, failure)


def read_settings() -> HostSettings:
    """The first line on stdin, read a byte at a time: what follows it is the commands' stream,
    which the event loop reads from the same descriptor (a buffered read would take some)."""
    line = bytearray()
    while not line.endswith(b"\n"):
        byte = os.read(sys.stdin.fileno(), 1)
        if not byte:  # the worker ended before it sent them
            sys.exit(0)
        line += byte
    return HostSettings.from_json(json.loads(line))


def main() -> None:
    die_with_parent()
    raise_fd_limit()
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s host %(name)s: %(message)s")
    settings = read_settings()
    # The devices' files (stations' homes, trackers' keys on their way into ssl) go in one
    # temporary folder, removed once this host ends, even when killed outright (runtime/janitor.py).
    _folder, janitor = private_tempdir("otaharness-load-host-")
    try:
        asyncio.run(serve(settings))
    except CannotStart:
        sys.exit(2)
    finally:
        janitor.close()


if __name__ == "__main__":
    main()

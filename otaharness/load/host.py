"""The device host: ``python -m otaharness.load.host SETTINGS_JSON``, one per Locust worker.

A plain asyncio process (it never imports Locust or gevent, so threading, selectors, sockets and
ssl are the standard library's own): it runs its worker's devices on one event loop. Commands
come as JSON lines on stdin, events leave as JSON lines on stdout (``fleet.Reporter``):

    {"add": N}      start device number N          {"remove": N}   stop it for good
    {"reboot": [N, ...]}  reboot those devices     {"close": true} stop every device and exit

End of stdin (the worker quit, or died: the pipe closes with it) is a close as well, and the
kernel sends SIGTERM if the worker dies first (PR_SET_PDEATHSIG), so no host outlives its
worker.
"""

from __future__ import annotations

import asyncio
import ctypes
import importlib
import json
import logging
import os
import signal
import sys
from typing import Any

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
    transport, protocol = await loop.connect_write_pipe(asyncio.streams.FlowControlMixin,
                                                        os.fdopen(sys.stdout.fileno(), "wb", 0))
    report = Reporter(transport.write)
    reader = asyncio.StreamReader(limit=1 << 20)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, lambda: None)  # the worker decides when to stop
    fleet = fleet_class(settings.kind)(settings, report)
    await fleet.open()
    pending: set[asyncio.Task[Any]] = set()

    def spawn(coroutine: Any) -> None:
        task = asyncio.ensure_future(coroutine)
        pending.add(task)
        task.add_done_callback(pending.discard)
        task.add_done_callback(_log_failure)

    async def gauges() -> None:
        while True:
            report.gauges(*fleet.gauges())
            await asyncio.sleep(GAUGE_SECONDS)

    async def commands() -> None:
        while line := await reader.readline():
            command = json.loads(line)
            if "add" in command:
                spawn(fleet.add(int(command["add"])))
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


def _log_failure(task: asyncio.Task[Any]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("device command failed", exc_info=task.exception())


def main() -> None:
    die_with_parent()
    raise_fd_limit()
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s host %(name)s: %(message)s")
    settings = HostSettings.from_json(json.loads(sys.argv[1]))
    asyncio.run(serve(settings))


if __name__ == "__main__":
    main()

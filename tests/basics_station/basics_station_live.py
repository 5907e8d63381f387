"""The Basics Station back end (CUPS + admin API on one port, the LNS on another) on real time in
a thread of its own, for tests that talk to it synchronously (schemathesis, hypothesis)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

from otaharness.runtime.clock import RealClock
from otaharness.servers.basics_station.server import BasicsStationServer

T = TypeVar("T")


class LiveBasicsStation(threading.Thread):
    """``start()``, then ``cups``/``lns`` are the URLs; ``call(fn)`` runs ``fn(server)`` on the
    server's loop (the registry is SQLite, bound to that thread); ``stop()``."""

    def __init__(self, directory: Path) -> None:
        super().__init__(name="basics-station-live", daemon=True)
        self.directory = directory
        self.loop = asyncio.new_event_loop()
        self.ready = threading.Event()
        self.server: BasicsStationServer | None = None
        self.cups = ""
        self.lns = ""
        self._stopped: asyncio.Event | None = None
        self.failure: BaseException | None = None

    def run(self) -> None:
        try:
            self.loop.run_until_complete(self._serve())
        except BaseException as error:  # reported by start_live
            self.failure = error
            self.ready.set()

    async def _serve(self) -> None:
        self._stopped = asyncio.Event()
        self.server = BasicsStationServer(self.directory, RealClock())
        await self.server.start()
        self.cups, self.lns = self.server.endpoints()["cups"], self.server.endpoints()["lns"]
        self.ready.set()
        await self._stopped.wait()
        await self.server.stop()

    def call(self, function: Callable[[BasicsStationServer], T | Awaitable[T]], timeout: float = 10) -> T:
        async def run() -> T:
            assert self.server is not None
            result = function(self.server)
            return await result if asyncio.iscoroutine(result) else result  # type: ignore[return-value]

        return asyncio.run_coroutine_threadsafe(run(), self.loop).result(timeout)

    def stop(self) -> None:
        if self._stopped is not None:
            self.loop.call_soon_threadsafe(self._stopped.set)
        self.join(10)
        self.loop.close()


def start_live(directory: Path) -> LiveBasicsStation:
    live = LiveBasicsStation(directory)
    live.start()
    assert live.ready.wait(10), "the Basics Station back end did not start"
    if live.failure is not None:
        raise live.failure
    return live

"""The Basics Station back end (CUPS + admin API on one port, the LNS on another) on real time in
a thread of its own, for tests that talk to it synchronously (schemathesis, hypothesis)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

from live_loop import LiveLoop
from otaharness.runtime.clock import RealClock
from otaharness.servers.basics_station.server import BasicsStationServer

T = TypeVar("T")


class LiveBasicsStation(LiveLoop):
    """``start()``, then ``cups``/``lns`` are the URLs; ``call(fn)`` runs ``fn(server)`` on the
    server's loop (the registry is SQLite, bound to that thread); ``stop()``."""

    def __init__(self, directory: Path) -> None:
        super().__init__("basics-station-live")
        self.directory = directory
        self.server: BasicsStationServer | None = None
        self.cups = ""
        self.lns = ""
        self.token = ""  # the admin API's bearer token

    async def serve(self) -> None:
        self.server = BasicsStationServer(self.directory, RealClock())
        await self.server.start()
        self.cups, self.lns = self.server.endpoints()["cups"], self.server.endpoints()["lns"]
        self.token = self.server.admin_token
        await self.serving()
        await self.server.stop()

    def call(self, function: Callable[[BasicsStationServer], T | Awaitable[T]]) -> T:  # type: ignore[override]
        """``function(server)`` on the server's loop."""
        return super().call(lambda: function(self.server))  # type: ignore[arg-type]


def start_live(directory: Path) -> LiveBasicsStation:
    return LiveBasicsStation(directory).start_and_wait()

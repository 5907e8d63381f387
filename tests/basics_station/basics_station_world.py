"""A Basics Station world for tests: the back end and stations on one virtual-time loop."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from emulators.basics_station import BasicsStation, StationHome, StationSettings
from otaharness.runtime.clock import VirtualClock, VirtualEventLoop
from otaharness.servers.basics_station.registry import StationRecord
from otaharness.servers.basics_station.server import FIXTURES, BasicsStationServer


class World:
    """The server plus stations, each station with its own home under ``tmp_path``."""

    def __init__(self, tmp_path: Path, clock: VirtualClock) -> None:
        self.tmp_path = tmp_path
        self.clock = clock
        self.server = BasicsStationServer(tmp_path / "server", clock)
        self.stations: list[BasicsStation] = []

    @property
    def cups_url(self) -> str:
        return self.server.endpoints()["cups"]

    @property
    def lns_url(self) -> str:
        return self.server.endpoints()["lns"]

    def register(self, eui: int, **twin: Any) -> StationRecord:
        """The station's twin: by default CUPS hands out this server's CUPS and LNS URIs."""
        defaults = {"cups_uri": self.cups_url, "tc_uri": self.lns_url}
        return self.server.registry.put(StationRecord(eui, **{**defaults, **twin}))

    def station(self, eui: int, *, version: str | None = "v0", sig_keys: tuple[bytes, ...] = (),
                cups_uri: str | None = None, register: bool = True, **settings: Any) -> BasicsStation:
        if register:
            self.register(eui)
        home = StationHome(self.tmp_path / f"station-{eui:x}").provision(
            cups_uri=cups_uri or self.cups_url, version=version, sig_keys=sig_keys)
        station = BasicsStation(StationSettings(eui, **settings), home, self.clock, name=f"station-{eui:x}")
        self.stations.append(station)
        return station

    async def until(self, predicate: Callable[[], bool], timeout: float = 3600.0) -> None:
        assert await self.clock.run_until(predicate, timeout=timeout), "condition not reached in time"

    def reported(self, eui: int) -> str | None:
        return self.server.registry.get(eui).reported_package


def run_world(tmp_path: Path, main: Callable[[World], Awaitable[Any]]) -> Any:
    clock = VirtualClock()
    loop = VirtualEventLoop(clock)
    asyncio.set_event_loop(loop)

    async def scenario() -> Any:
        world = World(tmp_path, clock)
        await world.server.start()
        try:
            result = await main(world)
        finally:
            for station in world.stations:
                await station.wait_restart()
                await station.stop()
            await world.server.stop()
        await asyncio.sleep(0)
        leftover = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
        assert not leftover, f"tasks left behind: {leftover}"
        return result

    try:
        return loop.run_until_complete(scenario())
    finally:
        loop.run_until_complete(loop.shutdown_default_executor())
        loop.close()
        asyncio.set_event_loop(None)


def fixture_path(name: str) -> Path:
    return FIXTURES / name


def copy_fixture(name: str, to: Path) -> Path:
    to.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(fixture_path(name), to)
    return to

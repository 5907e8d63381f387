"""A Basics Station world for tests: the back end and stations on one virtual-time loop."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from otaharness.emulators.basics_station import BasicsStation, StationHome, StationSettings
from otaharness.protocols.basics_station import Credentials
from otaharness.runtime.clock import VirtualClock, VirtualEventLoop
from otaharness.runtime.pki import Pki
from otaharness.servers.basics_station.identity import issue_credentials
from otaharness.servers.basics_station.registry import StationRecord
from otaharness.servers.basics_station.server import FIXTURES, BasicsStationServer


class World:
    """The server plus stations, each station with its own home under ``tmp_path``; with a
    ``pki`` the server runs TLS and every station gets a credential set (``auth``)."""

    def __init__(self, tmp_path: Path, clock: VirtualClock, pki: Pki | None = None) -> None:
        self.tmp_path = tmp_path
        self.clock = clock
        self.pki = pki
        self.server = BasicsStationServer(tmp_path / "server", clock, pki=pki)
        self.stations: list[BasicsStation] = []

    @property
    def admin_headers(self) -> dict[str, str]:
        """What the admin API (on the CUPS port) requires: the server's bearer token."""
        return {"Authorization": f"Bearer {self.server.admin_token}"}

    def admin_session(self):
        """An aiohttp session for the admin API (token; trusting the PKI's CA with TLS)."""
        import ssl

        import aiohttp

        tls = ssl.create_default_context(cafile=str(self.pki.ca_file)) if self.pki is not None else None
        return aiohttp.ClientSession(headers=self.admin_headers,
                                     connector=aiohttp.TCPConnector(ssl=tls) if tls else None)

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

    def credentials(self, eui: int, auth: str = "certificate") -> Credentials:
        assert self.pki is not None, "credentials need the TLS world (pki=...)"
        return issue_credentials(self.pki, self.server.registry, eui, auth)

    def station(self, eui: int, *, version: str | None = "v0", sig_keys: tuple[bytes, ...] = (),
                cups_uri: str | None = None, register: bool = True, auth: str | None = "certificate",
                credentials: Credentials | None = None, **settings: Any) -> BasicsStation:
        if register:
            self.register(eui)
        home = StationHome(self.tmp_path / f"station-{eui:x}").provision(
            cups_uri=cups_uri or self.cups_url, version=version, sig_keys=sig_keys)
        if self.pki is not None and (credentials is not None or auth is not None):
            credentials = credentials or self.credentials(eui, auth or "certificate")
            for category in ("cups", "tc"):
                home.store_credentials(category, credentials)
        station = BasicsStation(StationSettings(eui, **settings), home, self.clock, name=f"station-{eui:x}")
        self.stations.append(station)
        return station

    async def until(self, predicate: Callable[[], bool], timeout: float = 3600.0) -> None:
        assert await self.clock.run_until(predicate, timeout=timeout), "condition not reached in time"

    def reported(self, eui: int) -> str | None:
        return self.server.registry.get(eui).reported_package


def run_world(tmp_path: Path, main: Callable[[World], Awaitable[Any]], *, tls: bool = False) -> Any:
    clock = VirtualClock()
    loop = VirtualEventLoop(clock)
    asyncio.set_event_loop(loop)
    pki = Pki() if tls else None

    async def scenario() -> Any:
        world = World(tmp_path, clock, pki)
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
        if pki is not None:
            pki.close()
        loop.run_until_complete(loop.shutdown_default_executor())
        loop.close()
        asyncio.set_event_loop(None)


def fixture_path(name: str) -> Path:
    return FIXTURES / name


def copy_fixture(name: str, to: Path) -> Path:
    to.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(fixture_path(name), to)
    return to

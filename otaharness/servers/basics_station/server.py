"""The Basics Station back end: CUPS (+ admin API) on one port, the LNS on another, one registry.

``BasicsStationServer(data_dir, clock)``; ``await start()`` binds 127.0.0.1 on free ports;
``endpoints()`` → ``{"cups": "http://127.0.0.1:P", "lns": "ws://127.0.0.1:Q"}`` (the admin API
of :mod:`.admin` is on the CUPS URL); ``await stop()``. State lives in ``data_dir``
(``stations.sqlite`` and ``firmware/``), so a restarted server keeps its stations.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from aiohttp import web

from otaharness.servers.http_errors import undecodable_body

from fixtures import fixture_path
from otaharness.runtime.clock import Clock
from otaharness.servers.basics_station.admin import MAX_FIRMWARE_SIZE, AdminApi
from otaharness.servers.basics_station.cups import CupsEndpoint
from otaharness.servers.basics_station.lns import LnsServer
from otaharness.servers.basics_station.registry import FirmwareStore, StationRegistry

FIXTURES = fixture_path("basics_station")
DEFAULT_ROUTER_CONFIG = FIXTURES / "eu868_router_config.json"


def load_router_config(path: Path = DEFAULT_ROUTER_CONFIG) -> dict[str, Any]:
    config: dict[str, Any] = json.loads(path.read_text())
    return config


class BasicsStationServer:
    def __init__(self, data_dir: Path, clock: Clock, *, host: str = "127.0.0.1",
                 router_config: dict[str, Any] | None = None) -> None:
        data_dir.mkdir(parents=True, exist_ok=True)
        self.host = host
        self.registry = StationRegistry(data_dir / "stations.sqlite")
        self.store = FirmwareStore(data_dir / "firmware")
        self.cups = CupsEndpoint(self.registry, self.store.read)
        self.lns = LnsServer(self.registry, router_config or load_router_config(), clock)
        self.admin = AdminApi(self.registry, self.store, self.lns.reject)
        self._runners: list[web.AppRunner] = []
        self._urls: dict[str, str] = {}

    async def start(self) -> None:
        cups_app = web.Application(middlewares=[self.admin.errors, undecodable_body], client_max_size=MAX_FIRMWARE_SIZE)
        self.cups.add_routes(cups_app)
        self.admin.add_routes(cups_app)
        lns_app = web.Application(middlewares=[undecodable_body])
        self.lns.add_routes(lns_app)
        cups_port = await self._serve(cups_app)
        lns_port = await self._serve(lns_app)
        self._urls = {"cups": f"http://{self.host}:{cups_port}", "lns": f"ws://{self.host}:{lns_port}"}
        self.lns.base_url = self._urls["lns"]

    async def _serve(self, app: web.Application) -> int:
        runner = web.AppRunner(app, handle_signals=False, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, self.host, 0)
        await site.start()
        self._runners.append(runner)
        port: int = runner.addresses[0][1]
        return port

    def endpoints(self) -> dict[str, str]:
        return dict(self._urls)

    async def stop(self) -> None:
        await self.lns.close_all()
        for runner in reversed(self._runners):
            await runner.cleanup()
        self._runners.clear()
        self.registry.close()

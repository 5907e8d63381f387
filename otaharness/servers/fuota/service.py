"""The FUOTA server as a runtime service (for ``FLOW_SERVICES["fuota"]``).

Needs the ``"lorawan"`` service (the network server behind the LNS websocket): the FUOTA server
registers its FPort 200-203 handlers on that service's ``network_server``. Endpoints:
``{"fuota": "http://127.0.0.1:P"}`` (the HTTP API). State in the scenario's artifacts
(``fuota/fuota.sqlite``), emptied when the service starts.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from typing import Any

from aiohttp import web

from .api import serve
from .server import FuotaServer


class FuotaService:
    def __init__(self, server: FuotaServer, runner: web.AppRunner, url: str, make_server: Callable[[], FuotaServer]) -> None:
        self.server = server
        self._runner = runner
        self._url = url
        self._make_server = make_server

    def endpoints(self) -> dict[str, str]:
        return {"fuota": self._url}

    async def stop(self) -> None:
        await self._runner.cleanup()
        await self.server.close()

    async def restart(self) -> None:
        """Take the server and its API down and bring a new server up on the same SQLite file: it
        resumes the campaigns that were running. The API's URL changes (a new free port)."""
        await self.stop()
        self.server = self._make_server()
        await self.server.start()
        self._runner, self._url = await serve(self.server)


async def start(runtime: Any) -> FuotaService:
    lorawan = await runtime.service("lorawan")
    data_dir = runtime.artifacts / "fuota"
    shutil.rmtree(data_dir, ignore_errors=True)
    data_dir.mkdir(parents=True)
    def make_server() -> FuotaServer:
        return FuotaServer(lorawan.network_server, data_dir / "fuota.sqlite", runtime.clock, runtime.rng("fuota"))

    server = make_server()
    await server.start()
    runner, url = await serve(server)
    return FuotaService(server, runner, url, make_server)

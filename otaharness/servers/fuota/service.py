"""The FUOTA server as a runtime service (for ``FLOW_SERVICES["fuota"]``).

Needs the ``"lorawan"`` service (the network server behind the LNS websocket): the FUOTA server
registers its FPort 200-203 handlers on that service's ``network_server``. Endpoints:
``{"fuota": "http://127.0.0.1:P"}`` (the HTTP API). State in the scenario's artifacts
(``fuota/fuota.sqlite``), emptied when the service starts.
"""

from __future__ import annotations

import shutil
from typing import Any

from aiohttp import web

from .api import serve
from .server import FuotaServer


class FuotaService:
    def __init__(self, server: FuotaServer, runner: web.AppRunner, url: str) -> None:
        self.server = server
        self._runner = runner
        self._url = url

    def endpoints(self) -> dict[str, str]:
        return {"fuota": self._url}

    async def stop(self) -> None:
        await self._runner.cleanup()
        await self.server.close()


async def start(runtime: Any) -> FuotaService:
    lorawan = await runtime.service("lorawan")
    data_dir = runtime.artifacts / "fuota"
    shutil.rmtree(data_dir, ignore_errors=True)
    data_dir.mkdir(parents=True)
    server = FuotaServer(lorawan.network_server, data_dir / "fuota.sqlite", runtime.clock, runtime.rng("fuota"))
    await server.start()
    runner, url = await serve(server)
    return FuotaService(server, runner, url)

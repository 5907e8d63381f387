"""The OLT back end assembled: SQLite store, backend, HTTP server on a free loopback port, and
(optionally) the MQTT side. Used by ``service.py`` and by tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from aiohttp import web

from otaharness.servers.olt.backend import OltBackend
from otaharness.servers.olt.http_api import BLOB_LIMIT, OltHttpApi
from otaharness.servers.olt.messaging import OltMessaging, PubSub
from otaharness.servers.olt.store import Store


class OltServer:
    def __init__(self, database: str | Path, clock: Any, *, host: str = "127.0.0.1", port: int = 0,
                 mqtt: PubSub | None = None, blob_limit: int = BLOB_LIMIT, **backend_options: Any) -> None:
        self.store = Store(database)
        self.backend = OltBackend(self.store, clock, **backend_options)
        self.api = OltHttpApi(self.backend, blob_limit=blob_limit)
        self.messaging = OltMessaging(self.backend, mqtt) if mqtt is not None else None
        self.host, self.port = host, port
        self._runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return self.backend.base_url

    async def start(self) -> None:
        if self.messaging is not None:
            await self.messaging.start()
        self._runner = web.AppRunner(self.api.app(), access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        self.port = self._runner.addresses[0][1]
        self.backend.base_url = f"http://{self.host}:{self.port}"
        self.backend.resume()

    async def stop(self) -> None:
        await self.backend.close()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        self.store.close()

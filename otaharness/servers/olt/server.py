"""The OLT back end assembled: SQLite store, backend, HTTP(S) server on a free loopback port, and
(optionally) the MQTT side. Used by ``service.py`` and by tests.

``operator_token`` (default: a new one from the CSPRNG) is the bearer token that manages tenants
(``POST /v1/tenants``); tenants and their devices get theirs from the OAuth token endpoint."""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import Any

from otaharness.servers.http_service import HttpSite, new_token, serve_app
from otaharness.servers.olt.backend import OltBackend
from otaharness.servers.olt.http_api import BLOB_LIMIT, OltHttpApi
from otaharness.servers.olt.messaging import OltMessaging, PubSub
from otaharness.servers.olt.store import Store


class OltServer:
    def __init__(self, database: str | Path, clock: Any, *, host: str = "127.0.0.1", port: int = 0,
                 mqtt: PubSub | None = None, blob_limit: int = BLOB_LIMIT,
                 ssl_context: ssl.SSLContext | None = None, operator_token: str | None = None,
                 **backend_options: Any) -> None:
        self.store = Store(database)
        self.backend = OltBackend(self.store, clock, **backend_options)
        self.operator_token = operator_token or new_token()
        self.api = OltHttpApi(self.backend, blob_limit=blob_limit, operator_token=self.operator_token)
        self.messaging = OltMessaging(self.backend, mqtt) if mqtt is not None else None
        self.host, self.port = host, port
        self.ssl_context = ssl_context
        self._site: HttpSite | None = None

    @property
    def url(self) -> str:
        return self.backend.base_url

    async def start(self) -> None:
        if self.messaging is not None:
            await self.messaging.start()
        self._site = await serve_app(self.api.app(), self.host, self.port,
                                     ssl_context=self.ssl_context, actor="olt")
        self.port = self._site.port  # a restart within the scenario keeps it
        self.backend.base_url = self._site.url
        self.backend.resume()

    async def stop(self) -> None:
        await self.backend.close()
        if self._site is not None:
            await self._site.stop()
            self._site = None
        self.store.close()

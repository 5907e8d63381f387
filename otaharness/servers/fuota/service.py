"""The FUOTA server as a runtime service (for ``FLOW_SERVICES["fuota"]``).

Needs the ``"lorawan"`` service (the network server behind the LNS websocket): the FUOTA server
registers its FPort 200-203 handlers on that service's ``network_server``. Endpoints:
``{"fuota": "https://127.0.0.1:P", "ca": "<server CA file>"}`` (the HTTP API over TLS with the
scenario PKI's server certificate; ``-D target.fuota.plain_http=true``: plain HTTP). The API takes
the bearer token ``tokens()["fuota"]`` (from the CSPRNG, the same across restarts). State in the
scenario's artifacts (``fuota/fuota.sqlite``), emptied when the service starts.
"""

from __future__ import annotations

import ssl
from collections.abc import Callable
from typing import Any

from otaharness.runtime.targets import boolean
from otaharness.servers.http_service import HttpSite, new_token

from .api import serve
from .server import FuotaServer

SERVER_NAMES = ("localhost",)
# [targets.fuota] / -D target.fuota.<name>, checked when the config is loaded.
SETTINGS = {"plain_http": boolean}  # serve the API over plain HTTP


class FuotaService:
    def __init__(self, server: FuotaServer, make_server: Callable[[], FuotaServer], token: str,
                 ssl_context: ssl.SSLContext | None, ca_file: str | None) -> None:
        self.server = server
        self._make_server = make_server
        self._token = token
        self._ssl_context = ssl_context
        self._ca_file = ca_file
        self._site: HttpSite | None = None

    async def serve(self) -> None:
        self._site = await serve(self.server, token=self._token, ssl_context=self._ssl_context)

    def endpoints(self) -> dict[str, str]:
        assert self._site is not None, "the FUOTA API is not being served"
        endpoints = {"fuota": self._site.url}
        if self._ca_file is not None:
            endpoints["ca"] = self._ca_file
        return endpoints

    def tokens(self) -> dict[str, str]:
        return {"fuota": self._token}

    async def stop(self) -> None:
        if self._site is not None:
            await self._site.stop()
            self._site = None
        await self.server.close()

    async def restart(self) -> None:
        """Take the server and its API down and bring a new server up on the same SQLite file: it
        resumes the campaigns that were running. The API's URL changes (a new free port); its
        token stays."""
        await self.stop()
        self.server = self._make_server()
        await self.server.start()
        await self.serve()


async def start(runtime: Any) -> FuotaService:
    lorawan = await runtime.service("lorawan")
    data_dir = runtime.data_dir("fuota")

    def make_server() -> FuotaServer:
        return FuotaServer(lorawan.network_server, data_dir / "fuota.sqlite", runtime.clock, runtime.rng("fuota"))

    plain = boolean(runtime.target("fuota").endpoints.get("plain_http", ""))
    pki = None if plain else runtime.pki()
    server = make_server()
    await server.start()
    service = FuotaService(server, make_server, new_token(),
                           None if pki is None else pki.server_context(SERVER_NAMES),
                           None if pki is None else str(pki.ca_file))
    await service.serve()
    return service

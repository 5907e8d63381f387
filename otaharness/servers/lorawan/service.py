"""The LoRaWAN flow's back end as a runtime service (``FLOW_SERVICES["lorawan"]``).

One LNS for both flows: the network server is attached to the LNS of the Basics Station service
(``"cups"``: station discovery ``/router-info`` and data websockets ``/router-data/<EUI>``), so
a station upgraded through CUPS carries LoRaWAN traffic on the same connection. Stations are
registered with the CUPS admin API (``PUT /admin/stations/{eui}`` on the ``cups`` URL) or
:meth:`LoRaWANService.register_station`.

Endpoints: ``{"cups": …, "lns": "wss://127.0.0.1:Q", "ca": …, "lorawan-app": "https://127.0.0.1:R"}``
(the LNS over TLS as the ``cups`` service runs it; stations get their files from
:meth:`LoRaWANService.station_credentials`); the
application interface (:mod:`.app_api`, docs/lorawan.md) is on ``lorawan-app``, over HTTPS with
the scenario PKI's server certificate (``-D target.lorawan.plain_http=true``: plain HTTP), and
takes the bearer token ``tokens()["lorawan-app"]`` (from the CSPRNG) on every path but
``/openapi.json``: checked first, before any body is read. The network server's SQLite file is
under the scenario's artifacts (``lorawan/``), emptied at start.
"""

from __future__ import annotations

import ssl
from typing import Any

from aiohttp import web

from otaharness.runtime.targets import boolean
from otaharness.servers.basics_station.registry import StationRecord
from otaharness.servers.basics_station.server import BasicsStationServer
from otaharness.servers.http_errors import undecodable_body
from otaharness.servers.http_service import (
    API_DOCUMENT_PATH,
    HttpSite,
    bearer_token_required,
    new_token,
    requests_routed_to,
    serve_app,
)

from .app_api import ApplicationApi
from .server import NetworkServer

SERVER_NAMES = ("localhost",)
# [targets.lorawan] / -D target.lorawan.<name>, checked when the config is loaded.
SETTINGS = {"plain_http": boolean}  # serve the API over plain HTTP


class LoRaWANService:
    def __init__(self, stations: BasicsStationServer, network_server: NetworkServer, api: ApplicationApi,
                 *, token: str | None = None, ssl_context: ssl.SSLContext | None = None,
                 ca_file: str | None = None) -> None:
        self.stations = stations
        self.network_server = network_server
        self.api = api
        self.token = token or new_token()
        self._ssl_context = ssl_context
        self._ca_file = ca_file
        self._site: HttpSite | None = None

    async def start(self, host: str = "127.0.0.1") -> None:
        # The token check first: a request without it never reaches a handler or its body.
        app = web.Application(middlewares=[bearer_token_required(self.token, exempt=requests_routed_to(API_DOCUMENT_PATH)),
                                           undecodable_body])
        self.api.add_routes(app)
        self._site = await serve_app(app, host, 0, ssl_context=self._ssl_context, actor="lorawan")
        await self.network_server.start()

    def endpoints(self) -> dict[str, str]:
        assert self._site is not None, "the application API is not being served"
        endpoints = {**self.stations.endpoints(), "lorawan-app": self._site.url}
        if self._ca_file is not None:
            endpoints.setdefault("ca", self._ca_file)
        return endpoints

    def tokens(self) -> dict[str, str]:
        return {"lorawan-app": self.token}

    def register_station(self, eui: int) -> StationRecord:
        """Let a station in through discovery (its twin points its TC URI at this LNS)."""
        urls = self.stations.endpoints()
        record = self.stations.registry.find(eui) or StationRecord(eui, cups_uri=urls["cups"], tc_uri=urls["lns"])
        return self.stations.registry.put(record)

    def station_credentials(self, eui: int):
        """A credential set for station ``eui`` (client certificate bound to its EUI) when the
        Basics Station back end runs TLS, else None: its ``cups.*``/``tc.*`` files."""
        from otaharness.servers.basics_station.identity import issue_credentials

        if self.stations.pki is None:
            return None
        return issue_credentials(self.stations.pki, self.stations.registry, eui, "certificate")

    async def stop(self) -> None:
        if self._site is not None:
            await self._site.stop()
            self._site = None
        await self.network_server.close()


async def start(runtime: Any) -> LoRaWANService:
    """``runtime``: the scenario's Runtime (``service("cups")``, ``artifacts``, ``clock``, ``rng``)."""
    stations: BasicsStationServer = await runtime.service("cups")
    data_dir = runtime.data_dir("lorawan")
    network_server = NetworkServer(data_dir / "ns.sqlite", runtime.clock, runtime.rng("lorawan-ns"), stations.lns)
    stations.lns.attach_network_server(network_server)
    api = ApplicationApi(network_server, lambda: list(stations.lns.sessions))
    plain = boolean(runtime.target("lorawan").endpoints.get("plain_http", ""))
    pki = None if plain else runtime.pki()
    service = LoRaWANService(stations, network_server, api,
                             ssl_context=None if pki is None else pki.server_context(SERVER_NAMES),
                             ca_file=None if pki is None else str(pki.ca_file))
    await service.start()
    return service

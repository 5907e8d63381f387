"""The LoRaWAN flow's back end as a runtime service (``FLOW_SERVICES["lorawan"]``).

One LNS for both flows: the network server is attached to the LNS of the Basics Station service
(``"cups"``: station discovery ``/router-info`` and data websockets ``/router-data/<EUI>``), so
a station upgraded through CUPS carries LoRaWAN traffic on the same connection. Stations are
registered with the CUPS admin API (``PUT /admin/stations/{eui}`` on the ``cups`` URL) or
:meth:`LoRaWANService.register_station`.

Endpoints: ``{"cups": …, "lns": "wss://127.0.0.1:Q", "ca": …, "lorawan-app": "http://127.0.0.1:R"}``
(the LNS over TLS as the ``cups`` service runs it; stations get their files from
:meth:`LoRaWANService.station_credentials`); the
application interface (:mod:`.app_api`, docs/lorawan.md) is on ``lorawan-app``. The network
server's SQLite file is under the scenario's artifacts (``lorawan/``), emptied at start.
"""

from __future__ import annotations

import shutil
from typing import Any

from aiohttp import web

from otaharness.servers.http_errors import undecodable_body

from otaharness.servers.basics_station.registry import StationRecord
from otaharness.servers.basics_station.server import BasicsStationServer

from .app_api import ApplicationApi
from .server import NetworkServer


class LoRaWANService:
    def __init__(self, stations: BasicsStationServer, network_server: NetworkServer, api: ApplicationApi) -> None:
        self.stations = stations
        self.network_server = network_server
        self.api = api
        self._runner: web.AppRunner | None = None
        self._url = ""

    async def start(self, host: str = "127.0.0.1") -> None:
        app = web.Application(middlewares=[undecodable_body])
        self.api.add_routes(app)
        self._runner = web.AppRunner(app, handle_signals=False, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, 0)
        await site.start()
        self._url = f"http://{host}:{self._runner.addresses[0][1]}"
        await self.network_server.start()

    def endpoints(self) -> dict[str, str]:
        return {**self.stations.endpoints(), "lorawan-app": self._url}

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
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        await self.network_server.close()


async def start(runtime: Any) -> LoRaWANService:
    """``runtime``: the scenario's Runtime (``service("cups")``, ``artifacts``, ``clock``, ``rng``)."""
    stations: BasicsStationServer = await runtime.service("cups")
    data_dir = runtime.artifacts / "lorawan"
    shutil.rmtree(data_dir, ignore_errors=True)
    data_dir.mkdir(parents=True)
    network_server = NetworkServer(data_dir / "ns.sqlite", runtime.clock, runtime.rng("lorawan-ns"), stations.lns)
    stations.lns.attach_network_server(network_server)
    api = ApplicationApi(network_server, lambda: list(stations.lns.sessions))
    service = LoRaWANService(stations, network_server, api)
    await service.start()
    return service

"""The LoRaWAN back end as ``otaharness serve lorawan`` runs it (CUPS + admin API, the LNS with the
network server attached, the application API), on real time in a thread of its own, for tests that
talk to it synchronously (schemathesis, hypothesis). One well-behaved station is connected to the
LNS the whole time (it answers every ``dnmsg`` with ``dntxed``), so multicast frames have a
gateway; ERROR log lines of the servers are collected in ``errors``."""

from __future__ import annotations

import asyncio
import json
import logging
import random
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

import aiohttp

from live_loop import LiveLoop
from otaharness.protocols.basics_station import format_eui
from otaharness.runtime.clock import RealClock
from otaharness.servers.basics_station.registry import StationRecord
from otaharness.servers.basics_station.server import BasicsStationServer
from otaharness.servers.lorawan import NetworkServer
from otaharness.servers.lorawan.app_api import ApplicationApi
from otaharness.servers.lorawan.service import LoRaWANService

T = TypeVar("T")
GATEWAY = 0x0016C001FF10A235  # the well-behaved station
VERSION = {"msgtype": "version", "station": "2.0.6(linux/std)", "firmware": None, "package": None, "model": "linux",
           "protocol": 2, "features": ""}


class ErrorLog(logging.Handler):
    """ERROR records of the servers, aiohttp's request handling and asyncio (any thread)."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.name.split(".")[0] in ("otaharness", "aiohttp", "asyncio"):
            self.records.append(record)

    def lines(self) -> list[str]:
        return [f"{record.name}: {record.getMessage()} {record.exc_text or ''}" for record in self.records]


class LiveLoRaWAN(LiveLoop):
    """``start_and_wait()``; ``cups``, ``lns``, ``app`` are the URLs; ``call(fn)`` runs
    ``fn(service)`` on the servers' loop (their SQLite connections belong to that thread)."""

    start_timeout = 15.0

    def __init__(self, directory: Path, stations: tuple[int, ...] = ()) -> None:
        super().__init__("lorawan-live")
        self.directory = directory
        self.stations = stations  # registered besides GATEWAY, not connected
        self.service: LoRaWANService | None = None
        self.cups = self.lns = self.app = ""
        self.token = ""  # the application API's bearer token

    async def serve(self) -> None:
        clock = RealClock()
        stations = BasicsStationServer(self.directory / "server", clock)
        await stations.start()
        network_server = NetworkServer(self.directory / "ns.sqlite", clock, random.Random(7), stations.lns)
        stations.lns.attach_network_server(network_server)
        api = ApplicationApi(network_server, lambda: list(stations.lns.sessions))
        self.service = LoRaWANService(stations, network_server, api)
        await self.service.start()
        endpoints = self.service.endpoints()
        self.cups, self.lns, self.app = endpoints["cups"], endpoints["lns"], endpoints["lorawan-app"]
        self.token = self.service.tokens()["lorawan-app"]
        for eui in (GATEWAY, *self.stations):
            stations.registry.put(StationRecord(eui, cups_uri=self.cups, tc_uri=self.lns))
        station = asyncio.ensure_future(self._station(f"{self.lns}/router-data/{format_eui(GATEWAY, '')}"))
        while GATEWAY not in stations.lns.sessions:
            await asyncio.sleep(0.01)
        await self.serving()
        station.cancel()
        await asyncio.gather(station, return_exceptions=True)
        await self.service.stop()
        await stations.stop()

    async def _station(self, url: str) -> None:
        """A station that confirms every dnmsg at once."""
        async with aiohttp.ClientSession() as http, http.ws_connect(url) as websocket:
            await websocket.send_str(json.dumps(VERSION))
            async for message in websocket:
                document = json.loads(message.data)
                if document.get("msgtype") == "dnmsg":
                    await websocket.send_str(json.dumps({
                        "msgtype": "dntxed", "diid": document["diid"], "DR": document.get("RX2DR", 0),
                        "Freq": document.get("RX2Freq", 869525000), "DevEui": document["DevEui"], "rctx": 0,
                        "xtime": 0, "txtime": 0.0, "gpstime": 0}))

    def call(self, function: Callable[[LoRaWANService], T]) -> T:  # type: ignore[override]
        """``function(service)`` on the servers' loop."""
        return super().call(lambda: function(self.service))  # type: ignore[arg-type]

    def gateway_connected(self) -> bool:
        return self.call(lambda service: GATEWAY in service.stations.lns.sessions)


@contextmanager
def live_lorawan(directory: Path, stations: tuple[int, ...] = ()) -> Iterator[tuple[LiveLoRaWAN, ErrorLog]]:
    errors = ErrorLog()
    logging.getLogger().addHandler(errors)
    live = LiveLoRaWAN(directory, stations)
    try:
        yield live.start_and_wait(), errors
    finally:
        live.stop()
        logging.getLogger().removeHandler(errors)

"""A FUOTA server and its HTTP API on real time, on a private event loop in a thread, for tests
that call it synchronously (schemathesis, hypothesis): a network server that knows a few ABP
devices and has no gateway, so a started campaign waits in stage 1 (its requests stay queued)
and ends when its unicast attempts are used up."""

from __future__ import annotations

import base64
import random
import sqlite3
from pathlib import Path
from typing import Any

import requests

from otaharness.runtime.radio import RadioMedium
from live_loop import LiveLoop
from otaharness.runtime.clock import RealClock
from otaharness.servers.fuota import FuotaServer
from otaharness.servers.fuota.api import serve
from otaharness.servers.http_service import new_token
from otaharness.servers.fuota.radio_link import RadioGatewayPort
from otaharness.servers.lorawan import NetworkServer

DEV_EUIS = [0x70B3D57ED0060001 + index for index in range(6)]
GEN_APP_KEY = "2B7E151628AED2A6ABF7158809CF4F3C"
IMAGE = base64.b64encode(bytes(range(256)) * 4).decode()


def device(index: int) -> dict[str, Any]:
    return {"dev_eui": f"{DEV_EUIS[index]:016X}", "gen_app_key": GEN_APP_KEY}


def good_config(name: str = "good", devices: tuple[int, ...] = (0,), **overrides: Any) -> dict[str, Any]:
    """A configuration the server accepts (devices by index into DEV_EUIS)."""
    return {"name": name, "devices": [device(index) for index in devices], "firmware_version": 0x01010000,
            "unicast_timeout_s": 30.0, "unicast_attempts": 1, **overrides}


class LiveFuota(LiveLoop):
    def __init__(self, directory: Path) -> None:
        super().__init__("fuota-live")
        self.directory = directory
        self.database = directory / "fuota.sqlite"
        self.url = ""
        self.server: FuotaServer | None = None
        self.token = new_token()
        self.http = requests.Session()  # every call with the API's token (but those that say otherwise)
        self.http.headers["Authorization"] = f"Bearer {self.token}"

    async def serve(self) -> None:
        network = NetworkServer(self.directory / "ns.sqlite", RealClock(), random.Random(1),
                                RadioGatewayPort(RadioMedium(rng=random.Random(1))))
        for index, dev_eui in enumerate(DEV_EUIS, start=1):
            network.add_abp_device(dev_eui, 0x26030000 + index, bytes([index]) * 16, bytes([index + 50]) * 16)
        self.server = FuotaServer(network, self.database, RealClock(), random.Random(2))
        await self.server.start()
        site = await serve(self.server, token=self.token)
        self.url = site.url
        try:
            await self.serving()
        finally:
            await site.stop()
            await self.server.close()
            await network.close()

    def stop(self) -> None:
        super().stop()
        self.http.close()

    def request(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        return self.http.request(method, self.url + path, timeout=30, **kwargs)

    def create(self, config: dict[str, Any], image: str = IMAGE) -> int:
        response = self.request("POST", "/campaigns", json={"config": config, "image": image})
        assert response.status_code == 201, response.text
        return int(response.json()["id"])

    def sql(self, statement: str, *parameters: Any) -> None:
        """Change the server's SQLite file behind its back (a corrupt row)."""
        with sqlite3.connect(self.database) as db:
            db.execute(statement, parameters)

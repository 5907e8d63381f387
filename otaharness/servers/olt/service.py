"""The OLT flow's back end as a runtime service: ``await runtime.service("olt")``.

Starts the broker service (or uses the running one), an MQTT client for the back end, and the
HTTP API on a free loopback port; the SQLite file lives in the scenario's artifacts. One tenant,
``default``, exists from the start: ``service.tenant`` holds its client credentials.
"""

from __future__ import annotations

import uuid
from typing import Any
from urllib.parse import urlsplit

from otaharness.runtime.mqtt import MqttClient
from otaharness.servers.olt.backend import TenantCredentials
from otaharness.servers.olt.server import OltServer


class OltService:
    def __init__(self, server: OltServer, mqtt: MqttClient, broker_url: str,
                 tenant: TenantCredentials) -> None:
        self.server = server
        self.backend = server.backend
        self.mqtt = mqtt
        self.broker_url = broker_url
        self.tenant = tenant

    def endpoints(self) -> dict[str, str]:
        return {"olt": self.server.url, "mqtt": self.broker_url}

    async def stop(self) -> None:
        await self.server.stop()
        await self.mqtt.disconnect()


async def start(runtime: Any) -> OltService:
    broker_url = (await runtime.service("broker")).endpoints()["mqtt"]
    broker = urlsplit(broker_url)
    mqtt = MqttClient("olt-backend", broker.hostname or "127.0.0.1", broker.port or 1883)
    await mqtt.connect()
    ids = runtime.rng("olt ids")
    runtime.artifacts.mkdir(parents=True, exist_ok=True)
    database = runtime.artifacts / "olt.sqlite3"
    for stale in (database, database.with_name("olt.sqlite3-wal"), database.with_name("olt.sqlite3-shm")):
        stale.unlink(missing_ok=True)  # a scenario starts empty; restarts within it keep the file
    server = OltServer(database, runtime.clock, mqtt=mqtt,
                       new_id=lambda: str(uuid.UUID(int=ids.getrandbits(128), version=4)))
    await server.start()
    tenant = server.backend.create_tenant("default")
    return OltService(server, mqtt, broker_url, tenant)

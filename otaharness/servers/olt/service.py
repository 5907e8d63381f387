"""The OLT flow's back end as a runtime service: ``await runtime.service("olt")``.

Starts the broker service (or uses the running one), an MQTT client for the back end, and the
HTTP API on a free loopback port, over HTTPS with the scenario PKI's server certificate
(``-D target.olt.plain_http=true``: plain HTTP); the SQLite file lives in the scenario's artifacts.
One tenant, ``default``, exists from the start: ``service.tenant`` holds its client credentials.

``tokens()`` (what ``serve olt --json`` prints under ``"tokens"``): ``olt``, an access token of the
``default`` tenant; ``olt-client-id`` / ``olt-client-secret``, that tenant's client credentials
(for new access tokens once it expires); ``olt-operator``, the token that creates more tenants
(``POST /v1/tenants``).
"""

from __future__ import annotations

import uuid
from typing import Any
from urllib.parse import urlsplit

from otaharness.runtime.mqtt import MqttClient
from otaharness.runtime.targets import boolean, seconds
from otaharness.servers.olt.backend import INSTALL_TIMEOUT, TenantCredentials
from otaharness.servers.olt.server import OltServer

SERVER_NAMES = ("localhost",)
# [targets.olt] / -D target.olt.<name>, checked when the config is loaded.
SETTINGS = {
    "plain_http": boolean,  # serve the API over plain HTTP
    "install_timeout": seconds,  # an installing installation without reports this long fails
}


class OltService:
    def __init__(self, server: OltServer, mqtt: MqttClient, broker_url: str,
                 tenant: TenantCredentials, access_token: str, ca_file: str | None) -> None:
        self.server = server
        self.backend = server.backend
        self.mqtt = mqtt
        self.broker_url = broker_url
        self.tenant = tenant
        self.access_token = access_token
        self.ca_file = ca_file

    def endpoints(self) -> dict[str, str]:
        endpoints = {"olt": self.server.url, "mqtt": self.broker_url}
        if self.ca_file is not None:
            endpoints["ca"] = self.ca_file
        return endpoints

    def tokens(self) -> dict[str, str]:
        return {"olt": self.access_token, "olt-client-id": self.tenant.client_id,
                "olt-client-secret": self.tenant.client_secret,
                "olt-operator": self.server.operator_token}

    async def stop(self) -> None:
        await self.server.stop()
        await self.mqtt.disconnect()


async def start(runtime: Any) -> OltService:
    broker_url = (await runtime.service("broker")).endpoints()["mqtt"]
    broker = urlsplit(broker_url)
    mqtt = MqttClient("olt-backend", broker.hostname or "127.0.0.1", broker.port or 1883)
    await mqtt.connect()
    ids = runtime.rng("olt ids")
    database = runtime.data_dir("olt") / "olt.sqlite3"  # restarts within a scenario keep it
    settings = runtime.target("olt").endpoints
    plain = boolean(settings.get("plain_http", ""))
    install_timeout = seconds(settings.get("install_timeout", str(INSTALL_TIMEOUT)))
    pki = None if plain else runtime.pki()
    # Ids from the scenario's seed replay a scenario; on a kept --state-dir they would repeat
    # the last run's (UNIQUE constraint failed on restart), so there they are random.
    new_id = ((lambda: str(uuid.uuid4())) if runtime.state_dir is not None
              else (lambda: str(uuid.UUID(int=ids.getrandbits(128), version=4))))
    server = OltServer(database, runtime.clock, mqtt=mqtt, new_id=new_id,
                       install_timeout=install_timeout,
                       ssl_context=None if pki is None else pki.server_context(SERVER_NAMES))
    await server.start()
    tenant = server.backend.credentials_for("default")
    access_token = server.backend.issue_token(tenant.client_id, tenant.client_secret)["access_token"]
    return OltService(server, mqtt, broker_url, tenant, access_token,
                      None if pki is None else str(pki.ca_file))

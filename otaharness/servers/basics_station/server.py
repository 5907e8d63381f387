"""The Basics Station back end: CUPS (+ admin API) on one port, the LNS on another, one registry.

``BasicsStationServer(data_dir, clock, pki=None)``; ``await start()`` binds 127.0.0.1 on free
ports; ``endpoints()`` → ``{"cups": "https://127.0.0.1:P", "lns": "wss://127.0.0.1:Q", "ca":
"<trust PEM file>"}`` with a PKI (:mod:`otaharness.runtime.pki`), else plain
``http``/``ws`` and no ``ca``; ``await stop()``. State lives in ``data_dir``
(``stations.sqlite`` and ``firmware/``), so a restarted server keeps its stations.

With TLS both ports present a certificate of the PKI's server CA for ``localhost`` and
``127.0.0.1`` — each as a DNS name too, because the real station's mbedTLS 2.28 ignores
iPAddress subject alternative names — and ask for an optional client certificate of the station
CA (``pki.device_ca``); stations authenticate with that certificate or a token (:mod:`.auth`).

The admin API of :mod:`.admin` shares the CUPS port and takes a bearer token (``admin_token``,
from the CSPRNG); ``POST /update-info`` is the station's and exempt from it.
"""

from __future__ import annotations

import json
import ssl
from pathlib import Path
from typing import Any

from aiohttp import web

from otaharness.fixtures import fixture_path
from otaharness.protocols.basics_station import UPDATE_INFO_PATH
from otaharness.runtime.clock import Clock
from otaharness.runtime.pki import LOCAL_NAMES, CertificateAuthority, Pki
from otaharness.servers.basics_station.admin import MAX_FIRMWARE_SIZE, AdminApi
from otaharness.servers.basics_station.auth import StationAuthenticator
from otaharness.servers.basics_station.cups import CupsEndpoint
from otaharness.servers.basics_station.lns import LnsServer
from otaharness.servers.basics_station.registry import FirmwareStore, StationRegistry
from otaharness.servers.http_errors import undecodable_body
from otaharness.servers.http_service import (
    API_DOCUMENT_PATH,
    HttpSite,
    bearer_token_required,
    new_token,
    requests_routed_to,
    serve_app,
)

FIXTURES = fixture_path("basics_station")
DEFAULT_ROUTER_CONFIG = FIXTURES / "eu868_router_config.json"


def load_router_config(path: Path = DEFAULT_ROUTER_CONFIG) -> dict[str, Any]:
    config: dict[str, Any] = json.loads(path.read_text())
    return config


SERVER_NAMES = ("localhost", *LOCAL_NAMES)


class BasicsStationServer:
    def __init__(self, data_dir: Path, clock: Clock, *, host: str = "127.0.0.1",
                 router_config: dict[str, Any] | None = None, pki: Pki | None = None,
                 admin_token: str | None = None) -> None:
        data_dir.mkdir(parents=True, exist_ok=True)
        self.host = host
        self.pki = pki
        self.admin_token = admin_token or new_token()
        self.registry = StationRegistry(data_dir / "stations.sqlite")
        self.store = FirmwareStore(data_dir / "firmware")
        self.auth = StationAuthenticator(self.registry, required=pki is not None)
        self.cups = CupsEndpoint(self.registry, self.store.read, self.auth)
        self.lns = LnsServer(self.registry, router_config or load_router_config(), clock, auth=self.auth)
        self.admin = AdminApi(self.registry, self.store, self.lns.reject, pki=pki)
        self._sites: list[HttpSite] = []
        self._urls: dict[str, str] = {}

    async def start(self) -> None:
        station_paths = {UPDATE_INFO_PATH}  # authenticated by certificate or station token instead
        cups_app = web.Application(middlewares=[
            bearer_token_required(self.admin_token, exempt=requests_routed_to(*station_paths, API_DOCUMENT_PATH)),
            self.admin.errors, undecodable_body], client_max_size=MAX_FIRMWARE_SIZE)
        self.cups.add_routes(cups_app)
        self.admin.add_routes(cups_app)
        lns_app = web.Application(middlewares=[undecodable_body])
        self.lns.add_routes(lns_app)
        tls = self.server_context
        cups = await serve_app(cups_app, self.host, ssl_context=tls(), actor="cups")
        lns = await serve_app(lns_app, self.host, ssl_context=tls(), scheme="wss" if self.pki else "ws",
                              actor="lns")
        self._sites += [cups, lns]
        self._urls = {"cups": cups.url, "lns": lns.url}
        if self.pki is not None:
            self._urls["ca"] = str(self.pki.ca_file)
        self.lns.base_url = lns.url

    def server_context(self):
        """A TLS server context (None without PKI): our certificate for localhost/127.0.0.1, an
        optional client certificate of the station CA verified (chain and validity)."""
        if self.pki is None:
            return None
        return self.pki.server_context(SERVER_NAMES, client_cas=[self.pki.device_ca.certificate_pem])

    async def add_cups_endpoint(self, name: str, ca: CertificateAuthority) -> str:
        """Serve CUPS (and the admin API) also on a new port whose certificate ``ca`` issued: a
        CUPS server after a CA change, which a station reaches once CUPS moved it there with the
        new CA as trust (one trust certificate fits a CUPS credential blob, so a CA rotation comes
        with a new CUPS URI). Listed in :meth:`endpoints` as ``name``."""
        if self.pki is None:
            raise RuntimeError("a CUPS endpoint with another CA needs TLS")
        issued = ca.issue(SERVER_NAMES[0], names=SERVER_NAMES, server=True, client=False)
        certificate, key = self.pki.write_identity(f"server-{name}", issued)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.load_cert_chain(certificate, key)
        context.load_verify_locations(cadata=self.pki.device_ca.certificate_pem)
        context.verify_mode = ssl.CERT_OPTIONAL
        if self.pki.keylog is not None:
            context.keylog_filename = str(self.pki.keylog)
        # the CUPS app: one more socket, same handlers and state
        port = await self._sites[0].listen_also(self.host, ssl_context=context)
        self._urls[name] = f"https://{self.host}:{port}"
        return self._urls[name]

    def endpoints(self) -> dict[str, str]:
        return dict(self._urls)

    def tokens(self) -> dict[str, str]:
        return {"cups": self.admin_token}

    async def stop(self) -> None:
        await self.lns.close_all()
        for site in reversed(self._sites):
            await site.stop()
        self._sites.clear()
        self.registry.close()

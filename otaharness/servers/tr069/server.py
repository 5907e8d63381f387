"""The ACS process: CWMP endpoint, file server and admin API on three loopback ports, over
one SQLite state directory (so a restarted server, same directory, continues).

With a TLS server context (``tls``) all three speak HTTPS; ``ca_file`` is then the CA clients
trust, listed as the ``ca`` endpoint. The admin API takes a bearer token (``admin_token``, else
a new one from the CSPRNG; :meth:`tokens`)."""

from __future__ import annotations

import random
import ssl
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from otaharness.servers.http_service import HttpSite, new_token, serve_app

from .acs import Acs, AcsConfig, Clock
from .admin import AdminApi
from .cwmp_endpoint import CwmpEndpoint, cwmp_auth
from .fileserver import FileServer, file_auth
from .store import Store

LISTEN_BACKLOG = 4096  # Linux caps it at net.core.somaxconn (4096 by default since 5.4)
# The admin API's request line carries percent-encoded device ids of up to 4096 characters
# (names.MAX_DEVICE_ID: 12 bytes each at worst); aiohttp's default is 8190 bytes.
ADMIN_MAX_LINE = 65536


class AcsServer:
    def __init__(self, state_dir: Path, clock: Clock, rng: random.Random,
                 config: AcsConfig | None = None, *, host: str = "127.0.0.1",
                 trace: Callable[[str, bytes], None] | None = None,
                 tls: ssl.SSLContext | None = None, ca_file: str | None = None,
                 admin_token: str | None = None) -> None:
        self.host = host
        self.tls = tls
        self.ca_file = ca_file
        self.admin_token = admin_token or new_token()
        self.state_dir = state_dir
        self.clock = clock
        self.rng = rng
        self.trace = trace
        self._build(config)
        self.ports: dict[str, int] = {}

    def _build(self, config: AcsConfig | None) -> None:
        state_dir, clock, rng, trace = self.state_dir, self.clock, self.rng, self.trace
        self.store = Store(state_dir)
        self.acs = Acs(self.store, clock, replace(config or AcsConfig()), rng)
        self.cwmp = CwmpEndpoint(self.acs, trace)
        config = self.acs.config
        self.files = FileServer(self.store, file_auth(config))
        self.admin = AdminApi(self.acs, self.admin_token)
        self._sites: list[HttpSite] = []

    async def start(self, ports: dict[str, int] | None = None) -> None:
        """Listen on ``ports`` (name -> port; 0 or absent = a free port)."""
        ports = ports or {}
        for name, app in (("acs", self.cwmp.application()), ("files", self.files.application()),
                          ("admin", self.admin.application())):
            # A fleet's simultaneous Informs or downloads overflow the default backlog of 128;
            # the kernel then retransmits SYNs on real time while a virtual clock jumps ahead.
            site = await serve_app(app, self.host, ports.get(name, 0), ssl_context=self.tls,
                                   reuse_address=True, backlog=LISTEN_BACKLOG,
                                   max_line_size=ADMIN_MAX_LINE if name == "admin" else 8190,
                                   actor="acs" if name == "acs" else f"acs-{name}")
            self._sites.append(site)
            self.ports[name] = site.port
        if not self.acs.config.files_url:
            self.acs.config.files_url = self.endpoints()["files"]
        self.acs.start()

    def endpoints(self) -> dict[str, str]:
        scheme = "https" if self.tls is not None else "http"
        found = {name: f"{scheme}://{self.host}:{port}" for name, port in self.ports.items()}
        if self.ca_file is not None:
            found["ca"] = self.ca_file
        return found

    def set_cpe_auth(self, mode: str, users: dict[str, str]) -> None:
        """What CPEs must present from now on (the ``auth`` and ``users`` settings)."""
        self.acs.config.auth_mode, self.acs.config.users = mode, dict(users)
        self.cwmp.auth = cwmp_auth(self.acs.config)

    def set_file_auth(self, mode: str, users: dict[str, str]) -> None:
        """What the file server asks from now on (the ``file_auth`` and ``file_users`` settings)."""
        self.acs.config.file_auth_mode, self.acs.config.file_users = mode, dict(users)
        self.files.auth = file_auth(self.acs.config)

    def tokens(self) -> dict[str, str]:
        """The admin API's bearer token, under its endpoint name."""
        return {"admin": self.admin_token}

    async def restart(self) -> None:
        """Stop and start again on the same ports over the same state (a process restart)."""
        ports, config = dict(self.ports), self.acs.config
        await self.stop()
        self._build(config)
        await self.start(ports)

    async def stop(self) -> None:
        self.cwmp.close()
        await self.acs.stop()
        for site in reversed(self._sites):
            await site.stop()
        self._sites.clear()
        self.store.close()

"""A TR-069 world on the virtual clock: the ACS (three real loopback servers), emulated CPEs
with a shared Connection Request listener, an admin client, and every CWMP message either
side emitted, for schema validation."""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import random
import ssl
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from lxml import etree

from otaharness.emulators.cpe.connection_request import ConnectionRequestServer
from otaharness.emulators.cpe.device import Cpe
from otaharness.protocols.cwmp import (
    CWMP_1_0, DeviceIdStruct, Envelope, EventStruct, Header, Inform, build_envelope)
from otaharness.protocols.cwmp.schemas import SchemasUnavailable, load_schemas, validation_errors
from otaharness.runtime.clock import VirtualClock, VirtualEventLoop
from otaharness.runtime.pki import Pki, client_context
from otaharness.servers.tr069 import AcsConfig, AcsServer, device_id_of

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "tr069"
SCHEMA_DIR = Path(__file__).resolve().parents[3] / "shared" / "schemas" / "cwmp"
MONDAY = dt.datetime(2026, 1, 5, 0, 0, tzinfo=dt.timezone.utc)  # a Monday, 00:00 UTC
FIRMWARE = "1 Firmware Upgrade Image"


class World:
    def __init__(self, clock: VirtualClock, state_dir: Path) -> None:
        self.clock = clock
        self.state_dir = state_dir
        self.acs: AcsServer | None = None
        self.cpes: list[Cpe] = []
        self.listener = ConnectionRequestServer()
        self.messages: list[tuple[str, bytes]] = []  # (side, envelope) as emitted
        self.schema_checked_sides = ("acs", "cpe")  # checked after every scenario
        self.http: aiohttp.ClientSession | None = None
        self.ca_file: str | None = None  # what CPEs trust (None: the system's trust store)
        self.client_tls: ssl.SSLContext | None = None  # the admin client's, for HTTPS

    def trace(self, side: str, data: bytes) -> None:
        self.messages.append((side, data))

    async def start(self, config: AcsConfig | None = None,
                    ports: dict[str, int] | None = None, *, pki: Pki | None = None,
                    tls: ssl.SSLContext | None = None) -> AcsServer:
        """Start the ACS; with ``pki``, HTTPS on its three ports (certificate: ``tls``, else the
        PKI's server certificate) and CPEs and the admin client trust the PKI's server CA."""
        if pki is not None:
            tls = tls or pki.server_context(["localhost"])
            self.ca_file = str(pki.ca_file)
            self.client_tls = client_context(self.ca_file)
        self.acs = AcsServer(self.state_dir, self.clock, random.Random(1), config,
                             trace=self.trace, tls=tls)
        await self.acs.start(ports)
        if self.http is None:
            self.http = aiohttp.ClientSession()
            await self.listener.start()
        return self.acs


    def url(self, name: str) -> str:
        assert self.acs is not None
        return self.acs.endpoints()[name]

    async def add_cpe(self, serial: str, **options: Any) -> Cpe:
        index = len(self.cpes) + 1
        options.setdefault("connection_requests", self.listener)
        options.setdefault("bind_address", f"127.1.{index // 250}.{index % 250 + 1}")
        options.setdefault("ca_file", self.ca_file)
        cpe = Cpe(serial, acs_url=self.url("acs"), clock=self.clock,
                  rng=random.Random(f"cpe-{serial}"), trace=self.trace, **options)
        self.cpes.append(cpe)
        await cpe.start()
        return cpe

    async def admin(self, method: str, path: str, *, json: Any = None, data: bytes | None = None,
                    headers: dict[str, str] | None = None) -> tuple[int, Any]:
        assert self.http is not None and self.acs is not None
        headers = {"Authorization": f"Bearer {self.acs.admin_token}", **(headers or {})}
        async with self.http.request(method, self.url("admin") + path, json=json, data=data,
                                     headers=headers, ssl=self.client_tls or True) as response:
            return response.status, await response.json()

    async def upload(self, name: str, content: bytes, file_type: str = FIRMWARE, *,
                     oui: str = "", product_class: str = "", version: str = "") -> None:
        status, body = await self.admin("PUT", f"/files/{name}", data=content, headers={
            "fileType": file_type, "oui": oui, "productClass": product_class, "version": version})
        assert status == 201, body

    async def upload_mikrotik_upgrade(self, version: str = "6.48.4") -> str:
        """The seed's three files: two .npk packages and the XML naming them."""
        for package in (f"routeros-x86-{version}.npk", f"tr069-client-{version}.npk"):
            await self.upload(package, (FIXTURES / package).read_bytes(), oui="E48D8C",
                              product_class="CHR", version=version)
        xml = (FIXTURES / "upgrade_6.48.4.xml").read_bytes().replace(
            b"https://splynx_domain:7567", self.url("files").encode())
        name = f"upgrade_{version}.xml"
        await self.upload(name, xml, oui="E48D8C", product_class="CHR", version=version)
        return name

    async def run_until(self, predicate: Callable[[], bool], timeout: float) -> bool:
        return await self.clock.run_until(predicate, timeout=timeout)

    async def batch_states(self, batch_id: int) -> dict[str, str]:
        status, batch = await self.admin("GET", f"/batches/{batch_id}")
        assert status == 200, batch
        return {entry["device_id"]: entry["state"] for entry in batch["devices"]}

    def batch_state(self, batch_id: int, cpe: Cpe) -> str | None:
        assert self.acs is not None
        entry = self.acs.store.batch_device(batch_id, device_id(cpe))
        return entry["state"] if entry else None

    async def close(self) -> None:
        for cpe in self.cpes:
            await cpe.stop()
        if self.acs is not None:
            await self.acs.stop()
        await self.listener.stop()
        if self.http is not None:
            await self.http.close()


def device_id(cpe: Cpe) -> str:
    ident = cpe.device_id
    return device_id_of(ident.oui, ident.product_class, ident.serial_number)


@pytest.fixture
def run_world(tmp_path: Path) -> Callable[..., Any]:
    """``run_world(main, start=MONDAY)`` runs ``await main(world)`` on a virtual clock, then
    validates every CWMP message the ACS and the CPEs emitted against the BBF schemas."""
    schemas = load_cwmp_schemas()

    def run(main: Callable[[World], Awaitable[Any]], start: dt.datetime = MONDAY) -> Any:
        clock = VirtualClock(start, real_time_limit=20)
        loop = VirtualEventLoop(clock)
        world = World(clock, tmp_path / "acs")

        async def scenario() -> Any:
            try:
                return await main(world)
            finally:
                await world.close()

        try:
            result = loop.run_until_complete(scenario())
            leftovers = [t for t in asyncio.all_tasks(loop) if not t.done()]
            assert not leftovers, f"tasks left running: {leftovers}"
            if schemas is not None:
                assert_schema_valid(schemas, world.messages, world.schema_checked_sides)
            return result
        finally:
            loop.run_until_complete(loop.shutdown_default_executor())
            loop.close()

    return run


# --- BBF schema validation (otaharness.protocols.cwmp.schemas) -------------------------------
def load_cwmp_schemas() -> dict[str, etree.XMLSchema] | None:
    """Validators by schema version, or None without the schemas (CI must have them)."""
    try:
        return load_schemas(SCHEMA_DIR)
    except SchemasUnavailable as missing:
        if os.environ.get("CI") == "true":
            pytest.fail(f"{missing}; CI must provide it")
        return None


@pytest.fixture(scope="session")
def cwmp_schemas() -> dict[str, etree.XMLSchema]:
    """Validators by schema version (cwmp-1-2 traffic is checked against 1-2 and 1-4)."""
    schemas = load_cwmp_schemas()
    if schemas is None:
        pytest.skip(f"BBF CWMP schemas ({SCHEMA_DIR}) or xmlschema not available")
    return schemas


def assert_schema_valid(schemas: dict[str, etree.XMLSchema],
                        messages: list[tuple[str, bytes]], sides: tuple[str, ...] = ("acs", "cpe")) -> int:
    """Validate every emitted envelope of ``sides``; returns how many were checked."""
    checked = 0
    for side, data in messages:
        if side not in sides:
            continue
        problems = validation_errors(schemas, etree.fromstring(data))
        assert not problems, f"{side} message invalid: {problems}\n{data.decode()[:600]}"
        checked += 1
    return checked


# --- shared scenario steps ------------------------------------------------------------------------
HOUR = 3600.0
DAY = 86400.0
CHECK_DELAY = 1800.0


async def run_to(world: World, when: dt.datetime) -> None:
    """Let virtual time pass until the wall clock reads ``when``."""
    await world.clock.run_for(when.timestamp() - world.clock.epoch())


async def mikrotik_batch(world: World, **fields: Any) -> int:
    """Upload the seed's files, a group of MikroTik CHRs, and a 6.48 -> 6.48.4 batch."""
    xml = await world.upload_mikrotik_upgrade()
    status, group = await world.admin("PUT", "/groups/mikrotik-chr",
                                      json={"oui": "E48D8C", "product_class": "CHR"})
    assert status == 200, group
    spec = {"group": "mikrotik-chr", "original_version": "6.48", "file": xml,
            "new_version": "6.48.4", **fields}
    status, batch = await world.admin("POST", "/batches", json=spec)
    assert status == 201, batch
    return int(batch["id"])


async def booted(world: World, *cpes: Cpe) -> None:
    assert await world.run_until(lambda: all(c.sessions_completed for c in cpes), 600)


def events_of(world: World, cpe: Cpe, kind: str) -> list[dict[str, Any]]:
    assert world.acs is not None
    return [e for e in world.acs.store.events(device_id(cpe)) if e["kind"] == kind]


def starts_by_day(world: World, batch_id: int) -> list[int]:
    """How many devices started an upgrade on each UTC day since MONDAY."""
    assert world.acs is not None
    rows = world.acs.store.db.execute(
        "SELECT started FROM batch_starts WHERE batch_id=?", (batch_id,)).fetchall()
    counts: dict[int, int] = {}
    for (started,) in rows:
        day = int((started - MONDAY.timestamp()) // DAY)
        counts[day] = counts.get(day, 0) + 1
    return [counts.get(day, 0) for day in range(max(counts, default=-1) + 1)]


# --- a hand-driven CPE for hostile or malformed input ----------------------------------------------
T0 = dt.datetime(2026, 1, 5, tzinfo=dt.timezone.utc)


def inform_bytes(serial: str, namespace: str = CWMP_1_0) -> bytes:
    inform = Inform(device_id=DeviceIdStruct(manufacturer="MikroTik", oui="E48D8C",
                                             product_class="CHR", serial_number=serial),
                    event=(EventStruct(event_code="2 PERIODIC"),), current_time=T0)
    return build_envelope(Envelope(body=inform, header=Header(id="1"), namespace=namespace))


def rpc_bytes(body: str, namespace: str = CWMP_1_0) -> bytes:
    return (f'<soap-env:Envelope xmlns:soap-env="http://schemas.xmlsoap.org/soap/envelope/" '
            f'xmlns:cwmp="{namespace}"><soap-env:Body>{body}</soap-env:Body>'
            f'</soap-env:Envelope>').encode()


class RawCpe:
    """A hand-driven HTTP client from its own loopback address (one keep-alive connection)."""

    def __init__(self, world: World, address: str) -> None:
        self.url = world.url("acs")
        self.http = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=1, local_addr=(address, 0)),
            cookie_jar=aiohttp.DummyCookieJar())
        self.cookie = ""

    async def post(self, body: bytes, **headers: str) -> tuple[int, bytes, aiohttp.typedefs.LooseHeaders]:
        if self.cookie:
            headers.setdefault("Cookie", self.cookie)
        async with self.http.post(self.url, data=body, headers=headers) as response:
            data = await response.read()
            if "Set-Cookie" in response.headers:
                self.cookie = response.headers["Set-Cookie"].split(";")[0]
            return response.status, data, response.headers

    async def close(self) -> None:
        await self.http.close()

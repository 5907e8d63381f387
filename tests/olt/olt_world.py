"""Fixtures for the OLT flow: mosquitto on a free port, the OLT server on 127.0.0.1:0 with its
SQLite file in tmp_path, a REST helper per tenant, and a gateway emulator with one field device
behind it (of the seed's OSRAM switch type, extended to declare all three slot kinds).

Everything runs on real sockets and real time (short waits); ``ShiftedClock`` moves the epoch the
server and gateway see, so schedules and maintenance windows can be placed a moment ahead.
``LiveServer`` (``live_server()``) runs a seeded server on a loop in a thread, for synchronous
clients: schemathesis and the hypothesis tests of the API.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import tempfile
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
from aiohttp import web

from otaharness.emulators.olt_gateway import FieldDevice, OltApiClient, OltGateway
from otaharness.runtime.broker import MosquittoBroker
from otaharness.runtime.mqtt import MqttClient
from otaharness.servers.olt.backend import Principal, TenantCredentials
from otaharness.servers.olt.http_api import TOKEN_PATH
from otaharness.servers.olt.server import OltServer

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "olt"


def fixture_json(name: str) -> dict[str, Any]:
    return json.loads((FIXTURES / name).read_text())


def image(size: int, label: str) -> bytes:
    """Deterministic, non-repeating test image bytes."""
    out = bytearray()
    counter = 0
    while len(out) < size:
        out += hashlib.sha256(f"{label}:{counter}".encode()).digest()
        counter += 1
    return bytes(out[:size])


class ShiftedClock:
    """Real time moved by ``offset`` seconds (the runtime's clock interface, minus busy())."""

    def __init__(self) -> None:
        self.offset = 0.0

    def epoch(self) -> float:
        return time.time() + self.offset

    def monotonic(self) -> float:
        return time.monotonic()


class Api:
    """REST calls as one principal; returns (status, parsed JSON or raw bytes)."""

    def __init__(self, session: aiohttp.ClientSession, base: str, token: str | None) -> None:
        self.session, self.base, self.token = session, base, token

    async def request(self, method: str, path: str, body: Any = None, *, raw: bytes | None = None,
                      headers: dict[str, str] | None = None) -> tuple[int, Any]:
        sent = dict(headers or {})
        if self.token is not None:
            sent.setdefault("Authorization", f"Bearer {self.token}")
        options: dict[str, Any] = {"data": raw} if raw is not None else (
            {"json": body} if body is not None else {})
        async with self.session.request(method, self.base + path, headers=sent, **options) as response:
            content = await response.read()
            if response.content_type == "application/json":
                return response.status, json.loads(content)
            return response.status, content

    async def ok(self, method: str, path: str, body: Any = None, *, status: int | None = None,
                 **options: Any) -> Any:
        got, answer = await self.request(method, path, body, **options)
        expected = status or {"POST": 201, "DELETE": 204}.get(method, 200)
        assert got == expected, (method, path, got, answer)
        return answer["data"] if isinstance(answer, dict) else answer


async def fetch_token(session: aiohttp.ClientSession, base: str, client_id: str, secret: str) -> str:
    form = {"grant_type": "client_credentials", "client_id": client_id, "client_secret": secret}
    async with session.post(base + TOKEN_PATH, data=form) as response:
        assert response.status == 200, await response.text()
        return (await response.json())["access_token"]


async def tenant_api(server: OltServer, session: aiohttp.ClientSession, name: str) -> Api:
    """A new tenant and an Api holding its token."""
    credentials = server.backend.create_tenant(name)
    return Api(session, server.url, await fetch_token(session, server.url, credentials.client_id,
                                                      credentials.client_secret))


async def eventually(predicate: Callable[[], Any], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.01)


class BlobLink:
    """An HTTP proxy between gateway and server that can harm blob downloads: cut the connection
    after N body bytes (once), flip one byte, or hold the body after N bytes until released."""

    def __init__(self, target: str) -> None:
        self.target = target
        self.cut_after: int | None = None
        self.flip_at: int | None = None
        self.hold_after: int | None = None
        self.release = asyncio.Event()
        self.holding = asyncio.Event()
        self.blob_requests: list[dict[str, str]] = []
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None
        self.url = ""

    async def start(self) -> None:
        app = web.Application(client_max_size=1 << 26)
        app.router.add_route("*", "/{tail:.*}", self._forward)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0).start()
        self.url = f"http://127.0.0.1:{self._runner.addresses[0][1]}"
        self._session = aiohttp.ClientSession(auto_decompress=False)

    async def stop(self) -> None:
        self.release.set()
        if self._session is not None:
            await self._session.close()
        if self._runner is not None:
            await self._runner.cleanup()

    async def _forward(self, request: web.Request) -> web.StreamResponse:
        assert self._session is not None
        headers = {k: v for k, v in request.headers.items() if k.lower() not in ("host", "content-length")}
        is_blob = request.method == "GET" and request.path.endswith("/blob")
        if is_blob:
            self.blob_requests.append({k: v for k, v in headers.items() if k in ("Range", "If-Range")})
        async with self._session.request(request.method, self.target + request.path_qs,
                                         headers=headers, data=await request.read()) as upstream:
            body = await upstream.read()
            passed = {k: v for k, v in upstream.headers.items()
                      if k.lower() not in ("content-length", "transfer-encoding", "date", "server")}
            if not (is_blob and upstream.status in (200, 206)):
                return web.Response(status=upstream.status, body=body, headers=passed)
            return await self._harm(request, upstream.status, passed, body)

    async def _harm(self, request: web.Request, status: int, headers: dict[str, str],
                    body: bytes) -> web.StreamResponse:
        if self.flip_at is not None and self.flip_at < len(body):
            body = body[:self.flip_at] + bytes([body[self.flip_at] ^ 0xFF]) + body[self.flip_at + 1:]
        response = web.StreamResponse(status=status, headers=headers)
        response.content_length = len(body)
        await response.prepare(request)
        if self.cut_after is not None:
            cut, self.cut_after = self.cut_after, None
            await response.write(body[:cut])
            await asyncio.sleep(0.05)
            assert request.transport is not None
            request.transport.close()  # the connection dies mid-body
            return response
        if self.hold_after is not None:
            await response.write(body[:self.hold_after])
            self.holding.set()
            await self.release.wait()
            body = body[self.hold_after:]
        await response.write(body)
        await response.write_eof()
        return response


@dataclass
class World:
    server: OltServer
    broker: MosquittoBroker
    clock: ShiftedClock
    session: aiohttp.ClientSession
    tenant: TenantCredentials
    api: Api
    device_type: dict[str, Any]
    gateway_device: dict[str, Any]
    device: dict[str, Any]
    field_device: FieldDevice
    gateway: OltGateway
    link: BlobLink
    gateway_credentials: dict[str, str]
    extra: list[Callable[[], Any]] = field(default_factory=list)

    async def tenant_api(self, name: str) -> Api:
        return await tenant_api(self.server, self.session, name)

    async def device_api(self) -> Api:
        token = await fetch_token(self.session, self.server.url, self.gateway_credentials["clientId"],
                                  self.gateway_credentials["clientSecret"])
        return Api(self.session, self.server.url, token)

    async def firmware(self, data: bytes, version: str = "1.0.0", **metadata: Any) -> dict[str, Any]:
        created = await self.api.ok("POST", "/v1/firmwares",
                                    {"name": "switch firmware", "version": version, **metadata})
        return await self.api.ok("PUT", f"/v1/firmwares/{created['id']}/blob", raw=data,
                                 headers={"Content-Type": "application/octet-stream"})

    async def install(self, firmware_id: str, slot: str = "firmware", **options: Any) -> dict[str, Any]:
        return await self.api.ok("POST", f"/v1/devices/{self.device['id']}/firmware-installations",
                                 {"firmwareId": firmware_id, "slot": slot, **options})

    async def installation(self, installation_id: str) -> dict[str, Any]:
        return await self.api.ok(
            "GET", f"/v1/devices/{self.device['id']}/firmware-installations/{installation_id}")

    async def settled(self, installation_id: str, timeout: float = 5.0) -> dict[str, Any]:
        """The installation once the gateway has a result for it."""
        await eventually(lambda: installation_id in self.gateway.results, timeout)
        await self.gateway.wait_idle()
        return await self.installation(installation_id)


@pytest.fixture(scope="session")
def broker() -> Iterator[MosquittoBroker]:
    """One mosquitto for the session (a process; its start/stop need a loop only briefly)."""
    running = MosquittoBroker()
    asyncio.run(running.start())
    yield running
    asyncio.run(running.stop())


async def start_server(database: Path, clock: ShiftedClock, broker: MosquittoBroker,
                       name: str = "olt-backend", **options: Any) -> tuple[OltServer, MqttClient]:
    mqtt = MqttClient(name, broker.host, broker.port)
    await mqtt.connect()
    server = OltServer(database, clock, mqtt=mqtt, **options)
    await server.start()
    return server, mqtt


@pytest_asyncio.fixture
async def world(tmp_path: Path, broker: MosquittoBroker) -> AsyncIterator[World]:
    async with contextlib.AsyncExitStack() as stack:  # each part stops even if a later one fails
        clock = ShiftedClock()
        server, server_mqtt = await start_server(tmp_path / "olt.sqlite3", clock, broker,
                                                 blob_limit=256 * 1024)
        stack.push_async_callback(server_mqtt.disconnect)
        servers = [server]  # a test may restart the server: stop the one running at the end
        stack.push_async_callback(lambda: servers[-1].stop())
        session = await stack.enter_async_context(aiohttp.ClientSession())
        tenant = server.backend.create_tenant("acme")
        api = Api(session, server.url, await fetch_token(session, server.url, tenant.client_id,
                                                          tenant.client_secret))
        device_type = await api.ok("POST", "/v1/device-types",
                                   fixture_json("osram_switch_all_slots_type.json"))
        gateway_type = await api.ok("POST", "/v1/device-types", fixture_json("gateway_type.json"))
        gateway_device = await api.ok("POST", "/v1/devices", {
            "info": {"name": "gateway 1", "deviceTypeId": gateway_type["id"]}})
        device = await api.ok("POST", "/v1/devices", {
            "info": {"name": "switch 1", "deviceTypeId": device_type["id"],
                     "connectedBy": gateway_device["id"]},
            "configuration": {"brightness": 40}})
        credentials = await api.ok("POST", f"/v1/devices/{gateway_device['id']}/credentials")
        link = BlobLink(server.url)
        await link.start()
        stack.push_async_callback(link.stop)
        field_device = FieldDevice(device["id"], slot_sizes={"bootloader": 65536},
                                   attributes={"temperature": 21.5})
        gateway = OltGateway(
            gateway_device["id"],
            OltApiClient(link.url, credentials["clientId"], credentials["clientSecret"]),
            MqttClient("gateway-1", broker.host, broker.port), clock, devices=[field_device],
            chunk_size=2048, retry_delay=0.05)
        await gateway.start()
        stack.push_async_callback(gateway.stop)
        world = World(server, broker, clock, session, tenant, api, device_type, gateway_device,
                      device, field_device, gateway, link, credentials)
        yield world
        servers.append(world.server)
        for cleanup in world.extra:
            await cleanup()


@pytest.fixture
def seed_type() -> dict[str, Any]:
    return fixture_json("osram_switch_type.json")


@dataclass
class Bare:
    """The server alone (no broker: instructions are dropped), one tenant, one switch device."""

    server: OltServer
    clock: ShiftedClock
    session: aiohttp.ClientSession
    api: Api
    device_type: dict[str, Any]
    device: dict[str, Any]

    async def tenant_api(self, name: str) -> Api:
        return await tenant_api(self.server, self.session, name)


@pytest_asyncio.fixture
async def bare(tmp_path: Path) -> AsyncIterator[Bare]:
    clock = ShiftedClock()
    server = OltServer(tmp_path / "olt.sqlite3", clock, blob_limit=64 * 1024)
    await server.start()
    session = aiohttp.ClientSession()
    try:
        api = await tenant_api(server, session, "acme")
        device_type = await api.ok("POST", "/v1/device-types",
                                   fixture_json("osram_switch_all_slots_type.json"))
        device = await api.ok("POST", "/v1/devices", {
            "info": {"name": "switch 1", "deviceTypeId": device_type["id"]}})
        yield Bare(server, clock, session, api, device_type, device)
    finally:
        await session.close()
        await server.stop()


class LiveServer(threading.Thread):
    """An OltServer on a private loop in a thread, for synchronous clients (schemathesis,
    hypothesis): one tenant holding a type, a device, a firmware with its blob and an
    installation. ``ids`` maps path prefixes (and ``installationId``) to those resources."""

    def __init__(self, database: Path, name: str = "olt-live") -> None:
        super().__init__(name=name, daemon=True)
        self.database = database
        self.ready = threading.Event()
        self.ids: dict[str, list[str]] = {}
        self.token = ""
        self.url = ""
        self.server: OltServer | None = None
        self.loop = asyncio.new_event_loop()
        self._stopped: asyncio.Event | None = None

    def run(self) -> None:
        self.loop.run_until_complete(self._serve())

    async def _serve(self) -> None:
        self._stopped = asyncio.Event()
        server = self.server = OltServer(self.database, ShiftedClock(), blob_limit=64 * 1024)
        await server.start()
        backend = server.backend
        tenant = backend.create_tenant("fuzz")
        who = Principal(tenant.tenant_id)
        self.token = backend.issue_token(tenant.client_id, tenant.client_secret)["access_token"]
        device_type = backend.create_device_type(who, fixture_json("osram_switch_all_slots_type.json"))
        device = backend.create_device(who, {"info": {"name": "d", "deviceTypeId": device_type["id"]}})
        firmware = backend.create_firmware(who, {"name": "fw", "version": "1"})
        backend.attach_blob(who, firmware["id"], image(3000, "fuzz"), "application/octet-stream")
        installation = await backend.create_installation(
            who, device["id"], {"firmwareId": firmware["id"], "slot": "firmware"})
        self.ids = {"/v1/devices": [device["id"]], "/v1/device-types": [device_type["id"]],
                    "/v1/firmwares": [firmware["id"]], "installationId": [installation["id"]]}
        self.url = server.url
        self.ready.set()
        await self._stopped.wait()
        await server.stop()

    def call(self, fn: Callable[[], Any]) -> Any:
        """Run ``fn`` on the server's loop (its SQLite connection belongs to that thread)."""
        async def run() -> Any:
            return fn()
        return asyncio.run_coroutine_threadsafe(run(), self.loop).result(10)

    def stop(self) -> None:
        assert self._stopped is not None
        self.loop.call_soon_threadsafe(self._stopped.set)
        self.join(10)
        self.loop.close()


@contextlib.contextmanager
def live_server(name: str = "olt-live") -> Iterator[LiveServer]:
    with tempfile.TemporaryDirectory() as directory:
        server = LiveServer(Path(directory) / "olt.sqlite3", name)
        server.start()
        assert server.ready.wait(10)
        try:
            yield server
        finally:
            server.stop()

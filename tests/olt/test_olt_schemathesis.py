"""Property-based conformance of the OLT API against its own /openapi.json (schemathesis):
no 5xx, only documented status codes and content types, responses matching their schemas.

The server runs on its own loop in a thread (schemathesis calls are synchronous). Half of the
generated cases get real resource ids substituted so that they reach past the 404s; bounded by a
small max_examples per operation.
"""

from __future__ import annotations

import asyncio
import itertools
import tempfile
import threading
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from olt_world import ShiftedClock, fixture_json, image
from schemathesis import checks

from otaharness.servers.olt.backend import Principal
from otaharness.servers.olt.openapi import openapi_document
from otaharness.servers.olt.server import OltServer

CHECKS = [checks.not_a_server_error, checks.status_code_conformance,
          checks.content_type_conformance, checks.response_schema_conformance]


class LiveServer(threading.Thread):
    """An OltServer on a private loop, with one tenant holding a type, device and firmware."""

    def __init__(self, database: Path) -> None:
        super().__init__(name="olt-schemathesis", daemon=True)
        self.database = database
        self.ready = threading.Event()
        self.ids: dict[str, list[str]] = {}
        self.token = ""
        self.url = ""
        self.loop = asyncio.new_event_loop()
        self._stopped: asyncio.Event | None = None

    def run(self) -> None:
        self.loop.run_until_complete(self._serve())

    async def _serve(self) -> None:
        self._stopped = asyncio.Event()
        server = OltServer(self.database, ShiftedClock(), blob_limit=64 * 1024)
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

    def stop(self) -> None:
        assert self._stopped is not None
        self.loop.call_soon_threadsafe(self._stopped.set)
        self.join(10)
        self.loop.close()


@pytest.fixture(scope="module")
def live() -> Any:
    with tempfile.TemporaryDirectory() as directory:
        server = LiveServer(Path(directory) / "olt.sqlite3")
        server.start()
        assert server.ready.wait(10)
        yield server
        server.stop()


schema = schemathesis.openapi.from_dict(openapi_document())
_alternate = itertools.cycle([True, False])


def use_real_ids(case: Any, live: LiveServer) -> None:
    if not next(_alternate) or not case.path_parameters:
        return
    for prefix, ids in live.ids.items():
        if prefix.startswith("/") and case.path.startswith(prefix + "/"):
            case.path_parameters["id"] = ids[0]
    if "installationId" in case.path_parameters:
        case.path_parameters["installationId"] = live.ids["installationId"][0]


@schema.parametrize()
@settings(max_examples=6, deadline=None, suppress_health_check=list(HealthCheck), database=None)
def test_api_conforms_to_its_openapi_document(case: Any, live: LiveServer) -> None:
    use_real_ids(case, live)
    response = case.call(base_url=live.url, headers={"Authorization": f"Bearer {live.token}"},
                         timeout=10)
    case.validate_response(response, checks=CHECKS)

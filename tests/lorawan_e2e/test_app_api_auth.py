"""Who may call the LoRaWAN application API, seen from a client over HTTPS against the runtime's
services (what `otaharness serve lorawan fuota olt` runs): every operation but /openapi.json
refuses a missing or wrong bearer token with 401 before reading its body, and registers nothing;
and no API takes another API's token (the FUOTA token on the application API, the application
API's on FUOTA, the firmware API's on either, and so on)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from otaharness.runtime.pki import client_context
from otaharness.runtime.runtime import Runtime
from otaharness.runtime.targets import HarnessConfig
from otaharness.servers.http_service import new_token
from otaharness.servers.lorawan.openapi import openapi_document

DEVICE = "70B3D57ED0070001"
ABP = {"devAddr": "26011B01", "nwkSKey": "00" * 16, "appSKey": "11" * 16}
# One harmless call per API, to try each token on: (endpoint name, method, path).
PROBES = (("lorawan-app", "GET", f"/api/devices/{DEVICE}"), ("fuota", "GET", "/campaigns"),
          ("olt", "GET", "/v1/firmwares"))


def operations() -> list[tuple[str, str]]:
    return [(method.upper(), path.replace("{eui}", DEVICE).replace("{name}", "g1").replace("{fport}", "2"))
            for path, item in openapi_document()["paths"].items()
            for method, operation in item.items()
            if method != "parameters" and operation.get("security") != []]


class Client:
    def __init__(self, tmp_path: Path, *flows: str) -> None:
        self.runtime = Runtime(HarnessConfig(artifacts_dir=tmp_path, broker="mosquitto"), name="api auth")
        for flow in flows:
            self.runtime.run(self.runtime.service(flow))
        self.trust = client_context(self.runtime.endpoint_url("ca"))

    def call(self, endpoint: str, method: str, path: str, authorization: str | None,
             body: bytes | None = None) -> tuple[int, Any]:
        headers = {"Authorization": authorization} if authorization is not None else {}
        if body is not None:
            headers["Content-Type"] = "application/json"

        async def call() -> tuple[int, Any]:
            async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=self.trust)) as session, \
                    session.request(method, self.runtime.endpoint_url(endpoint) + path, data=body,
                                    headers=headers) as response:
                raw = await response.read()
                return response.status, json.loads(raw) if raw else None
        return self.runtime.run(call())

    def registered(self) -> bool:
        network_server = self.runtime.run(self.runtime.service("lorawan")).network_server
        return network_server.registry.find(int(DEVICE, 16)) is not None


@pytest.fixture
def lorawan(tmp_path: Path) -> Iterator[Client]:
    client = Client(tmp_path, "lorawan")
    try:
        yield client
    finally:
        assert client.runtime.close() == []


def test_the_printed_token_registers_a_device_over_https(lorawan: Client) -> None:
    assert lorawan.runtime.endpoint_url("lorawan-app").startswith("https://")
    token = lorawan.runtime.token_for("lorawan-app")
    status, body = lorawan.call("lorawan-app", "PUT", f"/api/devices/{DEVICE}", f"Bearer {token}",
                                json.dumps(ABP).encode())
    assert status == 201, body
    assert lorawan.registered()
    assert lorawan.call("lorawan-app", "GET", "/openapi.json", None)[0] == 200  # public


@pytest.mark.parametrize("authorization", [None, f"Bearer {new_token()}", "Bearer", "Basic x"],
                         ids=["missing", "wrong", "empty", "not Bearer"])
def test_every_operation_refuses_a_call_without_the_token_and_registers_nothing(
        lorawan: Client, authorization: str | None) -> None:
    body = json.dumps(ABP).encode()
    for method, path in operations():
        status, answer = lorawan.call("lorawan-app", method, path, authorization, body)
        assert status == 401, (method, path, status, answer)
    assert not lorawan.registered()


@pytest.mark.parametrize("body", [b"{" * 100_000, b"\xff not json", b"x" * (3 * 1024 * 1024)],
                         ids=["deeply nested", "malformed", "over the size limit"])
def test_a_bad_body_without_a_token_is_refused_as_unauthenticated_not_read(
        lorawan: Client, body: bytes) -> None:
    status, answer = lorawan.call("lorawan-app", "PUT", f"/api/devices/{DEVICE}", None, body)
    assert status == 401, (status, answer)
    assert not lorawan.registered()
    lorawan.runtime.run_for(15)  # aiohttp discards an unread body for up to 10 s before it lets go


def test_no_api_takes_another_apis_token(tmp_path: Path) -> None:
    client = Client(tmp_path, "fuota", "olt")
    try:
        tokens = client.runtime.running_tokens()
        for endpoint, method, path in PROBES:
            assert client.call(endpoint, method, path, f"Bearer {tokens[endpoint]}")[0] in (200, 404)
            for other in sorted(set(tokens) - {endpoint}):
                status, answer = client.call(endpoint, method, path, f"Bearer {tokens[other]}")
                assert status == 401, (f"{other}'s token on {endpoint}", status, answer)
        status, _ = client.call("lorawan-app", "PUT", f"/api/devices/{DEVICE}",
                                f"Bearer {tokens['fuota']}", json.dumps(ABP).encode())
        assert status == 401 and not client.registered()
    finally:
        assert client.runtime.close() == []

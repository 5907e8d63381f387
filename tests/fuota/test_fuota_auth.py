"""Who may call the FUOTA campaign API, seen from a client over HTTPS against the runtime's
service (what `otaharness serve fuota` runs): every operation but /openapi.json refuses a missing
or wrong bearer token, or another API's token, with 401 before reading its body, and stores no
campaign; the CLI takes the token; a client that does not trust the scenario's CA gets no
connection."""

from __future__ import annotations

import argparse
import base64
import json
import ssl
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from otaharness.runtime.pki import client_context
from otaharness.runtime.runtime import Runtime
from otaharness.runtime.targets import HarnessConfig, Target
from otaharness.servers.fuota import cli
from otaharness.servers.fuota.openapi import openapi_document
from otaharness.servers.http_service import new_token

FORGED = new_token()


def operations() -> list[tuple[str, str]]:
    """Every documented operation that takes a token, with a campaign id filled in."""
    return [(method.upper(), path.replace("{id}", "1"))
            for path, item in openapi_document()["paths"].items()
            for method, operation in item.items()
            if method != "parameters" and operation.get("security") != []]


class FuotaClient:
    def __init__(self, tmp_path: Path) -> None:
        self.runtime = Runtime(HarnessConfig(artifacts_dir=tmp_path), name="fuota auth")
        self.service: Any = self.runtime.run(self.runtime.service("fuota"))
        self.url = self.service.endpoints()["fuota"]
        self.ca = self.service.endpoints()["ca"]

    async def call(self, method: str, path: str, token: str | None, *, raw: bytes | None = None,
                   trust: ssl.SSLContext | None = None, scheme: str = "Bearer"
                   ) -> tuple[int, Any, dict[str, str]]:
        headers = {"Authorization": f"{scheme} {token}"} if token is not None else {}
        if raw is not None:
            headers["Content-Type"] = "application/json"
        connector = aiohttp.TCPConnector(ssl=trust or client_context(self.ca))
        async with aiohttp.ClientSession(connector=connector) as session, \
                session.request(method, self.url + path, headers=headers, data=raw) as response:
            body = await response.read()
            return response.status, json.loads(body) if body else None, dict(response.headers)

    def campaigns(self) -> list[int]:
        return list(self.service.server.store.ids())


@pytest.fixture
def fuota(tmp_path: Path) -> Iterator[FuotaClient]:
    client = FuotaClient(tmp_path)
    try:
        yield client
    finally:
        assert client.runtime.close() == []


def test_the_printed_token_opens_the_api_over_https(fuota: FuotaClient) -> None:
    assert fuota.url.startswith("https://")
    token = fuota.runtime.token_for("fuota")
    assert token is not None and len(token) >= 43
    status, body, _ = fuota.runtime.run(fuota.call("GET", "/campaigns", token))
    assert (status, body) == (200, [])
    status, _, _ = fuota.runtime.run(fuota.call("GET", "/openapi.json", None))
    assert status == 200  # the document is public


@pytest.mark.parametrize("token", [None, FORGED, "basic"],
                         ids=["missing", "wrong", "the right one, not as a Bearer token"])
def test_every_operation_refuses_a_call_without_the_token_and_stores_nothing(
        fuota: FuotaClient, token: str | None) -> None:
    document = json.dumps({"config": {"name": "x"}, "image": base64.b64encode(b"x").decode()}).encode()

    presented, scheme = (fuota.runtime.token_for("fuota"), "Basic") if token == "basic" else (token, "Bearer")

    async def calls() -> list[tuple[str, str, int, Any, dict[str, str]]]:
        return [(method, path, *await fuota.call(method, path, presented, raw=document, scheme=scheme))
                for method, path in operations()]

    for method, path, status, body, headers in fuota.runtime.run(calls()):
        assert status == 401, (method, path, status, body)
        assert headers["WWW-Authenticate"].startswith("Bearer ")
        assert "error" in body
    assert fuota.campaigns() == []


@pytest.mark.parametrize("body", [b"[" * 100_000, b"\xff{not json", b"x" * (3 * 1024 * 1024)],
                         ids=["deeply nested", "malformed", "over the size limit"])
def test_a_bad_body_without_a_token_is_refused_as_unauthenticated_not_read(
        fuota: FuotaClient, body: bytes) -> None:
    """401, not the 400/413 the body alone would earn: the token is checked first."""
    status, answer, _ = fuota.runtime.run(fuota.call("POST", "/campaigns", None, raw=body))
    assert status == 401, (status, answer)
    assert fuota.campaigns() == []
    fuota.runtime.run_for(15)  # aiohttp discards an unread body for up to 10 s before it lets go


def test_the_cli_takes_the_token_from_its_option_or_the_environment(
        fuota: FuotaClient, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    def command(*argv: str) -> int | str:
        parser = argparse.ArgumentParser()
        cli.add_arguments(parser)  # the environment is read when the parser is made
        args = parser.parse_args(["--url", fuota.url, "--ca", fuota.ca, *argv])

        async def run() -> int | str:
            try:
                return await cli.run(args)
            except SystemExit as refused:  # the CLI's way of reporting an HTTP error
                return str(refused)
        return fuota.runtime.run(run())

    token = fuota.runtime.token_for("fuota") or ""
    assert " 401 " in str(command("show"))
    assert " 401 " in str(command("--token", FORGED, "show"))
    assert command("--token", token, "show") == 0
    monkeypatch.setenv("OTAHARNESS_TOKEN", token)
    assert command("show") == 0


def test_a_client_that_does_not_trust_the_scenario_ca_gets_no_connection(fuota: FuotaClient) -> None:
    pki = fuota.runtime.pki()
    rogue = client_context(pki.write("rogue-ca.pem", pki.rogue_ca.certificate_pem))
    with pytest.raises(aiohttp.ClientConnectorCertificateError):
        fuota.runtime.run(fuota.call("GET", "/campaigns", fuota.runtime.token_for("fuota"), trust=rogue))


def test_plain_http_when_asked_still_requires_the_token(tmp_path: Path) -> None:
    plain = {flow: Target(flow, endpoints={"plain_http": "true"}) for flow in ("fuota", "lorawan")}
    runtime = Runtime(HarnessConfig(artifacts_dir=tmp_path, targets=plain), name="fuota plain")
    try:
        runtime.run(runtime.service("fuota"))
        tokens = runtime.running_tokens()

        async def calls() -> list[int]:
            statuses = []
            async with aiohttp.ClientSession() as session:
                for endpoint, path in (("fuota", "/campaigns"), ("lorawan-app", "/api/devices/01")):
                    url = runtime.endpoint_url(endpoint)
                    assert url.startswith("http://"), url
                    for headers in ({}, {"Authorization": f"Bearer {tokens[endpoint]}"}):
                        async with session.get(url + path, headers=headers) as response:
                            statuses.append(response.status)
            return statuses

        assert runtime.run(calls()) == [401, 200, 401, 404]  # 404: no such device, but let in
    finally:
        assert runtime.close() == []

"""Who may call the firmware REST API, seen from a client over HTTPS against the runtime's OLT
service (what `otaharness serve olt` runs): every operation refuses a missing or wrong bearer
token with 401 before reading its body, and changes nothing; the printed token and credentials
work as printed; only the operator's token creates tenants; a client that does not trust the
scenario's server CA gets no connection."""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from olt_world import Api, fetch_token

from otaharness.runtime.pki import client_context
from otaharness.runtime.runtime import Runtime
from otaharness.runtime.targets import HarnessConfig, Target
from otaharness.servers.http_service import new_token
from otaharness.servers.olt.openapi import openapi_document

FORGED = new_token()


def operations() -> list[tuple[str, str]]:
    """Every documented operation that takes a token, with its path's ids filled in."""
    found = []
    for path, item in openapi_document()["paths"].items():
        for method, operation in item.items():
            if method == "parameters" or operation.get("security") == []:
                continue
            found.append((method.upper(), path.replace("{id}", "x1").replace(
                "{installationId}", "i1").replace("{actionId}", "a1")))
    return found


class OltClient:
    """The runtime's OLT service and an HTTPS session trusting the scenario's server CA."""

    def __init__(self, tmp_path: Path) -> None:
        self.runtime = Runtime(HarnessConfig(artifacts_dir=tmp_path, broker="mosquitto"),
                               name="olt auth")
        self.service: Any = self.runtime.run(self.runtime.service("olt"))
        self.url = self.service.endpoints()["olt"]
        self.tokens: dict[str, str] = self.service.tokens()
        self.trust = client_context(self.service.endpoints()["ca"])

    def run(self, coro: Any) -> Any:
        return self.runtime.run(coro)

    async def call(self, method: str, path: str, token: str | None, *, raw: bytes | None = None,
                   json: Any = None, ssl_context: ssl.SSLContext | None = None) -> tuple[int, Any, dict]:
        headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
        if raw is not None:
            headers["Content-Type"] = "application/json"
        connector = aiohttp.TCPConnector(ssl=ssl_context or self.trust)
        async with aiohttp.ClientSession(connector=connector) as session:
            async with session.request(method, self.url + path, headers=headers, data=raw,
                                       json=json) as response:
                body = await response.json(content_type=None) if response.content_type == \
                    "application/json" else await response.read()
                return response.status, body, dict(response.headers)

    def counts(self) -> dict[str, int]:
        """Rows per table of the back end's store: what a refused call must leave alone."""
        db = self.service.backend.db
        return {table: db.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]
                for table in ("tenants", "clients", "tokens", "firmwares", "devices", "device_types")}


@pytest.fixture
def olt(tmp_path: Path) -> Iterator[OltClient]:
    client = OltClient(tmp_path)
    try:
        yield client
    finally:
        assert client.runtime.close() == []


def test_the_printed_token_and_credentials_work_as_printed(olt: OltClient) -> None:
    assert olt.url.startswith("https://")
    assert set(olt.tokens) == {"olt", "olt-client-id", "olt-client-secret", "olt-operator"}
    assert olt.runtime.token_for("olt") == olt.tokens["olt"]  # what steps and `serve` use

    async def calls() -> tuple[Any, str]:
        status, body, _ = await olt.call("GET", "/v1/firmwares", olt.tokens["olt"])
        assert status == 200, body
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=olt.trust)) as session:
            fresh = await fetch_token(session, olt.url, olt.tokens["olt-client-id"],
                                      olt.tokens["olt-client-secret"])
            return await Api(session, olt.url, fresh).ok(
                "POST", "/v1/firmwares", {"name": "fw", "version": "1"}), fresh

    firmware, fresh = olt.run(calls())
    assert fresh != olt.tokens["olt"] and firmware["name"] == "fw"


@pytest.mark.parametrize("token", [None, FORGED, "operator"], ids=["missing", "wrong", "operator's"])
def test_every_operation_refuses_a_call_without_a_tenant_token_and_changes_nothing(
        olt: OltClient, token: str | None) -> None:
    presented = olt.tokens["olt-operator"] if token == "operator" else token
    before = olt.counts()

    async def calls() -> list[tuple[str, str, int, Any, dict]]:
        answers = []
        for method, path in operations():
            if path == "/v1/tenants" and token == "operator":
                continue  # the operator's own
            status, body, headers = await olt.call(method, path, presented, raw=b'{"name": "x"}')
            answers.append((method, path, status, body, headers))
        return answers

    for method, path, status, body, headers in olt.run(calls()):
        assert status == 401, (method, path, status, body)
        assert body["errors"][0]["status"] == 401
        assert headers["WWW-Authenticate"].startswith('Bearer realm="olt"')
    assert olt.counts() == before


@pytest.mark.parametrize("body", [b"{" * 200_000, b"\xff\xfe not json", b"x" * (20 * 1024 * 1024)],
                         ids=["deeply nested", "malformed", "over every limit"])
def test_a_bad_body_without_a_token_is_refused_as_unauthenticated_not_read(
        olt: OltClient, body: bytes) -> None:
    """401, not the 400/413 the body alone would earn: the token is checked first."""
    before = olt.counts()
    for method, path in (("POST", "/v1/firmwares"), ("POST", "/v1/tenants"),
                         ("PUT", "/v1/firmwares/x1/blob"), ("POST", "/v1/devices")):
        status, answer, _ = olt.run(olt.call(method, path, None, raw=body))
        assert status == 401, (path, status, answer)
    assert olt.counts() == before
    olt.runtime.run_for(15)  # aiohttp discards an unread body for up to 10 s before it lets go


def test_only_the_operator_creates_tenants_and_a_new_tenant_sees_nothing_of_another(
        olt: OltClient) -> None:
    async def calls() -> None:
        status, body, _ = await olt.call("POST", "/v1/tenants", olt.tokens["olt"], json={"name": "x"})
        assert status == 403 and body["errors"][0]["code"] == "insufficient_scope", body
        before = olt.counts()
        status, body, _ = await olt.call("POST", "/v1/tenants", olt.tokens["olt-operator"],
                                         json={"name": "", "extra": 1})
        assert status == 422, body
        assert olt.counts() == before
        status, body, _ = await olt.call("POST", "/v1/tenants", olt.tokens["olt-operator"],
                                         json={"name": "rival"})
        assert status == 201, body
        created = body["data"]
        assert created["name"] == "rival" and set(created) == {"id", "name", "clientId", "clientSecret"}
        await olt.call("POST", "/v1/firmwares", olt.tokens["olt"], json={"name": "fw", "version": "1"})
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=olt.trust)) as session:
            rival = Api(session, olt.url, await fetch_token(
                session, olt.url, created["clientId"], created["clientSecret"]))
            assert await rival.ok("GET", "/v1/firmwares") == []
            status, _ = await rival.request("POST", "/v1/tenants", {"name": "third"})
            assert status == 403

    olt.run(calls())


def test_a_client_that_does_not_trust_the_scenario_ca_gets_no_connection(olt: OltClient) -> None:
    rogue = olt.runtime.pki().rogue_ca
    rogue_file = olt.runtime.pki().write("rogue-ca.pem", rogue.certificate_pem)
    with pytest.raises(aiohttp.ClientConnectorCertificateError):
        olt.run(olt.call("GET", "/v1/firmwares", olt.tokens["olt"],
                         ssl_context=client_context(rogue_file)))


def test_plain_http_when_asked_still_requires_the_token(tmp_path: Path) -> None:
    runtime = Runtime(HarnessConfig(artifacts_dir=tmp_path, broker="mosquitto",
                                    targets={"olt": Target("olt", endpoints={"plain_http": "true"})}),
                      name="olt plain")
    try:
        service = runtime.run(runtime.service("olt"))
        url = service.endpoints()["olt"]
        assert url.startswith("http://") and "ca" not in service.endpoints()

        async def calls() -> tuple[int, int]:
            async with aiohttp.ClientSession() as session:
                async with session.get(url + "/v1/firmwares") as refused:
                    pass
                async with session.get(url + "/v1/firmwares", headers={
                        "Authorization": f"Bearer {service.tokens()['olt']}"}) as served:
                    return refused.status, served.status

        assert runtime.run(calls()) == (401, 200)
    finally:
        assert runtime.close() == []


def test_a_restart_on_a_kept_state_dir_prints_credentials_of_the_same_tenant(tmp_path: Path) -> None:
    """The secret is kept only hashed: a restart gives the `default` tenant a new client, so the
    printed credentials still reach what that tenant stored before."""
    seen = []
    for run in range(2):
        runtime = Runtime(HarnessConfig(artifacts_dir=tmp_path / f"run{run}", broker="mosquitto"),
                          name="olt kept", virtual=False, state_dir=tmp_path / "state")
        try:
            service = runtime.run(runtime.service("olt"))
            tokens, url = service.tokens(), service.endpoints()["olt"]
            trust = client_context(service.endpoints()["ca"])

            async def calls() -> list[str]:
                async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=trust)) as session:
                    api = Api(session, url, await fetch_token(
                        session, url, tokens["olt-client-id"], tokens["olt-client-secret"]))
                    if run == 0:
                        await api.ok("POST", "/v1/firmwares", {"name": "kept", "version": "1"})
                    return [firmware["name"] for firmware in await api.ok("GET", "/v1/firmwares")]

            seen.append((tokens["olt-client-id"], runtime.run(calls())))
        finally:
            assert runtime.close() == []
    (first_client, first), (second_client, second) = seen
    assert first_client != second_client and first == second == ["kept"]

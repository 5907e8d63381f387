"""The OLT REST API on its own: tenants and tokens, envelopes and paging, bad input, byte ranges,
device-type documents, and the installation state machine as seen through PATCH."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from olt_world import Api, Bare, fetch_token, fixture_json, image

from otaharness.protocols.olt import seconds_until_window
from otaharness.servers.olt.backend import TRANSITIONS
from otaharness.servers.olt.openapi import openapi_document

DOCS = Path(__file__).resolve().parents[2] / "docs"


async def firmware_with_blob(api: Api, data: bytes, **metadata) -> dict:
    created = await api.ok("POST", "/v1/firmwares", {"name": "fw", "version": "1", **metadata})
    return await api.ok("PUT", f"/v1/firmwares/{created['id']}/blob", raw=data)


async def row_counts(bare: Bare) -> dict[str, int]:
    db = bare.server.store.db
    return {table: db.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]
            for table in ("firmwares", "blobs", "device_types", "devices", "installations")}


# -- tenants, tokens, envelopes ---------------------------------------------------------------------

async def test_another_tenant_cannot_see_install_or_delete_our_firmware(bare: Bare) -> None:
    ours = await firmware_with_blob(bare.api, image(2000, "ours"))
    other = await bare.tenant_api("globex")
    missing = "00000000-0000-4000-8000-000000000000"
    for method, suffix in (("GET", ""), ("GET", "/blob"), ("DELETE", ""), ("PUT", "/blob")):
        foreign = await other.request(method, f"/v1/firmwares/{ours['id']}{suffix}", raw=b"x")
        absent = await other.request(method, f"/v1/firmwares/{missing}{suffix}", raw=b"x")
        assert foreign[0] == absent[0] == 404, (method, suffix)
        assert foreign[1]["errors"][0]["detail"].replace(ours["id"], missing) == \
            absent[1]["errors"][0]["detail"]  # nothing tells the two apart
    assert await other.ok("GET", "/v1/firmwares") == []
    # Installing our firmware into their own device, or into our device: both not found.
    their_type = await other.ok("POST", "/v1/device-types", fixture_json("osram_switch_type.json"))
    their_device = await other.ok("POST", "/v1/devices", {"info": {"name": "d", "deviceTypeId": their_type["id"]}})
    for device_id in (their_device["id"], bare.device["id"]):
        status, body = await other.request("POST", f"/v1/devices/{device_id}/firmware-installations",
                                           {"firmwareId": ours["id"], "slot": "firmware"})
        assert status == 404, body
    assert (await bare.api.ok("GET", f"/v1/firmwares/{ours['id']}"))["blob"] == ours["blob"]
    assert (await row_counts(bare))["installations"] == 0


@pytest.mark.parametrize("authorization", [None, "Bearer", "Bearer nonsense", "Basic abc", "bearer  "])
async def test_bad_tokens_are_401_with_a_challenge(bare: Bare, authorization: str | None) -> None:
    headers = {"Authorization": authorization} if authorization is not None else {}
    api = Api(bare.session, bare.server.url, None)
    async with bare.session.get(bare.server.url + "/v1/firmwares", headers=headers) as response:
        assert response.status == 401
        assert response.headers["WWW-Authenticate"].startswith('Bearer realm="olt", error=')
        assert (await response.json())["errors"][0]["status"] == 401
    assert api.token is None


async def test_tokens_expire_and_bad_client_credentials_are_refused(bare: Bare) -> None:
    bare.clock.offset = 3601
    status, body = await bare.api.request("GET", "/v1/firmwares")
    assert status == 401 and body["errors"][0]["detail"] == "the bearer token has expired"
    form = {"grant_type": "client_credentials", "client_id": "tenant-x", "client_secret": "y"}
    async with bare.session.post(bare.server.url + "/v1/id/auth/realms/olt/protocol/openid-connect/token",
                                 data=form) as response:
        assert response.status == 401 and (await response.json())["error"] == "invalid_client"
    async with bare.session.post(bare.server.url + "/v1/id/auth/realms/olt/protocol/openid-connect/token",
                                 data={"grant_type": "password"}) as response:
        assert response.status == 400 and (await response.json())["error"] == "unsupported_grant_type"


async def test_tokens_are_forgotten_one_lifetime_after_they_expire(bare: Bare) -> None:
    """A client asking for a token before every request (a careless one, or a hostile one in a
    loop) left a row per token in the store for ever; now a row goes one lifetime after its
    token expired (until then the token is refused as expired, not unknown)."""
    credentials = bare.server.backend.create_tenant("minting")
    minted = [await fetch_token(bare.session, bare.server.url, credentials.client_id,
                                credentials.client_secret) for _ in range(3)]
    db = bare.server.store.db
    assert db.execute("SELECT COUNT(*) FROM tokens").fetchone()[0] == 4  # and acme's
    bare.clock.offset = 2 * 3600 - 60  # expired almost an hour ago: still told so
    await fetch_token(bare.session, bare.server.url, credentials.client_id, credentials.client_secret)
    status, body = await Api(bare.session, bare.server.url, minted[0]).request("GET", "/v1/firmwares")
    assert status == 401 and body["errors"][0]["detail"] == "the bearer token has expired"
    assert db.execute("SELECT COUNT(*) FROM tokens").fetchone()[0] == 5
    bare.clock.offset = 2 * 3600 + 60  # more than a lifetime past expiry: gone
    fresh = await fetch_token(bare.session, bare.server.url, credentials.client_id, credentials.client_secret)
    assert db.execute("SELECT COUNT(*) FROM tokens").fetchone()[0] == 2
    status, body = await Api(bare.session, bare.server.url, minted[0]).request("GET", "/v1/firmwares")
    assert status == 401 and body["errors"][0]["detail"] == "unknown bearer token"
    assert await Api(bare.session, bare.server.url, fresh).ok("GET", "/v1/firmwares") == []


async def test_a_client_granting_in_a_loop_holds_ten_tokens_the_oldest_revoked(bare: Bare) -> None:
    """Live tokens were bounded only by the grant rate times the lifetime: a client in a loop
    held every one. Now a tenant's (or device's) eleventh token revokes its oldest, as GitHub
    does for an OAuth app's per user; another principal's tokens are untouched."""
    credentials = bare.server.backend.create_tenant("looping")
    minted = [await fetch_token(bare.session, bare.server.url, credentials.client_id,
                                credentials.client_secret) for _ in range(25)]
    db = bare.server.store.db
    assert db.execute("SELECT COUNT(*) FROM tokens").fetchone()[0] == 10 + 1  # and acme's
    for token in minted[:15]:
        status, body = await Api(bare.session, bare.server.url, token).request("GET", "/v1/firmwares")
        assert status == 401 and body["errors"][0]["detail"] == "unknown bearer token"
    for token in minted[15:]:
        assert await Api(bare.session, bare.server.url, token).ok("GET", "/v1/firmwares") == []
    assert await bare.api.ok("GET", "/v1/firmwares") == []  # acme's own token still works


async def test_device_scoped_token_sees_only_its_devices_and_active_firmware(bare: Bare) -> None:
    gateway_type = await bare.api.ok("POST", "/v1/device-types", fixture_json("gateway_type.json"))
    gateway = await bare.api.ok("POST", "/v1/devices", {"info": {"name": "gw", "deviceTypeId": gateway_type["id"]}})
    behind = await bare.api.ok("POST", "/v1/devices", {"info": {
        "name": "behind", "deviceTypeId": bare.device_type["id"], "connectedBy": gateway["id"]}})
    credentials = await bare.api.ok("POST", f"/v1/devices/{gateway['id']}/credentials")
    device_api = Api(bare.session, bare.server.url, await fetch_token(
        bare.session, bare.server.url, credentials["clientId"], credentials["clientSecret"]))

    listed = await device_api.ok("GET", "/v1/devices")
    assert sorted(d["id"] for d in listed) == sorted([gateway["id"], behind["id"]])
    assert (await device_api.request("GET", f"/v1/devices/{bare.device['id']}"))[0] == 404
    for method, path in (("POST", "/v1/firmwares"), ("GET", "/v1/firmwares"), ("POST", "/v1/device-types")):
        status, body = await device_api.request(method, path, {"name": "x", "version": "1"})
        assert status == 403 and body["errors"][0]["code"] == "insufficient_scope"

    firmware = await firmware_with_blob(bare.api, image(1000, "scoped"))
    assert (await device_api.request("GET", f"/v1/firmwares/{firmware['id']}/blob"))[0] == 404
    installation = await bare.api.ok("POST", f"/v1/devices/{behind['id']}/firmware-installations",
                                     {"firmwareId": firmware["id"], "slot": "firmware"})
    assert await device_api.ok("GET", f"/v1/firmwares/{firmware['id']}/blob") == image(1000, "scoped")
    await bare.api.ok("POST", f"/v1/devices/{behind['id']}/firmware-installations/{installation['id']}/cancel",
                      status=200)
    assert (await device_api.request("GET", f"/v1/firmwares/{firmware['id']}/blob"))[0] == 404


async def test_lists_are_paged(bare: Bare) -> None:
    for index in range(23):
        await bare.api.ok("POST", "/v1/firmwares", {"name": f"fw {index}", "version": "1"})
    status, first = await bare.api.request("GET", "/v1/firmwares")
    assert status == 200 and first["meta"] == {"page": 0, "pageSize": 10, "itemsTotal": 23}
    assert [f["name"] for f in first["data"]] == [f"fw {i}" for i in range(10)]
    _, last = await bare.api.request("GET", "/v1/firmwares?page=2&pageSize=10")
    assert [f["name"] for f in last["data"]] == ["fw 20", "fw 21", "fw 22"]
    _, all_of_them = await bare.api.request("GET", "/v1/firmwares?pageSize=100")
    assert len(all_of_them["data"]) == 23
    for query in ("pageSize=0", "pageSize=101", "page=-1", "page=x", "pageSize=1.5"):
        status, body = await bare.api.request("GET", f"/v1/firmwares?{query}")
        assert status == 400, query
        assert body["errors"][0]["detail"].startswith("query parameter page")


# -- bad input: clear 4xx, nothing stored half-way --------------------------------------------------

@pytest.mark.parametrize("raw, status, detail", [
    (b"{not json", 400, "the body is not valid JSON"),
    (b"\xff\xfe", 400, "the body is not valid JSON"),
    (b"[]", 422, "firmware: [] is not of type 'object'"),
    (b'{"name": 5, "version": "1"}', 422, "firmware: 5 is not of type 'string' (at /name)"),
    (b'{"name": "a"}', 422, "'version' is a required property"),
    (b'{"name": "a", "version": "1", "size": 3}', 422, "Additional properties are not allowed"),
    (b'{"name": "a", "version": "1", "kind": "kernel"}', 422, "'kernel' is not one of"),
])
async def test_bad_firmware_bodies(bare: Bare, raw: bytes, status: int, detail: str) -> None:
    before = await row_counts(bare)
    got, body = await bare.api.request("POST", "/v1/firmwares", raw=raw,
                                       headers={"Content-Type": "application/json"})
    assert got == status and detail in body["errors"][0]["detail"], body
    assert await row_counts(bare) == before


async def test_huge_bodies_are_413_and_store_nothing(bare: Bare) -> None:
    before = await row_counts(bare)
    huge_json = json.dumps({"name": "x" * 70_000, "version": "1"}).encode()
    status, body = await bare.api.request("POST", "/v1/firmwares", raw=huge_json)
    assert status == 413 and "JSON bodies are limited to 65536 bytes" in body["errors"][0]["detail"]
    created = await bare.api.ok("POST", "/v1/firmwares", {"name": "fw", "version": "1"})
    status, body = await bare.api.request("PUT", f"/v1/firmwares/{created['id']}/blob",
                                          raw=b"\0" * (64 * 1024 + 1))
    assert status == 413 and "blobs are limited to 65536 bytes" in body["errors"][0]["detail"]

    async def chunked():  # no Content-Length: the limit still holds while streaming
        for _ in range(9):
            yield b"\1" * 8192

    async with bare.session.put(bare.server.url + f"/v1/firmwares/{created['id']}/blob", data=chunked(),
                                headers={"Authorization": f"Bearer {bare.api.token}"}) as response:
        assert response.status == 413
    assert "blob" not in await bare.api.ok("GET", f"/v1/firmwares/{created['id']}")
    assert await row_counts(bare) == {**before, "firmwares": before["firmwares"] + 1}
    status, _ = await bare.api.request("PUT", f"/v1/firmwares/{created['id']}/blob", raw=b"")
    assert status == 400


async def test_bad_installation_requests(bare: Bare) -> None:
    path = f"/v1/devices/{bare.device['id']}/firmware-installations"
    unattached = await bare.api.ok("POST", "/v1/firmwares", {"name": "fw", "version": "1"})
    bootloader = await firmware_with_blob(bare.api, image(100, "boot"), kind="bootloader")
    too_big = await firmware_with_blob(bare.api, image(65_536, "big"))
    cases = [
        ({"firmwareId": unattached["id"], "slot": "firmware"}, 409, "has no blob attached yet"),
        ({"firmwareId": bootloader["id"], "slot": "firmware"}, 422, "is a bootloader image"),
        ({"firmwareId": bootloader["id"], "slot": "kernel"}, 422, "'kernel' is not one of"),
        ({"firmwareId": bootloader["id"], "slot": "bootloader", "schedule": {"startAt": "soon"}}, 422,
         "'soon' is not a 'date-time'"),
        ({"firmwareId": bootloader["id"], "slot": "bootloader",
          "maintenanceWindow": {"start": "25:00", "end": "01:00"}}, 422, "does not match"),
        ({"firmwareId": 7, "slot": "firmware"}, 422, "7 is not of type 'string'"),
    ]
    before = await row_counts(bare)
    for body, status, detail in cases:
        got, answer = await bare.api.request("POST", path, body)
        assert got == status and detail in answer["errors"][0]["detail"], (body, answer)
    assert await row_counts(bare) == before
    # A bootloader image fits the bootloader slot only up to its declared maxSize (65536): ok.
    await bare.api.ok("POST", path, {"firmwareId": too_big["id"], "slot": "bootloader"},
                      status=201)
    seed_type = await bare.api.ok("POST", "/v1/device-types", fixture_json("osram_switch_type.json"))
    seed_device = await bare.api.ok("POST", "/v1/devices", {"info": {"name": "s", "deviceTypeId": seed_type["id"]}})
    got, answer = await bare.api.request("POST", f"/v1/devices/{seed_device['id']}/firmware-installations",
                                         {"firmwareId": bootloader["id"], "slot": "bootloader"})
    assert got == 422 and answer["errors"][0]["detail"] == "the device type declares no bootloader slot"


# -- byte ranges -----------------------------------------------------------------------------------

@pytest.mark.parametrize("range_header, status, expected, content_range", [
    ("bytes=0-99", 206, slice(0, 100), "bytes 0-99/5000"),
    ("bytes=4900-", 206, slice(4900, 5000), "bytes 4900-4999/5000"),
    ("bytes=-10", 206, slice(4990, 5000), "bytes 4990-4999/5000"),
    ("bytes=4990-9999", 206, slice(4990, 5000), "bytes 4990-4999/5000"),
    ("bytes=5000-", 416, None, "bytes */5000"),
    ("bytes=x-y", 200, slice(0, 5000), None),
])
async def test_blob_ranges(bare: Bare, range_header: str, status: int, expected: slice | None,
                           content_range: str | None) -> None:
    data = image(5000, "ranges")
    firmware = await firmware_with_blob(bare.api, data)
    async with bare.session.get(f"{bare.server.url}/v1/firmwares/{firmware['id']}/blob", headers={
            "Authorization": f"Bearer {bare.api.token}", "Range": range_header}) as response:
        body = await response.read()
        assert response.status == status
        assert response.headers.get("Content-Range") == content_range
        if expected is not None:
            assert body == data[expected]
            assert response.headers["ETag"] == f'"{hashlib.sha256(data).hexdigest()}"'
            assert response.headers["Accept-Ranges"] == "bytes"


async def test_if_range_with_another_etag_sends_the_whole_blob(bare: Bare) -> None:
    data = image(3000, "if-range")
    firmware = await firmware_with_blob(bare.api, data)
    url = f"{bare.server.url}/v1/firmwares/{firmware['id']}/blob"
    headers = {"Authorization": f"Bearer {bare.api.token}", "Range": "bytes=1000-"}
    async with bare.session.get(url, headers={**headers, "If-Range": '"other"'}) as response:
        assert response.status == 200 and await response.read() == data
    async with bare.session.get(url, headers={**headers, "If-Range": response.headers["ETag"]}) as response:
        assert response.status == 206 and await response.read() == data[1000:]


# -- device types and device documents ----------------------------------------------------------------

def broken(change) -> dict:
    document = fixture_json("osram_switch_type.json")
    change(document)
    return document


@pytest.mark.parametrize("document, detail", [
    (broken(lambda d: d.pop("schema")), "'schema' is a required property"),
    (broken(lambda d: d["slots"].update(kernel={"name": "k"})), "'kernel' is not one of"),
    (broken(lambda d: d["slots"]["firmware"].pop("name")), "'name' is a required property"),
    (broken(lambda d: d["schema"]["attributes"]["temperature"].update(type="thermal")),
     "/schema/attributes/temperature is not a JSON Schema"),
    (broken(lambda d: d["schema"]["attributes"]["temperature"].update(property="lwm2m:5700")),
     "does not match"),
    (broken(lambda d: d["reportingRules"].append({"path": "$.attributes.pressure", "reportTo": ["timeseries"]})),
     "reporting rule $.attributes.pressure names no declared attributes field"),
    (broken(lambda d: d["reportingRules"].append({"path": "$.info.name", "reportTo": ["timeseries"]})),
     "does not match"),
    (broken(lambda d: d["schema"].update(telemetry={})), "Additional properties are not allowed"),
    (broken(lambda d: d["categories"].append("lwm2m-3303")), "does not match"),
])
async def test_device_type_documents_are_checked(bare: Bare, document: dict, detail: str) -> None:
    before = await row_counts(bare)
    status, body = await bare.api.request("POST", "/v1/device-types", document)
    assert status == 422 and detail in body["errors"][0]["detail"], body
    assert await row_counts(bare) == before


@pytest.mark.parametrize("body, detail", [
    ({"info": {"name": "d"}}, "'deviceTypeId' is a required property"),
    ({"info": {"name": "d", "deviceTypeId": "TYPE"}, "configuration": {"brightness": 101}},
     "101 is greater than the maximum of 100"),
    ({"info": {"name": "d", "deviceTypeId": "TYPE"}, "configuration": {"color": {"r": 1, "g": 2}}},
     "'b' is a required property"),
    ({"info": {"name": "d", "deviceTypeId": "TYPE"}, "attributes": {"voltage": 3}},
     "('voltage' was unexpected)"),
])
async def test_device_documents_are_checked_against_the_type(bare: Bare, body: dict, detail: str) -> None:
    body = json.loads(json.dumps(body).replace("TYPE", bare.device_type["id"]))
    before = await row_counts(bare)
    status, answer = await bare.api.request("POST", "/v1/devices", body)
    assert status == 422 and detail in answer["errors"][0]["detail"], answer
    assert await row_counts(bare) == before


async def test_devices_referencing_missing_types_or_gateways_are_404(bare: Bare) -> None:
    for info in ({"name": "d", "deviceTypeId": "nope"},
                 {"name": "d", "deviceTypeId": bare.device_type["id"], "connectedBy": "nope"}):
        status, _ = await bare.api.request("POST", "/v1/devices", {"info": info})
        assert status == 404


async def test_actions_are_checked_against_the_type(bare: Bare) -> None:
    path = f"/v1/devices/{bare.device['id']}/actions"
    status, body = await bare.api.request("POST", path, {"action": "selfDestruct"})
    assert status == 422 and "declares no action 'selfDestruct'" in body["errors"][0]["detail"]
    status, body = await bare.api.request("POST", path, {"action": "raiseTemperature",
                                                         "payload": {"value": "hot"}})
    assert status == 422 and "'hot' is not of type 'number'" in body["errors"][0]["detail"]
    sent = await bare.api.ok("POST", path, {"action": "raiseTemperature", "payload": {"value": 3}})
    action = await bare.api.ok("GET", f"{path}/{sent['actionId']}")
    assert action["status"] == "sent" and action["payload"] == {"value": 3}


# -- the installation state machine ------------------------------------------------------------------

async def test_patch_follows_the_state_machine(bare: Bare) -> None:
    firmware = await firmware_with_blob(bare.api, image(500, "states"))
    path = f"/v1/devices/{bare.device['id']}/firmware-installations"
    installation = await bare.api.ok("POST", path, {"firmwareId": firmware["id"], "slot": "firmware"})
    one = f"{path}/{installation['id']}"
    status, body = await bare.api.request("PATCH", one, {"status": "succeeded"})
    assert status == 409 and "scheduled → succeeded is not a valid transition" in body["errors"][0]["detail"]
    status, body = await bare.api.request("PATCH", one, {"status": "canceled"})
    assert status == 422  # cancel is its own request, not a report
    status, body = await bare.api.request("PATCH", one, {"status": "downloading", "progress": {"cnt": -1, "of": 5}})
    assert status == 422 and "/progress/cnt" in body["errors"][0]["pointer"]
    for report in ({"status": "downloading", "progress": {"cnt": 0, "of": 500}},
                   {"status": "downloading", "progress": {"cnt": 250, "of": 500}},
                   {"status": "downloaded"}, {"status": "installing", "progress": {"cnt": 0, "of": 500}},
                   {"status": "succeeded", "details": ["ok"]}):
        current = await bare.api.ok("PATCH", one, report)
    assert [h["status"] for h in current["history"]] == [
        "scheduled", "downloading", "downloaded", "installing", "succeeded"]
    assert current["details"] == ["ok"] and "progress" not in current
    status, body = await bare.api.request("PATCH", one, {"status": "installing"})
    assert status == 410 and body["errors"][0]["currentStatus"] == "succeeded"
    status, body = await bare.api.request("POST", f"{one}/cancel")
    assert status == 410
    device = await bare.api.ok("GET", f"/v1/devices/{bare.device['id']}")
    assert device["slots"]["firmware"]["firmwareId"] == firmware["id"]
    listed = await bare.api.ok("GET", f"{path}?status=succeeded")
    assert [i["id"] for i in listed] == [installation["id"]]


def test_transition_table_has_no_way_out_of_terminal_states() -> None:
    reachable = set().union(*TRANSITIONS.values())
    assert reachable == {"downloading", "downloaded", "installing", "succeeded", "failed"}
    assert not {"succeeded", "failed", "canceled"} & set(TRANSITIONS)


@pytest.mark.parametrize("clock_time, window, wait", [
    ("01:59:30", {"start": "02:00", "end": "04:00"}, 30),
    ("02:00:00", {"start": "02:00", "end": "04:00"}, 0),
    ("04:00:00", {"start": "02:00", "end": "04:00"}, 22 * 3600),
    ("23:30:00", {"start": "23:00", "end": "01:00"}, 0),
    ("00:59:00", {"start": "23:00", "end": "01:00"}, 0),
    ("01:00:00", {"start": "23:00", "end": "01:00"}, 22 * 3600),
])
def test_maintenance_window_arithmetic(clock_time: str, window: dict, wait: float) -> None:
    h, m, s = (int(x) for x in clock_time.split(":"))
    epoch = 1_700_006_400 + h * 3600 + m * 60 + s  # 2023-11-15T00:00:00Z plus the time of day
    assert seconds_until_window(epoch, window) == wait
    assert seconds_until_window(epoch, None) == 0


# -- the OpenAPI document ------------------------------------------------------------------------------

async def test_openapi_document_is_served_and_matches_docs(bare: Bare) -> None:
    async with bare.session.get(bare.server.url + "/openapi.json") as response:
        served = await response.json()
    assert served["openapi"] == "3.1.0" and served["servers"] == [{"url": bare.server.url}]
    committed = json.loads((DOCS / "olt-openapi.json").read_text())
    assert committed == openapi_document(), (
        "docs/olt-openapi.json is stale: python -m otaharness.servers.olt.openapi > docs/olt-openapi.json")
    assert {k: v for k, v in served.items() if k != "servers"} == committed

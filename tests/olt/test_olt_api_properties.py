"""The OLT REST API under random input (hypothesis), from outside over HTTP: well-formed documents
with wrong values, arbitrary JSON values, hostile JSON (nesting far beyond the limit, 5,000-digit
integers, NaN, lone surrogates, truncated documents), random bytes, random query strings and
Range headers. For every request:

- never a 5xx, and the answer is the API's envelope (``data``, or ``errors`` whose status is the
  response's);
- a refused request (4xx) leaves the stored state exactly as it was (every table compared);
- the server keeps serving (a control request succeeds after each one).

The server runs on its own loop in a thread (``olt_world.LiveServer``), one tenant with a device
type, device, firmware and installation whose ids the strategies use half of the time.
"""

from __future__ import annotations

import http.client
import json
from typing import Any
from urllib.parse import quote, urlsplit

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from olt_world import LiveServer, live_server

from otaharness.protocols.json_input import MAX_DEPTH

TABLES = ("firmwares", "device_types", "devices", "installations", "actions", "events", "timeseries")
SETTINGS = settings(max_examples=200, deadline=None, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@pytest.fixture(scope="module")
def live() -> Any:
    with live_server("olt-properties") as server:
        yield server


def stored_state(live: LiveServer) -> tuple[Any, ...]:
    """Every row of every resource table, and the blobs' sizes."""
    assert live.server is not None
    db = live.server.store.db

    def read() -> tuple[Any, ...]:
        rows = tuple(tuple(db.execute(f"SELECT * FROM {table} ORDER BY rowid").fetchall())
                     for table in TABLES)
        return (*rows, tuple(db.execute("SELECT firmware_id, length(data) FROM blobs").fetchall()))
    return live.call(read)


def send(live: LiveServer, method: str, path: str, body: bytes | None = None,
         headers: dict[str, str | bytes] | None = None) -> tuple[int, str, bytes]:
    url = urlsplit(live.url)
    connection = http.client.HTTPConnection(url.hostname, url.port, timeout=10)
    try:
        sent: dict[str, str | bytes] = {"Authorization": f"Bearer {live.token}", **(headers or {})}
        if body is not None:
            sent.setdefault("Content-Type", "application/json")
        connection.request(method, path, body=body, headers=sent)
        response = connection.getresponse()
        return response.status, response.getheader("Content-Type", ""), response.read()
    finally:
        connection.close()


def check_answer(status: int, content_type: str, raw: bytes) -> Any:
    assert status < 500, (status, raw[:500])
    if status in (204, 206) or (status == 200 and content_type == "application/octet-stream"):
        return None
    assert content_type.startswith("application/json"), (status, content_type, raw[:200])
    answer = json.loads(raw)
    if status >= 400:
        assert answer["errors"][0]["status"] == status, answer
        assert isinstance(answer["errors"][0]["detail"], str) and answer["errors"][0]["detail"]
    else:
        assert "data" in answer, answer
    return answer


def still_serving(live: LiveServer) -> None:
    device_id = live.ids["/v1/devices"][0]
    status, content_type, raw = send(live, "GET", f"/v1/devices/{device_id}")
    assert status == 200 and json.loads(raw)["data"]["id"] == device_id, (status, raw[:300])


# -- strategies ---------------------------------------------------------------------------------------

scalars = (st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1)
           | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=10))
json_values = st.recursive(
    scalars, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner,
                                                                         max_size=3),
    max_leaves=10)


def nested(depth: int, kind: str) -> bytes:
    if kind == "array":
        return b"[" * depth + b"]" * depth
    return b'{"name":' * depth + b'"x"' + b"}" * depth


hostile = st.one_of(
    st.builds(nested, st.integers(MAX_DEPTH + 1, 30_000), st.sampled_from(["array", "object"])),
    st.integers(20, 5000).map(lambda n: b'{"name": "fw", "version": "1", "n": ' + b"9" * n + b"}"),
    st.sampled_from([b'{"name": NaN, "version": "1"}', b'{"name": "a", "version": Infinity}',
                     b'{"name": "\\ud800", "version": "1"}', b'{"\\udfff": 1}', b"{not json",
                     b"\xff\xfe", b"", b"null", b'"x"', b"[]", b'{"a": 1e999}']),
    st.binary(max_size=200),
)


def real_or(key: str, live: LiveServer) -> st.SearchStrategy[str]:
    return st.sampled_from(live.ids[key]) | st.text(max_size=40) | st.just("\ud800".encode(
        "utf-8", "surrogatepass").decode("utf-8", "replace"))


def body_strategies(live: LiveServer) -> dict[str, st.SearchStrategy[Any]]:
    texts = st.text(max_size=30) | json_values
    times = st.sampled_from(["2030-01-01T00:00:00Z", "0001-01-01T00:00:00+01:00",
                             "9999-12-31T23:59:59-23:59", "1990-12-31T23:59:60Z", "soon",
                             "2020-02-30T00:00:00Z", "2020-01-01T00:00:00.123456789Z"]) | texts
    fragments = st.sampled_from([
        {"type": "number"}, {"$ref": "#/nope"}, {"$ref": "file:///etc/hostname"},
        {"$ref": "http://169.254.169.254/latest"}, {"$ref": "#/properties/other/enum"},
        {"$ref": "#/properties/other"}, {"$dynamicRef": "#x"}, {"type": "thermal"},
        {"pattern": "("}, {"properties": {"a": {"$ref": "#"}}}]) | json_values
    return {
        "POST /v1/firmwares": st.fixed_dictionaries(
            {"name": texts, "version": texts},
            optional={"description": texts, "kind": st.sampled_from(["firmware", "kernel"]) | texts}),
        "POST /v1/device-types": st.fixed_dictionaries(
            {"name": texts, "schema": st.fixed_dictionaries({}, optional={
                "configuration": st.fixed_dictionaries({"f": fragments, "other": st.just({"enum": [1]})}),
                "events": st.fixed_dictionaries({"e": fragments})})},
            optional={"reportingRules": st.lists(st.fixed_dictionaries(
                {"path": st.sampled_from(["$.configuration.f", "$.attributes.x"]) | texts,
                 "reportTo": st.just(["timeseries"]) | json_values}), max_size=2),
                "slots": st.dictionaries(st.sampled_from(["firmware", "kernel"]), json_values, max_size=2)}),
        "POST /v1/devices": st.fixed_dictionaries(
            {"info": st.fixed_dictionaries({"name": texts, "deviceTypeId": real_or("/v1/device-types", live)},
                                           optional={"connectedBy": real_or("/v1/devices", live)})},
            optional={"configuration": st.dictionaries(st.sampled_from(["brightness", "color", "x"]),
                                                       json_values, max_size=2)}),
        "PATCH /v1/devices/{id}": st.fixed_dictionaries({}, optional={
            "info": st.dictionaries(st.sampled_from(["name", "tags", "deviceTypeId"]), texts, max_size=2),
            "configuration": st.dictionaries(st.sampled_from(["brightness", "color", "x"]), json_values,
                                             max_size=2)}),
        "POST /v1/devices/{id}/actions": st.fixed_dictionaries(
            {"action": st.sampled_from(["blink", "reboot", "bad name"]) | texts},
            optional={"payload": json_values, "description": texts}),
        "POST /v1/devices/{id}/firmware-installations": st.fixed_dictionaries(
            {"firmwareId": real_or("/v1/firmwares", live),
             "slot": st.sampled_from(["firmware", "bootloader", "configuration", "kernel"]) | texts},
            optional={"schedule": st.fixed_dictionaries({"startAt": times}),
                      "maintenanceWindow": st.fixed_dictionaries(
                          {"start": st.sampled_from(["02:00", "25:00"]) | texts,
                           "end": st.sampled_from(["02:00", "04:00"]) | texts})}),
        "PATCH /v1/devices/{id}/firmware-installations/{installationId}": st.fixed_dictionaries(
            {"status": st.sampled_from(["downloading", "downloaded", "installing", "succeeded",
                                        "failed", "canceled", "bogus"]) | json_values},
            optional={"progress": st.fixed_dictionaries({"cnt": json_values | st.integers(),
                                                         "of": json_values | st.integers()}),
                      "details": st.lists(texts, max_size=3) | json_values}),
    }


def path_of(operation: str, live: LiveServer, real: bool) -> tuple[str, str]:
    method, template = operation.split(" ")
    device_id = live.ids["/v1/devices"][0] if real else "00000000-0000-4000-8000-000000000000"
    return method, template.replace("{id}", device_id).replace(
        "{installationId}", live.ids["installationId"][0])


# -- JSON bodies ------------------------------------------------------------------------------------------

@SETTINGS
@given(data=st.data())
@example(data=None)  # the measured cases, first
def test_json_bodies_never_get_a_5xx_and_refusals_store_nothing(live: LiveServer, data: Any) -> None:
    strategies = body_strategies(live)
    if data is None:
        cases = [("POST /v1/firmwares", nested(30_000, "array")),
                 ("POST /v1/firmwares", b'{"name": "a", "version": "1", "n": ' + b"9" * 5000 + b"}"),
                 ("POST /v1/devices", b'{"info": {"name": "d", "deviceTypeId": "\\ud800"}}')]
    else:
        operation = data.draw(st.sampled_from(sorted(strategies)), label="operation")
        body = data.draw(strategies[operation].map(lambda d: json.dumps(d).encode())
                         | json_values.map(lambda d: json.dumps(d).encode()) | hostile, label="body")
        cases = [(operation, body)]
    for operation, body in cases:
        method, path = path_of(operation, live, real=data is None or data.draw(st.booleans(), label="real"))
        before = stored_state(live)
        status, content_type, raw = send(live, method, path, body)
        check_answer(status, content_type, raw)
        if status >= 400:
            assert stored_state(live) == before, (operation, status, raw[:300])
        still_serving(live)


# -- query strings and headers ------------------------------------------------------------------------

query_values = st.one_of(
    st.text(max_size=20), st.integers().map(str), st.floats().map(str),
    st.sampled_from(["1000000", "1000001", "99999999999999999999999", "1_0", " 1", "١", "",
                     "$.attributes.temperature", "$.configuration.brightness", "2024-01-01T00:00:00Z",
                     "1e999", "nan", "-inf", "canceled", "bogus", "0001-01-01T00:00:00+01:00"]))


@SETTINGS
@given(data=st.data())
def test_query_parameters_and_ranges_never_get_a_5xx_or_change_anything(live: LiveServer, data: Any) -> None:
    device_id = live.ids["/v1/devices"][0]
    path = data.draw(st.sampled_from([
        "/v1/firmwares", "/v1/device-types", "/v1/devices", f"/v1/devices/{device_id}/events",
        f"/v1/devices/{device_id}/timeseries", f"/v1/devices/{device_id}/firmware-installations",
        f"/v1/firmwares/{live.ids['/v1/firmwares'][0]}/blob"]), label="path")
    names = ["page", "pageSize", "status", "path", "from", "to", "x"]
    query = data.draw(st.dictionaries(st.sampled_from(names), query_values, max_size=4), label="query")
    headers = {}
    if path.endswith("/blob"):
        headers["Range"] = data.draw(st.sampled_from(["bytes=0-99", "bytes=-10", "bytes=5000-",
                                                      "bytes=9-3", "bytes=a-b", "items=0-1"])
                                     | st.text(st.characters(min_codepoint=32, max_codepoint=126),
                                               max_size=20), label="range")
    target = path + ("?" + "&".join(f"{quote(k)}={quote(v)}" for k, v in query.items()) if query else "")
    before = stored_state(live)
    status, content_type, raw = send(live, "GET", target, headers=headers)
    check_answer(status, content_type, raw)
    assert status in (200, 206, 400, 404, 416), (target, status, raw[:300])
    assert stored_state(live) == before
    still_serving(live)


# -- the Authorization header ---------------------------------------------------------------------------

# A field value's bytes (RFC 9110 §5.5: visible ASCII, space, tab, obs-text 0x80-0xFF); control
# characters never reach the application (aiohttp's parser answers 400 itself).
header_bytes = st.lists(st.sampled_from([9, *range(32, 127), *range(128, 256)]), max_size=60).map(bytes)


@SETTINGS
@given(authorization=st.one_of(
    header_bytes, header_bytes.map(lambda raw: b"Bearer " + raw),
    st.sampled_from([b"Bearer \xff\xfe", b"Bearer \xc3\xa9t\xc3\xa9", b"bearer  ", b"Basic abc", b""])))
@example(authorization=b"Bearer \xff\xfe")
def test_any_authorization_header_is_401_or_served(live: LiveServer, authorization: bytes) -> None:
    """Header bytes that are not UTF-8 reach the server as lone surrogates: 401, not 500."""
    status, content_type, raw = send(live, "GET", "/v1/firmwares", headers={"Authorization": authorization})
    answer = check_answer(status, content_type, raw)
    if authorization.strip() == f"Bearer {live.token}".encode():
        assert status == 200
    else:
        assert status == 401 and answer["errors"][0]["title"] == "Unauthorized", (authorization, status)
    still_serving(live)

"""Input checked at the door of the OLT REST API: JSON bodies through the project's JSON reader
(400, nothing stored), query parameters exactly as /openapi.json declares them (each boundary
read from the served document and tried on both sides), and device-type fragments whose
references must resolve inside the document (nothing is ever fetched)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from olt_world import Bare, fixture_json

from otaharness.servers.olt import schemas
from otaharness.servers.olt.errors import InvalidDocument

TABLES = ("firmwares", "blobs", "device_types", "devices", "installations", "actions", "events")


def row_counts(bare: Bare) -> dict[str, int]:
    db = bare.server.store.db
    return {table: db.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0] for table in TABLES}


async def served_parameter(bare: Bare, path: str, name: str) -> dict[str, Any]:
    async with bare.session.get(bare.server.url + "/openapi.json") as response:
        document = await response.json()
    operation = document["paths"][path]["get"]
    return next(p for p in operation["parameters"] if p["name"] == name)


# -- JSON bodies ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("path, raw, detail", [
    ("/v1/firmwares", b"[" * 30_000 + b"]" * 30_000, "the body exceeds a JSON limit: nested deeper than 32"),
    ("/v1/firmwares", b'{"name":' * 40 + b'"x"' + b"}" * 40, "nested deeper than 32 levels"),
    ("/v1/firmwares", b'{"name": "a", "version": "1", "n": ' + b"9" * 5000 + b"}",
     "integer of 5000 digits is out of range"),
    ("/v1/firmwares", b'{"name": "a", "version": "1", "n": 9223372036854775808}',
     "integer 9223372036854775808 is out of range"),
    ("/v1/firmwares", b'{"name": NaN, "version": "1"}', "the body is not valid JSON: NaN is not JSON"),
    ("/v1/firmwares", b'{"name": "a", "version": "1", "n": 1e999}', "number 1e999 is out of range"),
    ("/v1/devices", b'{"info": {"name": "d", "deviceTypeId": "\\ud800"}}',
     "the body exceeds a JSON limit: $.info.deviceTypeId: string with a lone surrogate"),
    ("/v1/device-types", b'{"name": "t", "schema": {"configuration": {"\\udfff": {}}}}',
     "$.schema.configuration: key with a lone surrogate"),
])
async def test_hostile_json_is_400_and_stores_nothing(bare: Bare, path: str, raw: bytes, detail: str) -> None:
    before = row_counts(bare)
    status, body = await bare.api.request("POST", path, raw=raw, headers={"Content-Type": "application/json"})
    assert status == 400 and detail in body["errors"][0]["detail"], body
    assert row_counts(bare) == before
    assert (await bare.api.ok("GET", f"/v1/devices/{bare.device['id']}"))["id"] == bare.device["id"]


async def test_the_limits_are_exactly_32_levels_and_64_bit_integers(bare: Bare) -> None:
    """A body may nest 32 levels (the body itself is the first) and hold any signed 64-bit
    integer; one level or one more is 400."""
    device_type = await bare.api.ok("POST", "/v1/device-types", type_with("actions", {"type": "object"}))
    device = await bare.api.ok("POST", "/v1/devices", {"info": {"name": "d", "deviceTypeId": device_type["id"]}})
    path = f"/v1/devices/{device['id']}/actions"

    def payload(levels: int, leaf: int) -> dict[str, Any]:
        value: Any = {"n": leaf}
        for _ in range(levels - 1):
            value = {"d": value}
        return value

    assert (await bare.api.request("POST", path, {"action": "probe", "payload": payload(31, 2**63 - 1)}))[0] == 201
    assert (await bare.api.request("POST", path, {"action": "probe", "payload": payload(1, -(2**63))}))[0] == 201
    for body in ({"action": "probe", "payload": payload(32, 1)},
                 {"action": "probe", "payload": payload(1, 2**63)}):
        status, answer = await bare.api.request("POST", path, body)
        assert status == 400 and answer["errors"][0]["detail"].startswith("the body exceeds a JSON limit")


# -- query parameters against the served document ------------------------------------------------------

async def test_page_boundaries_are_the_documented_ones(bare: Bare) -> None:
    page = (await served_parameter(bare, "/v1/firmwares", "page"))["schema"]
    size = (await served_parameter(bare, "/v1/firmwares", "pageSize"))["schema"]
    assert (page["minimum"], page["maximum"], size["minimum"], size["maximum"]) == (0, 1_000_000, 1, 100)
    for query, status in ((f"page={page['maximum']}", 200), (f"page={page['maximum'] + 1}", 400),
                          (f"page={page['minimum'] - 1}", 400), (f"pageSize={size['maximum']}", 200),
                          (f"pageSize={size['maximum'] + 1}", 400), ("pageSize=0", 400),
                          ("page=" + "9" * 5000, 400), ("page=%201", 400), ("page=1_0", 400),
                          ("page=%D9%A1", 400), ("page=1.0", 400), ("page=", 400)):
        got, body = await bare.api.request("GET", f"/v1/firmwares?{query}")
        assert got == status, (query, body)
        if status == 400:
            assert body["errors"][0]["detail"].startswith("query parameter page"), body


async def test_installation_status_filter_takes_the_documented_values_only(bare: Bare) -> None:
    path = f"/v1/devices/{bare.device['id']}/firmware-installations"
    statuses = (await served_parameter(bare, "/v1/devices/{id}/firmware-installations", "status"))["schema"]["enum"]
    assert statuses == list(schemas.INSTALLATION_STATUSES)
    for status in statuses:
        assert (await bare.api.request("GET", f"{path}?status={status}"))[0] == 200
    for bogus in ("bogus", "", "SCHEDULED", "null"):
        got, body = await bare.api.request("GET", f"{path}?status={quote(bogus)}")
        assert got == 400 and "query parameter status must be one of" in body["errors"][0]["detail"], bogus
    # checked before the device is looked up: a bad query is 400 even for a missing device
    got, _ = await bare.api.request("GET", "/v1/devices/nothing/firmware-installations?status=bogus")
    assert got == 400


async def test_timeseries_path_and_bounds_are_the_documented_ones(bare: Bare) -> None:
    base = f"/v1/devices/{bare.device['id']}/timeseries"
    path = await served_parameter(bare, "/v1/devices/{id}/timeseries", "path")
    assert path["required"] is True and path["schema"]["pattern"] == schemas.REPORTING_PATH_PATTERN
    bound = (await served_parameter(bare, "/v1/devices/{id}/timeseries", "from"))["schema"]
    assert bound["anyOf"] == [{"type": "number"}, {"type": "string", "format": "date-time"}]
    good = "path=" + quote("$.attributes.temperature")
    for query in (good, f"{good}&from=0&to=1e999", f"{good}&from=-1.5e3",
                  f"{good}&from={quote('2024-01-01T00:00:00Z')}&to={quote('2024-01-02T00:00:00+02:00')}"):
        got, body = await bare.api.request("GET", f"{base}?{query}")
        assert got == 200 and body["data"] == [], (query, body)
    for query, detail in (("", "path (a reporting rule's path) is required"),
                          ("path=", "must be a reporting rule's path"),
                          ("path=temperature", "must be a reporting rule's path"),
                          (f"{good}&from=nan", "from must be unix seconds or an RFC 3339"),
                          (f"{good}&to=inf", "to must be unix seconds"),
                          (f"{good}&from=1_0", "from must be"), (f"{good}&from=%201", "from must be"),
                          (f"{good}&from=2024-01-01", "from must be"),
                          (f"{good}&from={quote('1990-12-31T23:59:60Z')}", "from must be")):
        got, body = await bare.api.request("GET", f"{base}?{query}")
        assert got == 400 and detail in body["errors"][0]["detail"], (query, body)


# -- device-type references ------------------------------------------------------------------------------

def type_with(section: str, fragment: Any) -> dict[str, Any]:
    document = fixture_json("osram_switch_type.json")
    document["schema"].setdefault(section, {})["probe"] = fragment
    return document


@pytest.mark.parametrize("section", ["configuration", "events"])
@pytest.mark.parametrize("fragment", [
    {"$ref": "#/nope"}, {"$ref": "http://169.254.169.254/latest/meta-data"},
    {"$ref": "file:///etc/hostname"}, {"$dynamicRef": "#anchor"},
    {"$id": "http://example.com/s", "$ref": "other"}, {"properties": {"a": {"$ref": "#/$defs/missing"}}},
    {"$ref": "#/properties/brightness/maximum"},
])
async def test_a_fragment_whose_reference_does_not_resolve_is_refused(
        bare: Bare, section: str, fragment: dict[str, Any]) -> None:
    before = row_counts(bare)
    status, body = await bare.api.request("POST", "/v1/device-types", type_with(section, fragment))
    error = body["errors"][0]
    assert status == 422 and "does not resolve to a schema" in error["detail"], body
    assert error["pointer"] == f"/schema/{section}/probe"
    assert row_counts(bare) == before


async def test_references_inside_the_document_work(bare: Bare) -> None:
    """The positive control: a fragment may name another of its section (configuration fragments
    are applied inside one object schema) or its own $defs."""
    document = type_with("configuration", {"$ref": "#/properties/brightness"})
    document["schema"]["events"] = {"probe": {"$defs": {"n": {"type": "integer"}},
                                              "properties": {"n": {"$ref": "#/$defs/n"}}}}
    device_type = await bare.api.ok("POST", "/v1/device-types", document)
    device = {"info": {"name": "d", "deviceTypeId": device_type["id"]}}
    await bare.api.ok("POST", "/v1/devices", {**device, "configuration": {"probe": 50}})
    status, body = await bare.api.request("POST", "/v1/devices", {**device, "configuration": {"probe": 500}})
    assert status == 422 and "500 is greater than the maximum of 100" in body["errors"][0]["detail"]


def test_validation_never_retrieves_a_reference(tmp_path: Path) -> None:
    """jsonschema's default registry would read file:// (and fetch http://) references; ours
    must not even for a type stored before the check existed: a schema file that would accept
    the value is never consulted, the reference simply does not resolve (422, not 500)."""
    accepting = tmp_path / "accepting.json"
    accepting.write_text(json.dumps({"type": "integer"}))
    stored_type = {"schema": {"configuration": {"n": {"$ref": accepting.as_uri()}}}}
    with pytest.raises(InvalidDocument, match="reference that does not resolve"):
        schemas.validate_report(stored_type, "configuration", {"n": 5}, "configuration")
    assert schemas.dangling_reference(stored_type["schema"]["configuration"]["n"],
                                      stored_type["schema"]["configuration"]["n"]) == accepting.as_uri()

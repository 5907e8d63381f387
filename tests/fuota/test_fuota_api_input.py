"""What a client sends the FUOTA API never gets a 5xx: the cases of the issue "No 5xx from
anything a client sends", each tried from outside (HTTP against a live server), with its
positive control; unreadable stored rows are reported per campaign; DELETE; /openapi.json."""

from __future__ import annotations

import json
from typing import Any

import pytest
from fuota_live import DEV_EUIS, IMAGE, LiveFuota, good_config

from otaharness.servers.fuota.api import build_app
from otaharness.servers.fuota.openapi import openapi_document

PLACEHOLDER = '"__raw__"'


def body_with(field: str, raw: str) -> bytes:
    """A good POST /campaigns body whose configuration field ``field`` is the JSON text ``raw``
    (which need not be JSON: ``NaN``)."""
    config = good_config(name=f"raw {field}")
    config[field] = "__raw__"
    text = json.dumps({"config": config, "image": IMAGE})
    assert text.count(PLACEHOLDER) == 1
    return text.replace(PLACEHOLDER, raw).encode()


def assert_refused(response: Any, status: int, field: str | None = None) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["Content-Type"].startswith("application/json")
    document = response.json()
    assert isinstance(document["error"], str) and document["error"]
    if field is not None:
        assert document.get("field") == field, document
        assert field in document["error"], document
    return document


def campaigns_still_readable(live: LiveFuota) -> list[dict[str, Any]]:
    response = live.request("GET", "/campaigns")
    assert response.status_code == 200, response.text
    listed = response.json()
    for campaign in listed:
        one = live.request("GET", f"/campaigns/{campaign['id']}")
        assert one.status_code == 200, one.text
    return listed


def test_a_good_body_is_accepted_the_control(live: LiveFuota) -> None:
    response = live.request("POST", "/campaigns", data=body_with("redundancy", "0.5"))
    assert response.status_code == 201, response.text
    campaign = response.json()["id"]
    assert live.request("GET", f"/campaigns/{campaign}").json()["name"] == "raw redundancy"


@pytest.mark.parametrize(("field", "raw"), [
    ("redundancy", "NaN"),
    ("redundancy", "Infinity"),
    ("redundancy", "-Infinity"),
    ("redundancy", "1e999"),
    ("redundancy", "-0.5"),
    ("frequency", '"abc"'),
    ("frequency", "869525050"),  # not a multiple of 100 Hz (TS005 carries 100 Hz units)
    ("name", '{"a": 1}'),
    ("name", '""'),
    ("max_rounds", "1.5"),
    ("max_rounds", "true"),
    ("max_rounds", "0"),
    ("fec", '"no"'),
    ("fec", "1"),
    ("unicast_timeout_s", "-1"),
    ("unicast_timeout_s", "0"),
    ("verification_timeout_s", "-5"),
    ("firmware_version", "-1"),
    ("firmware_version", "4294967296"),
    ("firmware_version", "123456789012345678901234"),
    ("success_threshold", "0"),
    ("session_timeout_exponent", "16"),
    ("kind", '"patch"'),
    ("session_class", '"A"'),
    ("mc_group_id", "4"),
    ("reboot_time", "-1"),
    ("reboot_countdown_s", "16777215"),
    ("data_rate", "16"),
    ("unknown_setting", "1"),
])
def test_a_mistyped_or_out_of_range_setting_is_refused_naming_it(live: LiveFuota, field: str, raw: str) -> None:
    before = campaigns_still_readable(live)
    response = live.request("POST", "/campaigns", data=body_with(field, raw))
    expected_field = "$.config" if field == "unknown_setting" else f"$.config.{field}"
    document = assert_refused(response, 400)
    assert document.get("field") == expected_field or expected_field in document["error"], document
    assert campaigns_still_readable(live) == before  # nothing was stored


@pytest.mark.parametrize(("overrides", "words"), [
    ({"data_rate": 7}, "not a LoRa data rate"),  # DR7 is FSK in EU868
    ({"data_rate": 8}, "has no data rate DR8"),
    ({"frequency": 915_000_000}, "sub-band"),
    ({"frag_size": 250}, "frag_size 250 outside 1..219 for DR5"),
    ({"devices": [{"dev_eui": "0102030405060708", "gen_app_key": "00" * 16}]}, "0102030405060708"),
    ({"devices": [{"dev_eui": f"{DEV_EUIS[0]:016X}", "gen_app_key": "00" * 16},
                  {"dev_eui": DEV_EUIS[0], "gen_app_key": "00" * 16}]}, "listed twice"),
])
def test_a_configuration_the_region_or_network_cannot_carry_is_refused(
        live: LiveFuota, overrides: dict[str, Any], words: str) -> None:
    response = live.request("POST", "/campaigns", json={"config": {**good_config(), **overrides}, "image": IMAGE})
    assert words in assert_refused(response, 400)["error"]


@pytest.mark.parametrize(("body", "field"), [
    pytest.param(b"{nope", None, id="not-json"),
    pytest.param(b"[]", None, id="an-array"),
    pytest.param(b"", None, id="empty"),
    pytest.param(b"\xff\xfe{}", None, id="not-utf8"),
    pytest.param(("[" * 100_000 + "]" * 100_000).encode(), None, id="arrays-nested-100000-deep"),
    pytest.param(('{"config": ' * 5000 + "1" + "}" * 5000).encode(), None, id="objects-nested-5000-deep"),
    pytest.param(json.dumps({"config": good_config(), "image": "not base64!"}).encode(), "$.image", id="image-not-base64"),
    pytest.param(json.dumps({"config": good_config(), "image": "QUJDRA="}).encode(), "$.image", id="image-bad-padding"),
    pytest.param(json.dumps({"config": good_config()}).encode(), None, id="no-image"),
    pytest.param(json.dumps({"config": good_config(name="\ud800"), "image": IMAGE}).encode(), "$.config.name",
                 id="name-lone-surrogate"),
    pytest.param(json.dumps({"config": good_config(), "image": IMAGE, "extra": 1}).encode(), None, id="extra-key"),
    pytest.param(json.dumps({"config": "x" * 2_000_000, "image": IMAGE}).encode(), None, id="over-1-MiB"),
])
def test_a_body_that_is_no_campaign_is_refused(live: LiveFuota, body: bytes, field: str | None) -> None:
    assert_refused(live.request("POST", "/campaigns", data=body), 400, field)
    campaigns_still_readable(live)


@pytest.mark.parametrize(("path", "status"), [
    ("12345678901234567890123", 404),  # 23 digits: beyond SQLite's 64-bit integers
    ("9223372036854775808", 404),
    ("9223372036854775807", 404),
    ("0", 404),
    ("abc", 400),
    ("-1", 400),
    ("1.5", 400),
    ("%20" + "1", 400),
    ("%D9%A1", 400),  # ARABIC-INDIC DIGIT ONE: int() would take it
    ("1_0", 400),
])
def test_a_bad_campaign_id_is_400_or_404(live: LiveFuota, path: str, status: int) -> None:
    for method, suffix in (("GET", ""), ("DELETE", ""), ("POST", "/start"), ("POST", "/stop"), ("GET", "/events"),
                           ("GET", "/report"), ("GET", "/report.png")):
        assert_refused(live.request(method, f"/campaigns/{path}{suffix}"), status)


def test_an_unknown_event_kind_is_refused(live: LiveFuota) -> None:
    campaign = live.create(good_config(name="kinds"))
    assert live.request("GET", f"/campaigns/{campaign}/events?kind=stage").status_code == 200
    assert_refused(live.request("GET", f"/campaigns/{campaign}/events?kind=%ED%A0%80"), 400, "kind")
    assert_refused(live.request("GET", f"/campaigns/{campaign}/events?kind=bogus"), 400, "kind")


def test_a_name_matplotlib_would_read_as_mathtext_still_plots(live: LiveFuota) -> None:
    campaign = live.create(good_config(name=r"$\undefined{$ and $x^$"))
    response = live.request("GET", f"/campaigns/{campaign}/report.png")
    assert response.status_code == 200 and response.content.startswith(b"\x89PNG")


def test_an_unknown_route_or_method_answers_json(live: LiveFuota) -> None:
    assert_refused(live.request("GET", "/nowhere"), 404)
    response = live.request("PUT", "/campaigns")
    assert_refused(response, 405)
    assert "POST" in response.headers["Allow"]


@pytest.mark.parametrize(("column", "value"), [
    ("config", "{"),
    ("config", json.dumps({"name": "x", "devices": [], "firmware_version": 1})),
    ("config", json.dumps(dict(good_config(), redundancy=-1))),
    ("state", "bogus"),
    ("progress", "[]"),
    ("progress", '{"stage": 99}'),
    ("image", "text, not a blob"),
])
def test_a_stored_campaign_that_cannot_be_read_is_reported_alone(live: LiveFuota, column: str, value: str) -> None:
    good = live.create(good_config(name="stays readable"))
    bad = live.create(good_config(name="to be corrupted"))
    live.sql(f"UPDATE campaigns SET {column} = ? WHERE id = ?", value, bad)
    listed = {c["id"]: c for c in campaigns_still_readable(live)}
    assert listed[good]["name"] == "stays readable" and listed[good]["state"] == "created"
    assert listed[bad]["state"] == "unreadable" and str(bad) in listed[bad]["error"], listed[bad]
    assert live.request("GET", f"/campaigns/{bad}").json() == listed[bad]
    for method, suffix in (("POST", "/start"), ("GET", "/report"), ("GET", "/report.png")):
        assert_refused(live.request(method, f"/campaigns/{bad}{suffix}"), 409)
    assert live.request("DELETE", f"/campaigns/{bad}").status_code == 204  # the remedy
    assert_refused(live.request("GET", f"/campaigns/{bad}"), 404)
    assert live.request("GET", f"/campaigns/{good}").json()["state"] == "created"


def test_unreadable_device_rows_and_events_are_reported_alone(live: LiveFuota) -> None:
    good = live.create(good_config(name="readable"))
    bad = live.create(good_config(name="bad devices"))
    live.sql("UPDATE devices SET state = '{\"dev_eui\": 1}' WHERE campaign_id = ?", bad)
    live.sql("INSERT INTO events (campaign_id, at, dev_eui, kind, detail) VALUES (?, 1.0, 'zz', 'note', '[]')", bad)
    listed = {c["id"]: c for c in campaigns_still_readable(live)}
    assert listed[bad]["state"] == "unreadable" and listed[good]["state"] == "created"
    assert_refused(live.request("GET", f"/campaigns/{bad}/events"), 409)
    assert live.request("GET", f"/campaigns/{good}/events").status_code == 200


def test_delete_removes_a_created_campaign_and_404s_an_unknown_one(live: LiveFuota) -> None:
    campaign = live.create(good_config(name="to delete"))
    response = live.request("DELETE", f"/campaigns/{campaign}")
    assert response.status_code == 204 and not response.content
    assert_refused(live.request("GET", f"/campaigns/{campaign}"), 404)
    assert_refused(live.request("DELETE", f"/campaigns/{campaign}"), 404)
    assert campaign not in [c["id"] for c in campaigns_still_readable(live)]
    assert live.create(good_config(name="next")) > campaign  # ids are never reused


def test_openapi_json_is_the_document_and_names_every_route(live: LiveFuota) -> None:
    response = live.request("GET", "/openapi.json")
    assert response.status_code == 200
    assert response.json() == json.loads(json.dumps(openapi_document()))
    documented = {(path, method.upper()) for path, item in openapi_document()["paths"].items()
                  for method in item if method != "parameters"}
    served = {(route.resource.canonical, route.method) for route in build_app(live.server, live.token).router.routes()  # type: ignore[arg-type]
              if route.method != "HEAD" and route.resource is not None}
    assert served == documented


def test_a_campaign_whose_stored_progress_cannot_be_carried_out_does_not_start(live: LiveFuota) -> None:
    campaign = live.create(good_config(name="bad multicast key", devices=(4,)))
    live.sql("UPDATE campaigns SET progress = ? WHERE id = ?", json.dumps({"mc_key": "not hex", "mc_addr": 1}),
             campaign)
    assert "cannot be carried out" in assert_refused(live.request("POST", f"/campaigns/{campaign}/start"), 409)["error"]
    assert live.request("GET", f"/campaigns/{campaign}").json()["state"] == "created"
    assert live.request("DELETE", f"/campaigns/{campaign}").status_code == 204

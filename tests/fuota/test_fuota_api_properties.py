"""Property tests of the FUOTA API's input surface (hypothesis, against a live server): random
well-formed and malformed JSON bodies, settings of every type in every configuration field,
raw non-JSON tokens (NaN, 1e999, 23-digit integers, lone surrogates), deep nesting, garbage
bytes, and random campaign ids and event kinds on every route never get a 5xx; a refusal is a
JSON error; afterwards the server still answers a good request and every stored campaign reads."""

from __future__ import annotations

import json
import urllib.parse
from typing import Any

from fuota_live import IMAGE, LiveFuota, good_config
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from otaharness.servers.fuota.schemas import CONFIG_SCHEMA

FIELDS = sorted(CONFIG_SCHEMA["properties"]) + ["unknown"]
RAW_TOKENS = ["NaN", "Infinity", "-Infinity", "1e999", "-1e999", "123456789012345678901234", "9223372036854775808",
              "-9223372036854775809", '"\\ud800"', '"\\udfff x"', "1.5", "-1", "0", "1e-320", '"abc"', "true",
              "null", "[]", "{}", '{"a": [1]}', "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]"]
PLACEHOLDER = '"__raw__"'

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=12),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=10)


def _dumps(document: Any) -> bytes:
    return json.dumps(document).encode()


@st.composite
def bodies(draw: st.DrawFn) -> bytes:
    """A POST /campaigns body: mostly a good one with something wrong, sometimes good."""
    config = good_config(name=draw(st.text(min_size=1, max_size=20)), devices=draw(st.sampled_from([(0,), (1,), (2, 3)])))
    kind = draw(st.sampled_from(["field", "raw", "drop", "devices", "document", "bytes", "nested", "image", "good"]))
    document: dict[str, Any] = {"config": config, "image": IMAGE}
    if kind == "field":
        config[draw(st.sampled_from(FIELDS))] = draw(json_values)
    elif kind == "raw":
        config[draw(st.sampled_from(FIELDS))] = "__raw__"
        return _dumps(document).replace(PLACEHOLDER.encode(), draw(st.sampled_from(RAW_TOKENS)).encode(), 1)
    elif kind == "drop":
        config.pop(draw(st.sampled_from(["name", "devices", "firmware_version"])))
    elif kind == "devices":
        device = dict(config["devices"][0])
        device[draw(st.sampled_from(["dev_eui", "gen_app_key", "profile", "other"]))] = draw(json_values)
        config["devices"] = [device]
    elif kind == "document":
        return _dumps(draw(json_values))
    elif kind == "bytes":
        return draw(st.binary(max_size=64))
    elif kind == "nested":
        depth = draw(st.sampled_from([33, 1000, 50_000]))
        opener, closer = draw(st.sampled_from([("[", "]"), ('{"a":', "}"), ('{"config":', "}")]))
        return (opener * depth + "1" + closer * depth).encode()
    elif kind == "image":
        document["image"] = draw(json_values | st.text(alphabet="AB=+/!", max_size=12))
    return _dumps(document)


ids = st.one_of(st.integers(min_value=0, max_value=30).map(str),  # campaigns the module created, and some beyond
                st.integers(min_value=-(2**80), max_value=2**80).map(str), st.text(min_size=1, max_size=30),
                st.sampled_from(["1", "2", "01", "1.0", "١", "9" * 23]))
ROUTES = [("GET", ""), ("DELETE", ""), ("POST", "/start"), ("POST", "/stop"), ("GET", "/events"),
          ("GET", "/report")]


@st.composite
def id_requests(draw: st.DrawFn) -> tuple[str, str, str]:
    """(method, the id as sent, path)."""
    method, suffix = draw(st.sampled_from(ROUTES))
    campaign_id = draw(ids)
    path = f"/campaigns/{urllib.parse.quote(campaign_id, safe='')}{suffix}"
    if suffix == "/events" and draw(st.booleans()):
        path += "?kind=" + urllib.parse.quote(draw(st.text(max_size=10) | st.sampled_from(["stage", "answer"])))
    return method, campaign_id, path


def assert_answered(response: Any) -> None:
    assert response.status_code < 500, (response.status_code, response.text[:500])
    if response.status_code >= 400:
        assert response.headers["Content-Type"].startswith("application/json"), response.headers
        assert isinstance(response.json()["error"], str)


def assert_still_serving(live: LiveFuota, reference: int) -> None:
    good = live.request("GET", f"/campaigns/{reference}")
    assert good.status_code == 200 and good.json()["name"] == "reference", good.text
    listed = live.request("GET", "/campaigns")
    assert listed.status_code == 200, listed.text
    unreadable = [c for c in listed.json() if c["state"] == "unreadable"]
    assert not unreadable, unreadable


SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck), database=None)


def test_random_bodies_never_get_a_5xx_and_nothing_stored_breaks(live: LiveFuota) -> None:
    reference = live.create(good_config(name="reference"))
    created: list[int] = []

    @SETTINGS
    @given(body=bodies())
    def check(body: bytes) -> None:
        response = live.request("POST", "/campaigns", data=body, headers={"Content-Type": "application/json"})
        assert_answered(response)
        if response.status_code == 201:
            campaign = response.json()["id"]
            created.append(campaign)
            shown = live.request("GET", f"/campaigns/{campaign}")
            assert shown.status_code == 200 and shown.json()["state"] == "created", shown.text
            assert live.request("GET", f"/campaigns/{campaign}/report").status_code == 200
        else:
            assert response.status_code == 400, response.text
        assert_still_serving(live, reference)

    check()
    assert created, "no generated body was a valid campaign: the strategy lost its positive cases"


def test_random_ids_and_kinds_never_get_a_5xx(live: LiveFuota) -> None:
    reference = live.create(good_config(name="reference", devices=(5,)))

    @SETTINGS
    @given(request=id_requests())
    def check(request: tuple[str, str, str]) -> None:
        method, campaign_id, path = request
        if campaign_id.isascii() and campaign_id.isdigit() and int(campaign_id) == reference and method != "GET":
            return  # the reference campaign stays as it is
        response = live.request(method, path)
        assert_answered(response)
        assert_still_serving(live, reference)

    check()

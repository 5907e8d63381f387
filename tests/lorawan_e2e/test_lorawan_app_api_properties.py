"""Property tests of the LoRaWAN application API's input, against the live back end: bodies
well-formed and malformed (wrong types, out-of-range and huge numbers, deep nesting, NaN, unknown
fields, not JSON) for every operation that takes one.

* never a 5xx, and no ERROR log line from the servers;
* a refused request stores nothing: no device, no group, the queue and the frames as before;
* an accepted request stored what it said;
* afterwards a good request is still served.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from lorawan_live import ErrorLog, LiveLoRaWAN, live_lorawan

from otaharness.protocols.lorawan import EU868

EXAMPLES = settings(max_examples=100, deadline=None, database=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
ABP_DEVICE = "0004A30B001C0001"
GROUP = "fleet"
TIMEOUT = 10

json_scalars = (st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1)
                | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=20))
json_values = st.recursive(json_scalars, lambda inner: st.lists(inner, max_size=3)
                           | st.dictionaries(st.text(max_size=8), inner, max_size=3), max_leaves=8)
HOSTILE_VALUES = ["NaN", "Infinity", "1e999", "9" * 25, "-" + "9" * 400, "[" * 40 + "]" * 40, "[" * 3000]
EUIS = st.integers(0, 2**64 - 1)
eui_texts = (EUIS.map(lambda eui: f"{eui:016X}") | EUIS.map(lambda eui: "-".join(f"{eui:016x}"[i:i + 2]
                                                                               for i in range(0, 16, 2)))
             | st.sampled_from(["::1", "1", "01:02"]))
bad_eui_texts = st.text(alphabet="0123456789abcdefx:- ", max_size=25).filter(lambda t: not t or "x" in t or " " in t
                                                                             or len(t) > 23) | json_values


def hex_of(size: int) -> st.SearchStrategy[str]:
    return st.binary(min_size=size, max_size=size).map(lambda data: data.hex().upper())


def bad_hex_of(size: int) -> st.SearchStrategy[Any]:
    return (st.binary(max_size=size + 2).filter(lambda data: len(data) != size).map(bytes.hex)
            | st.text(max_size=8) | hex_of(size).map(lambda text: text + "\n") | json_values)


CLASSES = st.sampled_from(["A", "C"])
FPORTS, BAD_FPORTS = st.integers(1, 255), st.integers(-3, 0) | st.integers(256, 2**63 - 1) | st.floats(1.5, 2.5)
PAYLOADS = st.binary(max_size=222).map(bytes.hex)
BAD_PAYLOADS = st.binary(min_size=223, max_size=240).map(bytes.hex) | st.sampled_from(["0", "00 11", "0011\n", "zz"])
FREQUENCIES = st.sampled_from(EU868.sub_bands).flatmap(lambda band: st.integers(band.low_hz, band.high_hz - 1))
BAD_FREQUENCIES = st.sampled_from([123, 868_650_000, 870_000_000, 869_300_000]) | st.integers(-(2**63), 862_999_999)

VALID_DEVICES = st.one_of(
    st.fixed_dictionaries({"appKey": hex_of(16)}, optional={"joinEui": eui_texts, "class": CLASSES}),
    st.fixed_dictionaries({"devAddr": hex_of(4), "nwkSKey": hex_of(16), "appSKey": hex_of(16)},
                          optional={"class": CLASSES}))
BAD_DEVICE_FIELDS = {"joinEui": bad_eui_texts, "appKey": bad_hex_of(16), "devAddr": bad_hex_of(4),
                     "nwkSKey": bad_hex_of(16), "appSKey": bad_hex_of(16),
                     "class": st.sampled_from(["B", "a", ""]) | json_values}
VALID_DOWNLINKS = st.fixed_dictionaries({"fPort": FPORTS, "payload": PAYLOADS}, optional={"confirmed": st.booleans()})
BAD_DOWNLINK_FIELDS = {"fPort": BAD_FPORTS | json_values, "payload": BAD_PAYLOADS | json_values,
                       "confirmed": json_values.filter(lambda value: not isinstance(value, bool))}
VALID_GROUPS = st.fixed_dictionaries(
    {"mcAddr": hex_of(4), "mcNwkSKey": hex_of(16), "mcAppSKey": hex_of(16), "frequency": FREQUENCIES,
     "dr": st.integers(0, 7)}, optional={"fCnt": st.integers(0, 2**32 - 1)})
BAD_GROUP_FIELDS = {"mcAddr": bad_hex_of(4), "mcNwkSKey": bad_hex_of(16), "mcAppSKey": bad_hex_of(16),
                    "frequency": BAD_FREQUENCIES | json_values, "dr": st.integers(8, 99) | st.integers(-9, -1),
                    "fCnt": st.integers(2**32, 2**63 - 1) | st.integers(-5, -1)}
VALID_MULTICASTS = st.fixed_dictionaries({"fPort": FPORTS, "payload": PAYLOADS},
                                         optional={"gateways": st.lists(eui_texts, min_size=1, max_size=3)})
BAD_MULTICAST_FIELDS = {"fPort": BAD_FPORTS | json_values, "payload": BAD_PAYLOADS | json_values,
                        "gateways": st.lists(bad_eui_texts, min_size=1, max_size=2)
                        | st.lists(eui_texts, min_size=65, max_size=66) | json_values}


@st.composite
def bodies(draw: st.DrawFn, valid: st.SearchStrategy[dict[str, Any]],
           bad_fields: dict[str, st.SearchStrategy[Any]]) -> bytes:
    """A valid body (half the time), or one with a field made invalid, replaced by any JSON or
    left out, an unknown field, hostile JSON text, or no JSON object at all."""
    document = draw(valid)
    kind = draw(st.sampled_from(["valid"] * 7 + ["bad field", "bad field", "other JSON", "missing", "unknown key",
                                                 "hostile", "raw"]))
    if kind == "bad field":
        key = draw(st.sampled_from(sorted(bad_fields)))
        document[key] = draw(bad_fields[key])
    elif kind == "other JSON":
        document[draw(st.sampled_from(sorted(document)))] = draw(json_values)
    elif kind == "missing":
        del document[draw(st.sampled_from(sorted(document)))]
    elif kind == "unknown key":
        document[draw(st.text(max_size=10))] = draw(json_values)
    elif kind == "hostile":
        text = json.dumps(document)
        key = draw(st.sampled_from(sorted(document)))
        return text.replace(f'"{key}": {json.dumps(document[key])}',
                            f'"{key}": {draw(st.sampled_from(HOSTILE_VALUES))}', 1).encode()
    elif kind == "raw":
        return draw(st.binary(max_size=100) | json_values.map(lambda value: json.dumps(value).encode()))
    event(f"body: {kind}")
    return json.dumps(document).encode()


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LiveLoRaWAN, ErrorLog]]:
    with live_lorawan(Path(tmp_path_factory.mktemp("lorawan-properties"))) as (server, errors):
        with requests.Session() as http:
            http.trust_env = False
            http.headers["Authorization"] = f"Bearer {server.token}"
            assert http.put(f"{server.app}/api/devices/{ABP_DEVICE}", timeout=TIMEOUT, json={
                "devAddr": "26011B01", "nwkSKey": "00" * 16, "appSKey": "11" * 16}).status_code == 201
            assert http.put(f"{server.app}/api/multicast-groups/{GROUP}", timeout=TIMEOUT, json={
                "mcAddr": "01020304", "mcNwkSKey": "33" * 16, "mcAppSKey": "44" * 16, "frequency": 869525000,
                "dr": 5}).status_code == 201
        yield server, errors


@pytest.fixture(scope="module")
def http(live: tuple[LiveLoRaWAN, ErrorLog]) -> Iterator[requests.Session]:
    with requests.Session() as session:
        session.trust_env = False
        session.headers["Authorization"] = f"Bearer {live[0].token}"
        yield session


def get(http: requests.Session, server: LiveLoRaWAN, path: str) -> tuple[int, Any]:
    reply = http.get(server.app + path, timeout=TIMEOUT)
    return reply.status_code, reply.json()


def assert_healthy(http: requests.Session, server: LiveLoRaWAN, errors: ErrorLog) -> None:
    assert get(http, server, f"/api/devices/{ABP_DEVICE}")[0] == 200
    assert get(http, server, "/api/uplinks/1")[0] == 200
    assert server.gateway_connected()
    assert not errors.lines(), errors.lines()


def refusal(reply: requests.Response) -> str:
    assert reply.headers["Content-Type"].startswith("application/json"), reply.text
    message: str = reply.json()["error"]
    assert message, "a refusal says why"
    return message


@EXAMPLES
@given(eui=st.integers(2**32, 2**64 - 1), body=bodies(VALID_DEVICES, BAD_DEVICE_FIELDS))
def test_device_registration(live: tuple[LiveLoRaWAN, ErrorLog], http: requests.Session, eui: int,
                             body: bytes) -> None:
    server, errors = live
    path = f"/api/devices/{eui:016X}"
    before = get(http, server, path)
    reply = http.put(server.app + path, data=body, timeout=TIMEOUT)
    event(f"HTTP {reply.status_code}")
    assert reply.status_code in (201, 400, 409), (reply.status_code, reply.text)
    if reply.status_code == 201:
        document = json.loads(body)
        device = reply.json()
        assert get(http, server, path) == (200, device)
        assert device["class"] == document.get("class", "A")
        assert device["activation"] == ("OTAA" if "appKey" in document else "ABP")
        if "devAddr" in document:
            assert device["devAddr"] == document["devAddr"].upper()
    else:
        refusal(reply)
        assert get(http, server, path) == before, "a refused registration changed the registry"
    assert_healthy(http, server, errors)


@EXAMPLES
@given(body=bodies(VALID_DOWNLINKS, BAD_DOWNLINK_FIELDS))
def test_downlink_queue(live: tuple[LiveLoRaWAN, ErrorLog], http: requests.Session, body: bytes) -> None:
    server, errors = live
    path = f"/api/devices/{ABP_DEVICE}/queue"
    _, before = get(http, server, path)
    reply = http.post(server.app + path, data=body, timeout=TIMEOUT)
    event(f"HTTP {reply.status_code}")
    assert reply.status_code in (201, 400), (reply.status_code, reply.text)
    _, after = get(http, server, path)
    if reply.status_code == 201:
        document = json.loads(body)
        added = after["queue"][-1]
        assert after["queue"][:-1] == before["queue"] and added["id"] == reply.json()["id"]
        assert (added["fPort"], added["payload"], added["confirmed"]) == (
            document["fPort"], document["payload"].lower(), document.get("confirmed", False))
        assert len(bytes.fromhex(added["payload"])) <= 222
    else:
        refusal(reply)
        assert after == before, "a refused downlink changed the queue"
    assert_healthy(http, server, errors)


@EXAMPLES
@given(name=st.text(alphabet="abcXYZ019._-", min_size=6, max_size=12) | st.text(max_size=70),
       body=bodies(VALID_GROUPS, BAD_GROUP_FIELDS))
def test_multicast_group_creation(live: tuple[LiveLoRaWAN, ErrorLog], http: requests.Session, name: str,
                                  body: bytes) -> None:
    server, errors = live
    path = "/api/multicast-groups/" + requests.utils.quote(name, safe="")
    before = get(http, server, path + "/queue") if name else None
    reply = http.put(server.app + path, data=body, timeout=TIMEOUT)
    event(f"HTTP {reply.status_code}")
    assert reply.status_code in (201, 400, 404, 409), (reply.status_code, reply.text)
    if reply.status_code == 201:
        document = json.loads(body)
        group = reply.json()
        assert (group["name"], group["mcAddr"], group["frequency"], group["dr"], group["fCnt"]) == (
            name, document["mcAddr"].upper(), document["frequency"], document["dr"], document.get("fCnt", 0))
        assert get(http, server, path + "/queue") == (200, {"group": group, "frames": []})
    else:
        refusal(reply)
        if name:
            assert get(http, server, path + "/queue") == before, "a refused group changed the registry"
    assert_healthy(http, server, errors)


@EXAMPLES
@given(body=bodies(VALID_MULTICASTS, BAD_MULTICAST_FIELDS))
def test_multicast_frames(live: tuple[LiveLoRaWAN, ErrorLog], http: requests.Session, body: bytes) -> None:
    server, errors = live
    path = f"/api/multicast-groups/{GROUP}/queue"
    _, before = get(http, server, path)
    reply = http.post(server.app + path, data=body, timeout=TIMEOUT)
    event(f"HTTP {reply.status_code}")
    assert reply.status_code in (202, 400), (reply.status_code, reply.text)
    _, after = get(http, server, path)
    if reply.status_code == 202:
        document = json.loads(body)
        frame = after["frames"][reply.json()["id"]]
        assert len(after["frames"]) == len(before["frames"]) + 1
        assert (frame["fPort"], frame["payload"]) == (document["fPort"], document["payload"].lower())
        assert len(frame["gateways"]) == len(set(frame["gateways"])) >= 1
    else:
        refusal(reply)
        assert len(after["frames"]) == len(before["frames"]), "a refused frame was queued"
    assert_healthy(http, server, errors)


@pytest.mark.parametrize(("method", "path", "body", "names"), [
    ("PUT", "/api/devices/0004A30B001C0FF0", b"[" * 1000, "nested deeper than 32 levels"),
    ("PUT", "/api/devices/0004A30B001C0FF0", b'{"appKey": NaN}', "NaN"),
    ("PUT", "/api/multicast-groups/g9", json.dumps({"mcAddr": "01020304", "mcNwkSKey": "33" * 16,
                                                    "mcAppSKey": "44" * 16, "frequency": 869525000,
                                                    "dr": 99999999999999999999999}).encode(), "out of range"),
    ("PUT", "/api/multicast-groups/g9", json.dumps({"mcAddr": "01020304", "mcNwkSKey": "33" * 16,
                                                    "mcAppSKey": "44" * 16, "frequency": 868650000,
                                                    "dr": 0}).encode(), "$.frequency"),
    ("POST", f"/api/devices/{ABP_DEVICE}/queue", json.dumps({"fPort": 2**40, "payload": ""}).encode(), "$.fPort"),
    ("POST", f"/api/devices/{ABP_DEVICE}/queue", json.dumps({"fPort": 1, "payload": "00" * 223}).encode(),
     "$.payload"),
    ("POST", f"/api/multicast-groups/{GROUP}/queue", json.dumps({"fPort": 1, "payload": "",
                                                                 "gateways": ["::1"] * 65}).encode(), "$.gateways"),
    ("POST", f"/api/devices/{ABP_DEVICE}/queue", json.dumps({"fPort": 1, "payload": "0011\n"}).encode(),
     "'payload' is not hex"),  # Python's reading of the schema's "$" takes a final newline, fromhex too
    ("PUT", "/api/devices/0004A30B001C0FF0", json.dumps({"appKey": "00" * 16 + "\n"}).encode(), "'appKey' is not hex"),
    ("PUT", "/api/multicast-groups/" + "x" * 65, b"{}", "multicast group name"),
    ("GET", "/api/uplinks/1?since=" + "9" * 30, None, "'since'"),
    ("GET", "/api/uplinks/%C2%B2", None, "FPort must be 1..255"),
])
def test_refusals_name_what_is_wrong(live: tuple[LiveLoRaWAN, ErrorLog], http: requests.Session, method: str,
                                     path: str, body: bytes | None, names: str) -> None:
    server, errors = live
    reply = http.request(method, server.app + path, data=body, timeout=TIMEOUT)
    assert reply.status_code == 400 and names in refusal(reply), reply.text
    assert_healthy(http, server, errors)


def test_a_multicast_group_at_the_end_of_its_frame_counter_refuses_more_frames(
        live: tuple[LiveLoRaWAN, ErrorLog], http: requests.Session) -> None:
    """FCnt is 32 bits and never wraps: the last counter value is sent, the frame after it is
    refused at the door (it used to be accepted and then wait forever, unsent)."""
    server, errors = live
    group = "fcnt-end"
    assert http.put(f"{server.app}/api/multicast-groups/{group}", timeout=TIMEOUT, json={
        "mcAddr": "0A0B0C0D", "mcNwkSKey": "55" * 16, "mcAppSKey": "66" * 16, "frequency": 869525000,
        "dr": 5, "fCnt": 2**32 - 1}).status_code == 201
    frame = {"fPort": 200, "payload": "01"}
    assert http.post(f"{server.app}/api/multicast-groups/{group}/queue", json=frame,
                     timeout=TIMEOUT).status_code == 202
    refused = http.post(f"{server.app}/api/multicast-groups/{group}/queue", json=frame, timeout=TIMEOUT)
    assert refused.status_code == 400 and "frame counter" in refusal(refused)
    assert_healthy(http, server, errors)

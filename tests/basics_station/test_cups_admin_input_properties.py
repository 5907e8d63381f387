"""Property tests of what clients send to the CUPS port, against the live server: the station's
``POST /update-info`` and the admin API's JSON bodies, well-formed and malformed.

* never a 5xx: every answer is one of the documented codes;
* a refused admin request stores nothing (the twin reads the same before and after);
* whatever the admin API accepted can be served: the station's next CUPS request gets a 200
  with a reply the station can parse;
* after every request, a good CUPS request from another station is still answered with the
  14-byte "no update".
"""

from __future__ import annotations

import base64
import json
import socket
import time
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from basics_station_live import LiveBasicsStation, start_live
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from otaharness.protocols.basics_station import (
    NO_UPDATE,
    SigningKey,
    UpdateInfoRequest,
    UpdateInfoResponse,
    format_eui,
)
from otaharness.servers.basics_station.registry import StationRecord

EXAMPLES = settings(max_examples=120, deadline=None, database=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
PROBE_STATION, FUZZ_STATION = 1, 2
TIMEOUT = 10

json_scalars = (st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1)
                | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=20))
json_values = st.recursive(json_scalars, lambda inner: st.lists(inner, max_size=3)
                           | st.dictionaries(st.text(max_size=8), inner, max_size=3), max_leaves=8)
# JSON text the stdlib would take but the project's reader refuses (or not JSON at all).
HOSTILE_VALUES = ["NaN", "Infinity", "-Infinity", "1e999", "9" * 30, "-" + "9" * 400, "[" * 40 + "]" * 40,
                  "[" * 2000]
printable = st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), max_size=40)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def probe_request(live: LiveBasicsStation) -> UpdateInfoRequest:
    return UpdateInfoRequest(router=PROBE_STATION, cups_uri=live.cups, tc_uri=live.lns, cups_cred_crc=0x7BD5C66F,
                             tc_cred_crc=0x7BD5C66F, station="2.0.6(linux/std) 2026-01-01 00:00:00", model="linux",
                             package="v1", keys=())


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveBasicsStation]:
    server = start_live(tmp_path_factory.mktemp("cups-properties"))
    server.call(lambda s: s.registry.put(StationRecord(PROBE_STATION, cups_uri=server.cups, tc_uri=server.lns,
                                                       package="v1")))
    server.call(lambda s: s.registry.put(StationRecord(FUZZ_STATION)))
    server.call(lambda s: s.store.add("fw-2", b"#!/bin/sh\nexit 0\n"))
    yield server
    server.stop()


@pytest.fixture(scope="module")
def http(live: LiveBasicsStation) -> Iterator[requests.Session]:
    with requests.Session() as session:
        session.trust_env = False  # no proxy between us and 127.0.0.1
        session.headers["Authorization"] = f"Bearer {live.token}"
        yield session


def update_info(http: requests.Session, live: LiveBasicsStation, body: bytes) -> requests.Response:
    return http.post(live.cups + "/update-info", data=body, timeout=TIMEOUT,
                     headers={"Content-Type": "application/json"})


def assert_still_serving(http: requests.Session, live: LiveBasicsStation) -> None:
    reply = update_info(http, live, probe_request(live).encode())
    assert (reply.status_code, reply.content) == (200, NO_UPDATE)


def twin(http: requests.Session, live: LiveBasicsStation, eui: int = FUZZ_STATION) -> dict[str, Any]:
    reply = http.get(f"{live.cups}/admin/stations/{format_eui(eui, '')}", timeout=TIMEOUT)
    assert reply.status_code == 200, reply.text
    return reply.json()


# --------------------------------------------------------------------------------------------
# POST /update-info


@st.composite
def cups_bodies(draw: st.DrawFn) -> bytes:
    kind = draw(st.sampled_from(["valid", "mutated", "raw", "hostile"]))
    request = UpdateInfoRequest(
        router=draw(st.sampled_from([PROBE_STATION, FUZZ_STATION]) | st.integers(0, 2**64 - 1)),
        cups_uri=draw(st.none() | printable), tc_uri=draw(st.none() | printable),
        cups_cred_crc=draw(st.integers(0, 2**32 - 1)), tc_cred_crc=draw(st.integers(0, 2**32 - 1)),
        station=draw(st.text(max_size=40)), model=draw(st.text(max_size=10)), package=draw(st.none() | printable),
        keys=tuple(draw(st.lists(st.integers(0, 2**32 - 1), max_size=3))))
    if kind == "valid":
        return request.encode()
    document = json.loads(request.to_json())
    if kind == "mutated":
        key = draw(st.sampled_from(sorted(document)))
        if draw(st.booleans()):
            del document[key]
        else:
            document[key] = draw(json_values)
        return json.dumps(document).encode()
    if kind == "hostile":
        key = draw(st.sampled_from(sorted(document)))
        text = json.dumps(document)
        return text.replace(f'"{key}":{json.dumps(document[key])}', f'"{key}":{draw(st.sampled_from(HOSTILE_VALUES))}',
                            1).encode()
    return draw(st.binary(max_size=3000))


@EXAMPLES
@given(body=cups_bodies())
def test_cups_requests_never_get_a_5xx_and_the_server_keeps_serving(live: LiveBasicsStation,
                                                                   http: requests.Session, body: bytes) -> None:
    reply = update_info(http, live, body)
    event(f"HTTP {reply.status_code}")
    assert reply.status_code in (200, 400, 404, 413), (reply.status_code, reply.text)
    if reply.status_code == 200:
        assert reply.headers["Content-Type"] == "application/octet-stream"
        UpdateInfoResponse.decode(reply.content)
    else:
        assert reply.text.strip(), "a refusal says why"
    if len(body) > 2048:
        assert reply.status_code == 413
    assert_still_serving(http, live)


@pytest.mark.parametrize(("body", "names"), [
    (b"[" * 1000, "nested deeper than 32 levels"),
    (b'{"router":NaN}', "NaN is not JSON"),
    (b'{"router":1e999}', "out of range"),
    (b'{"router":' + b"1" * 30 + b"}", "out of range"),
    (json.dumps({"router": "::1", "cupsUri": None, "tcUri": None, "cupsCredCrc": 2**40}).encode(), "'cupsCredCrc'"),
])
def test_cups_refusals_say_what_is_wrong(live: LiveBasicsStation, http: requests.Session, body: bytes,
                                         names: str) -> None:
    reply = update_info(http, live, body)
    assert reply.status_code == 400 and names in reply.text, reply.text
    assert_still_serving(http, live)


# --------------------------------------------------------------------------------------------
# Admin API


ascii_printable = st.characters(min_codepoint=0x21, max_codepoint=0x7E)
URIS = st.none() | st.text(ascii_printable, max_size=255)
BAD_URIS = (st.text(ascii_printable, min_size=256, max_size=300) | st.text(min_size=1, max_size=20).filter(
    lambda text: any(not "!" <= char <= "~" for char in text)) | st.sampled_from(["ws://h:1/x\n", "a b"]) | json_scalars
            .filter(lambda value: value is not None and not isinstance(value, str)))
BLOBS = st.none() | st.binary(max_size=300).map(_b64)
BAD_BLOBS = (st.sampled_from(["%%%", "AAA", "AAgQ=", "AAAA\n", "\u00f4AAA", _b64(bytes(65536))])
             | st.text(max_size=12).filter(lambda text: len(text) % 4 != 0) | st.integers() | st.lists(st.none()))
VALID_STATIONS = st.fixed_dictionaries({}, optional={"cupsUri": URIS, "tcUri": URIS, "cupsCredentials": BLOBS,
                                                     "tcCredentials": BLOBS})
BAD_STATION_FIELDS = {"cupsUri": BAD_URIS, "tcUri": BAD_URIS, "cupsCredentials": BAD_BLOBS, "tcCredentials": BAD_BLOBS}


@st.composite
def admin_bodies(draw: st.DrawFn, valid: st.SearchStrategy[dict[str, Any]],
                 bad_fields: dict[str, st.SearchStrategy[Any]]) -> bytes:
    """A valid body (half the time), or one with a field made invalid, replaced by any JSON or
    left out, an unknown field, hostile JSON text, or no JSON object at all."""
    document = draw(valid)
    kind = draw(st.sampled_from(["valid"] * 7 + ["bad field", "bad field", "other JSON", "missing", "unknown key",
                                                 "hostile", "raw"]))
    if kind == "bad field":
        key = draw(st.sampled_from(sorted(bad_fields)))
        document[key] = draw(bad_fields[key])
    elif kind == "other JSON" and document:
        document[draw(st.sampled_from(sorted(document)))] = draw(json_values)
    elif kind == "missing" and document:
        del document[draw(st.sampled_from(sorted(document)))]
    elif kind == "unknown key":
        document[draw(st.text(max_size=10))] = draw(json_values)
    elif kind == "hostile":
        return ('{"' + draw(st.sampled_from(sorted(bad_fields))) + '":' + draw(st.sampled_from(HOSTILE_VALUES))
                + "}").encode()
    elif kind == "raw":
        return draw(st.binary(max_size=200) | json_values.map(lambda value: json.dumps(value).encode()))
    event(f"body: {kind}")
    return json.dumps(document).encode()


def assert_station_is_served(http: requests.Session, live: LiveBasicsStation, stored: dict[str, Any]) -> None:
    """The fuzzed station's next CUPS request is answered, and the reply carries what is stored."""
    request = UpdateInfoRequest(router=FUZZ_STATION, cups_uri=None, tc_uri=None, cups_cred_crc=0, tc_cred_crc=0,
                                station="2.0.6(linux/std)", model="linux", package="v0", keys=())
    reply = update_info(http, live, request.encode())
    assert reply.status_code == 200, reply.text
    response = UpdateInfoResponse.decode(reply.content)
    assert response.cups_uri == (stored["cupsUri"] or None)
    assert response.tc_uri == (stored["tcUri"] or None)
    assert response.cups_credentials == base64.b64decode(stored["cupsCredentials"])
    assert response.tc_credentials == base64.b64decode(stored["tcCredentials"])


@EXAMPLES
@given(body=admin_bodies(VALID_STATIONS, BAD_STATION_FIELDS))
def test_admin_station_bodies_are_checked_at_the_door(live: LiveBasicsStation, http: requests.Session,
                                                     body: bytes) -> None:
    before = twin(http, live)
    reply = http.put(f"{live.cups}/admin/stations/{format_eui(FUZZ_STATION, '')}", data=body, timeout=TIMEOUT)
    event(f"HTTP {reply.status_code}")
    assert reply.status_code in (200, 400), (reply.status_code, reply.text)
    after = twin(http, live)
    if reply.status_code == 400:
        assert reply.json()["error"], "a refusal says why"
        assert after == before, "a refused request changed the twin"
    else:
        document = json.loads(body)
        for key in ("cupsUri", "tcUri"):
            if key in document:
                assert after[key] == document[key]
        for key in ("cupsCredentials", "tcCredentials"):
            if key in document:
                assert base64.b64decode(after[key]) == base64.b64decode(document[key] or "")
        assert reply.json() == after
    assert_station_is_served(http, live, after)
    assert_still_serving(http, live)


OUR_FIRMWARE_URL = "http://127.0.0.1:1/admin/firmware/fw-2"
VALID_FIRMWARE = st.fixed_dictionaries(
    {"package": st.text(min_size=1, max_size=255)},
    optional={"fwUrl": st.none() | st.just(OUR_FIRMWARE_URL) | st.text(ascii_printable, max_size=60)
              | st.sampled_from(["http://[::1/admin/firmware/fw-2", "http://h/admin/firmware/../x"]),
              "fwKeyChecksum": st.none() | st.integers(0, 2**32 - 1),
              "fwSignature": st.none() | st.just("") | st.binary(min_size=4, max_size=128).map(_b64)})
BAD_FIRMWARE_FIELDS = {
    "package": st.sampled_from(["", None]) | st.text(min_size=256, max_size=260) | st.integers(),
    "fwUrl": st.text(min_size=1, max_size=20).filter(lambda text: any(not "!" <= char <= "~" for char in text))
    | st.just("h" * 2049) | st.integers(),
    "fwKeyChecksum": st.integers(-5, -1) | st.integers(2**32, 2**63 - 1) | st.floats(0.5, 1.5) | st.booleans(),
    "fwSignature": st.binary(min_size=1, max_size=3).map(_b64) | st.binary(min_size=129, max_size=140).map(_b64)
    | BAD_BLOBS,
}


@EXAMPLES
@given(body=admin_bodies(VALID_FIRMWARE, BAD_FIRMWARE_FIELDS))
def test_admin_desired_firmware_bodies_are_checked_at_the_door(live: LiveBasicsStation, http: requests.Session,
                                                              body: bytes) -> None:
    before = twin(http, live)
    reply = http.put(f"{live.cups}/admin/stations/{format_eui(FUZZ_STATION, '')}/cups", data=body, timeout=TIMEOUT)
    event(f"HTTP {reply.status_code}")
    assert reply.status_code in (200, 400), (reply.status_code, reply.text)
    after = twin(http, live)
    if reply.status_code == 400:
        assert reply.json()["error"], "a refusal says why"
        assert after == before, "a refused request changed the twin"
    else:
        document = json.loads(body)
        assert (after["package"], after["fwUrl"], after["fwKeyChecksum"]) == (
            document["package"], document.get("fwUrl"), document.get("fwKeyChecksum"))
    assert_station_is_served(http, live, after)
    assert_still_serving(http, live)


@EXAMPLES
@given(body=admin_bodies(st.fixed_dictionaries({}, optional={"reason": st.none() | st.text(max_size=1000)}),
                         {"reason": st.text(min_size=1001, max_size=1010) | st.integers() | st.lists(st.none())}))
def test_admin_reject_bodies_are_checked_at_the_door(live: LiveBasicsStation, http: requests.Session,
                                                    body: bytes) -> None:
    path = f"{live.cups}/admin/stations/{format_eui(FUZZ_STATION, '')}/reject"
    before = twin(http, live)
    reply = http.put(path, data=body, timeout=TIMEOUT)
    event(f"HTTP {reply.status_code}")
    assert reply.status_code in (200, 400), (reply.status_code, reply.text)
    if reply.status_code == 400:
        assert twin(http, live) == before, "a refused request changed the twin"
    else:
        assert twin(http, live)["lnsRejectReason"] == (json.loads(body).get("reason") or "rejected by the operator")
        assert http.delete(path, timeout=TIMEOUT).status_code == 200
    assert_still_serving(http, live)


def test_accepted_admin_values_are_bounded_by_what_a_cups_reply_carries(live: LiveBasicsStation,
                                                                       http: requests.Session) -> None:
    """Positive controls for the bounds: the largest values are taken and served, one more is refused."""
    station = f"{live.cups}/admin/stations/{format_eui(FUZZ_STATION, '')}"
    for body, status in [
        ({"cupsUri": "h" * 255}, 200), ({"cupsUri": "h" * 256}, 400), ({"tcUri": "ws://h:1/x\n"}, 400),
        ({"tcUri": "ws://h:1/\u00e9"}, 400), ({"cupsCredentials": _b64(bytes(65535))}, 200),
        ({"cupsCredentials": _b64(bytes(65536))}, 400), ({"cupsCredentials": "\u00f4AAA"}, 400),
        ({"cupsCredentials": "AAAA\n"}, 400), ({"cupsCredentials": "AAgQ="}, 400),
        ({"cupsUri": None, "cupsCredentials": None}, 200), ({"cupsuri": "x"}, 400),
    ]:
        reply = http.put(station, json=body, timeout=TIMEOUT)
        assert reply.status_code == status, (body, reply.text)
        assert_station_is_served(http, live, twin(http, live))
    signature = SigningKey.generate().sign(b"update")
    for body, status in [({"package": "v2", "fwSignature": _b64(signature.der), "fwKeyChecksum": signature.key_crc}, 200),
                         # Signatures no station can verify: not DER, too long, or without the key CRC.
                         ({"package": "v2", "fwSignature": _b64(bytes(64)), "fwKeyChecksum": 1}, 400),
                         ({"package": "v2", "fwSignature": _b64(signature.der + b"\0"), "fwKeyChecksum": 1}, 400),
                         ({"package": "v2", "fwSignature": _b64(signature.der)}, 400),
                         ({"package": "v2", "fwSignature": _b64(bytes(129))}, 400),
                         ({"package": "v2", "fwSignature": _b64(bytes(3))}, 400),
                         ({"package": "v2", "fwUrl": "http://[::1/admin/firmware/x"}, 200),  # not ours: no update
                         ({"package": "v2", "fwUrl": "http://h/admin/firmware/\u00e9"}, 400),
                         ({"package": "v2", "fwKeyChecksum": 2**32}, 400), ({"package": "x" * 256}, 400)]:
        reply = http.put(station + "/cups", json=body, timeout=TIMEOUT)
        assert reply.status_code == status, (body, reply.text)
        assert_station_is_served(http, live, twin(http, live))


@pytest.mark.parametrize(("path", "body", "names"), [
    ("", b"[" * 1000, "body nested deeper than 32 levels"),
    ("", b'{"cupsUri": ' + b"[" * 40 + b"]" * 40 + b"}", "nested deeper than 32 levels"),
    ("", b'{"cupsUri": "\\ud800"}', "lone surrogate"),
    ("", b'{"cupsUri": NaN}', "NaN is not JSON"),
    ("/cups", b'{"package": "v1", "fwKeyChecksum": ' + b"9" * 30 + b"}", "out of range"),
    ("/cups", b'{"package": "v1", "fwKeyChecksum": 1e999}', "out of range"),
    ("", json.dumps({"cupsUri": "h" * 256}).encode(), "$.cupsUri"),
    ("", json.dumps({"cupsURI": "http://h:1"}).encode(), "'cupsURI' was unexpected"),
    ("/reject", json.dumps({"reason": "r" * 1001}).encode(), "$.reason"),
])
def test_admin_refusals_say_what_is_wrong(live: LiveBasicsStation, http: requests.Session, path: str, body: bytes,
                                          names: str) -> None:
    before = twin(http, live)
    reply = http.put(f"{live.cups}/admin/stations/{format_eui(FUZZ_STATION, '')}{path}", data=body, timeout=TIMEOUT)
    assert reply.status_code == 400 and names in reply.json()["error"], reply.text
    assert twin(http, live) == before
    assert_still_serving(http, live)


def test_firmware_uploads_are_bounded(live: LiveBasicsStation, http: requests.Session) -> None:
    reply = http.put(f"{live.cups}/admin/firmware/too-big", data=bytes(16 * 1024 * 1024 + 1), timeout=60)
    assert reply.status_code == 413 and "exceeded" in reply.json()["error"], reply.text
    reply = http.put(f"{live.cups}/admin/firmware/empty", data=b"", timeout=TIMEOUT)
    assert reply.status_code == 400 and reply.json() == {"error": "firmware body is empty"}
    for name in ("too-big", "empty"):
        assert http.get(f"{live.cups}/admin/firmware/{name}", timeout=TIMEOUT).status_code == 404
    reply = http.put(f"{live.cups}/admin/firmware/a..b", data=b"x", timeout=TIMEOUT)
    assert reply.status_code == 400 and "bad firmware name" in reply.json()["error"]
    assert_still_serving(http, live)


def test_a_large_admin_body_arriving_in_pieces_is_read_whole(live: LiveBasicsStation) -> None:
    body = json.dumps({"cupsCredentials": _b64(bytes([0x30]) + bytes(60000))}).encode()
    host, port = live.cups.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=TIMEOUT) as connection:
        connection.sendall(f"PUT /admin/stations/{format_eui(FUZZ_STATION, '')} HTTP/1.1\r\nHost: {host}\r\n"
                           f"Authorization: Bearer {live.token}\r\n"
                           f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
                           "Connection: close\r\n\r\n".encode())
        for start in range(0, len(body), 4096):
            connection.sendall(body[start:start + 4096])
            time.sleep(0.002)  # each piece its own segment
        answer = b""
        while chunk := connection.recv(65536):
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 200 "), answer[:200]

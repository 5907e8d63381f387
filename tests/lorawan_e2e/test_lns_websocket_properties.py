"""Property tests of the LNS websockets, with the network server attached, against the live back
end: text frames well-formed and malformed (any text, any JSON, station messages with fields
replaced, removed or added, deep nesting, NaN, huge numbers) on ``/router-data/<EUI>`` and
``/router-info``.

* a text frame either is taken (the connection stays up and answers the next message) or closes
  the connection with 1007 (invalid frame payload data) and a reason: never another code, never a
  connection dropped without a close frame;
* no ERROR log line from the servers (a handler or background task failing);
* afterwards the server still serves: a well-behaved station stays connected, and a new data
  connection is answered.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from lorawan_live import VERSION, ErrorLog, LiveLoRaWAN, live_lorawan
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

from otaharness.protocols.basics_station import RouterConfig, RouterInfoResponse, format_eui

EXAMPLES = settings(max_examples=120, deadline=None, database=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
STATION = 0x00000000000000F1  # registered, connected by the tests
UNKNOWN_STATION = 0x00000000000000F2
TIMEOUT = 10
RADIO = {"RefTime": 0.0, "DR": 5, "Freq": 868100000,
         "upinfo": {"rctx": 0, "xtime": 1, "gpstime": 0, "fts": -1, "rssi": -60, "snr": 8.5, "rxtime": 0.0}}
MESSAGES: list[dict[str, Any]] = [
    VERSION,
    {"msgtype": "updf", "MHdr": 64, "DevAddr": 1, "FCtrl": 0, "FCnt": 0, "FOpts": "", "FPort": 1, "FRMPayload": "00",
     "MIC": -1, **RADIO},
    {"msgtype": "jreq", "MHdr": 0, "JoinEui": "00-00-00-00-00-00-00-01", "DevEui": "00-00-00-00-00-00-00-02",
     "DevNonce": 1, "MIC": 5, **RADIO},
    {"msgtype": "rejoin", "MHdr": 192, "JoinEui": "00-00-00-00-00-00-00-01", "DevEui": "00-00-00-00-00-00-00-02",
     "DevNonce": 2, "MIC": 5, **RADIO},
    {"msgtype": "propdf", "FRMPayload": "e0", **RADIO},
    {"msgtype": "dntxed", "diid": 1, "DR": 0, "Freq": 869525000, "DevEui": "00-00-00-00-00-00-00-01", "rctx": 0,
     "xtime": 0, "txtime": 0.0, "gpstime": 0},
    {"msgtype": "timesync", "txtime": 12345},
    {"msgtype": "no-such-message", "x": 1},
]
HOSTILE_VALUES = ["NaN", "Infinity", "-Infinity", "1e999", "9" * 25, "-" + "9" * 400, "[" * 40 + "]" * 40,
                  "[" * 3000, '"\\ud800"']

json_scalars = (st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1)
                | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=20))
json_values = st.recursive(json_scalars, lambda inner: st.lists(inner, max_size=3)
                           | st.dictionaries(st.text(max_size=8), inner, max_size=3), max_leaves=8)


@st.composite
def frames(draw: st.DrawFn) -> str:
    """A station message as sent, or with a field replaced by other JSON, removed, or added, or a
    field's value spelt as JSON the reader refuses; or any JSON; or any text."""
    document = dict(draw(st.sampled_from(MESSAGES)))
    kind = draw(st.sampled_from(["message", "message", "other JSON", "missing", "unknown key", "hostile",
                                 "any JSON", "text"]))
    event(f"frame: {kind}")
    if kind == "other JSON":
        document[draw(st.sampled_from(sorted(document)))] = draw(json_values)
    elif kind == "missing":
        del document[draw(st.sampled_from(sorted(document)))]
    elif kind == "unknown key":
        document[draw(st.text(max_size=10))] = draw(json_values)
    elif kind == "hostile":
        key = draw(st.sampled_from(sorted(document)))
        return json.dumps(document).replace(f'"{key}": {json.dumps(document[key])}',
                                            f'"{key}": {draw(st.sampled_from(HOSTILE_VALUES))}', 1)
    elif kind == "any JSON":
        return json.dumps(draw(json_values))
    elif kind == "text":
        return draw(st.text(max_size=200))
    return json.dumps(document)


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LiveLoRaWAN, ErrorLog]]:
    with live_lorawan(Path(tmp_path_factory.mktemp("lns-properties")), stations=(STATION,)) as running:
        yield running


def data_url(server: LiveLoRaWAN, eui: int = STATION) -> str:
    return f"{server.lns}/router-data/{format_eui(eui, '')}"


def answers(websocket: ClientConnection, txtime: int) -> bool:
    """Send a timesync request and read until its echo: True if it came, False if the server
    closed the connection first (with 1007 and a reason, or the test fails)."""
    try:
        websocket.send(json.dumps({"msgtype": "timesync", "txtime": txtime}))
        while True:
            document = json.loads(websocket.recv(timeout=TIMEOUT))
            if document.get("msgtype") == "timesync" and document.get("txtime") == txtime:
                return True
    except ConnectionClosed as closed:
        assert closed.rcvd is not None, "the server dropped the connection without a close frame"
        assert closed.rcvd.code == 1007 and closed.rcvd.reason, (closed.rcvd.code, closed.rcvd.reason)
        event(f"closed 1007: {closed.rcvd.reason.split(':')[0][:40]}")
        return False


def assert_still_serving(server: LiveLoRaWAN, errors: ErrorLog) -> None:
    with connect(data_url(server), proxy=None, open_timeout=TIMEOUT) as websocket:
        websocket.send(json.dumps(VERSION))
        assert RouterConfig.decode(websocket.recv(timeout=TIMEOUT)).region == "EU868"
    assert server.gateway_connected(), "the well-behaved station lost its connection"
    assert not errors.lines(), errors.lines()


@EXAMPLES
@given(sent=st.lists(frames(), min_size=1, max_size=3), txtime=st.integers(1, 2**40))
def test_data_frames_are_taken_or_refused_with_1007(live: tuple[LiveLoRaWAN, ErrorLog], sent: list[str],
                                                    txtime: int) -> None:
    server, errors = live
    with connect(data_url(server), proxy=None, open_timeout=TIMEOUT, max_size=None) as websocket:
        try:
            for text in sent:
                websocket.send(text)
        except ConnectionClosed:
            pass  # closed by the server after an earlier frame: answers() reads why
        alive = answers(websocket, txtime)
    event("connection kept" if alive else "connection closed with 1007")
    assert_still_serving(server, errors)


@EXAMPLES
@given(text=frames() | st.builds(lambda router: json.dumps({"router": router}), json_values)
       | st.builds(lambda router: json.dumps({"router": router}), st.integers(0, 2**64 - 1).map("{:x}".format))
       | st.sampled_from(['{"router":"::f1"}', '{"router":241}', '{"router":"::f2"}', '{"router":241.0}']))
def test_discovery_answers_or_refuses_with_1007(live: tuple[LiveLoRaWAN, ErrorLog], text: str) -> None:
    server, errors = live
    with connect(server.lns + "/router-info", proxy=None, open_timeout=TIMEOUT) as websocket:
        websocket.send(text)
        try:
            reply = RouterInfoResponse.decode(websocket.recv(timeout=TIMEOUT))
            event("answered: " + ("accepted" if reply.accepted else "error"))
            websocket.recv(timeout=TIMEOUT)
        except ConnectionClosed as closed:
            assert closed.rcvd is not None, "the server dropped the connection without a close frame"
            assert closed.rcvd.code in (1000, 1007), (closed.rcvd.code, closed.rcvd.reason)
            if closed.rcvd.code == 1007:
                event("closed 1007")
                assert closed.rcvd.reason.startswith("bad router-info request: ")
    assert_still_serving(server, errors)


@pytest.mark.parametrize(("text", "reason"), [
    ("[" * 1000, "bad message: nested deeper than 32 levels"),
    ('{"msgtype":"updf","x":' + "[" * 40 + "]" * 40 + "}", "bad message: $.x[0]"),
    ('{"msgtype":"version","station":"\\udc00"}', "bad message: $.station: string with a lone surrogate"),
    ('{"msgtype":"updf","x":' + "[" * 2000 + "]" * 2000 + "}", "bad message: nested deeper than 32 levels"),
    ('{"msgtype":"timesync","txtime":NaN}', "bad message: NaN is not JSON"),
    ('{"msgtype":"timesync","txtime":' + "9" * 30 + "}", "bad message: integer of 30 digits is out of range"),
    ('{"msgtype":"timesync","txtime":1e999}', "bad message: number 1e999 is out of range"),
    ('{"msgtype":"timesync","txtime":"soon"}', "bad timesync: field 'txtime' must be integer"),
    ('{"msgtype":"version","station":"x","firmware":null,"package":7}', "bad version: field 'package'"),
    ('{"msgtype":7}', "expected a JSON object with 'msgtype'"),
    ('{"msgtype":"\u00e9' + "\u00e9" * 100 + '"}', None),  # unknown: kept, logged, connection stays
])
def test_what_the_issue_measured_closes_with_1007_and_names_the_problem(live: tuple[LiveLoRaWAN, ErrorLog], text: str,
                                                                        reason: str | None) -> None:
    server, errors = live
    with connect(data_url(server), proxy=None, open_timeout=TIMEOUT) as websocket:
        websocket.send(text)
        if reason is None:
            assert answers(websocket, 7)
        else:
            with pytest.raises(ConnectionClosed) as closed:
                websocket.recv(timeout=TIMEOUT)
            assert closed.value.rcvd is not None and closed.value.rcvd.code == 1007
            assert reason in closed.value.rcvd.reason, closed.value.rcvd.reason
    assert_still_serving(server, errors)


def test_a_close_reason_is_cut_on_a_character_boundary(live: tuple[LiveLoRaWAN, ErrorLog]) -> None:
    """A reason quoting the client's non-ASCII text is cut to 120 bytes without splitting a
    character (a split one is invalid UTF-8: the client would fail the connection itself)."""
    server, errors = live
    with connect(server.lns + "/router-info", proxy=None, open_timeout=TIMEOUT) as websocket:
        websocket.send(json.dumps({"router": "1" + "\u00e9" * 100}, ensure_ascii=False))
        with pytest.raises(ConnectionClosed) as closed:
            websocket.recv(timeout=TIMEOUT)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1007
    reason = closed.value.rcvd.reason
    assert reason.startswith("bad router-info request: EUI '1\u00e9\u00e9")
    assert reason.endswith("\u00e9") and len(reason.encode()) == 119  # 120 would split an é
    assert_still_serving(server, errors)


def test_an_unknown_station_is_refused_before_the_upgrade(live: tuple[LiveLoRaWAN, ErrorLog]) -> None:
    server, errors = live
    with pytest.raises(Exception, match="404"):
        connect(data_url(server, UNKNOWN_STATION), proxy=None, open_timeout=TIMEOUT)
    assert_still_serving(server, errors)

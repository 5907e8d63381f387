"""CUPS and LNS servers on real sockets: the 14-byte answer, HTTP framing, and bad input.

Runs on a plain asyncio loop with a RealClock (nothing here waits on a timer)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import aiohttp
import pytest
import websockets
from websockets.asyncio.client import connect

from otaharness.protocols.basics_station import NO_UPDATE, RouterConfig, RouterInfoResponse, format_eui
from otaharness.runtime.clock import RealClock
from otaharness.servers.basics_station.registry import StationRecord
from otaharness.servers.basics_station.server import BasicsStationServer

# Fact sheet §1, observed from the real station 2.0.6.
OBSERVED_REQUEST = (
    b'{"router":"::1","cupsUri":"http://127.0.0.1:16040","tcUri":"ws://127.0.0.1:16038",'
    b'"cupsCredCrc":2077607535,"tcCredCrc":2077607535,"station":"2.0.6(linux/testsim) 2026-11-22 14:11:37",'
    b'"model":"linux","package":"v0-test","keys":[488546068]}'
)
# Fact sheet §7.2, observed.
OBSERVED_VERSION = ('{"msgtype":"version","station":"2.0.6(linux/testsim)","firmware":null,"package":null,'
                    '"model":"linux","protocol":2,"features":"rmtsh"}')


@pytest.fixture
async def server(tmp_path: Path):
    server = BasicsStationServer(tmp_path, RealClock())
    await server.start()
    # The observed station: its twin holds exactly what it sends, and the same package.
    server.registry.put(StationRecord(1, cups_uri="http://127.0.0.1:16040", tc_uri="ws://127.0.0.1:16038",
                                      package="V0-TEST"))
    server.registry.put(StationRecord(2))
    yield server
    await server.stop()


async def raw_http(url: str, request: bytes) -> tuple[bytes, bytes]:
    """Send raw bytes, return (head, body) as the station would read them (Content-Length only)."""
    host, port = url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        writer.write(request)
        await writer.drain()
        head = await reader.readuntil(b"\r\n\r\n")
        length = int(next(line.split(b":")[1] for line in head.split(b"\r\n")
                          if line.lower().startswith(b"content-length:")))
        return head, await reader.readexactly(length)
    finally:
        writer.close()


def update_info(body: bytes, *, content_length: int | None = None) -> bytes:
    length = len(body) if content_length is None else content_length
    return (b"POST /update-info HTTP/1.1\r\nHost: 127.0.0.1:16040\r\nContent-Type: application/json\r\n"
            + f"Content-Length: {length:>5}\r\n\r\n".encode() + body)


async def test_equal_versions_get_the_14_byte_no_update_with_content_length(server) -> None:
    head, body = await raw_http(server.endpoints()["cups"], update_info(OBSERVED_REQUEST))
    assert head.startswith(b"HTTP/1.1 200 OK\r\n")
    assert b"\r\nContent-Length: 14\r\n" in head and b"transfer-encoding" not in head.lower()
    assert body == NO_UPDATE == bytes(14)
    # Azure compares packages case-insensitively: "V0-TEST" in the twin equals "v0-test".
    assert server.registry.get(1).last_cups_decision == "no update: station runs the desired package 'V0-TEST'"


@pytest.mark.parametrize(("body", "status", "message"), [
    (b"this is not json", 400, "not valid JSON"),
    (b"[1, 2]", 400, "must be a JSON object"),
    (OBSERVED_REQUEST.replace(b',"keys":[488546068]', b""), 400, "missing field 'keys'"),
    (OBSERVED_REQUEST.replace(b'"package":"v0-test"', b'"package":7'), 400, "field 'package' must be string or null"),
    (OBSERVED_REQUEST.replace(b'"keys":[488546068]', b'"keys":[-1]'), 400, "unsigned 32-bit"),
    (OBSERVED_REQUEST.replace(b'"router":"::1"', b'"router":"::9"'), 404, "unknown station 00-00-00-00-00-00-00-09"),
    (b"x" * 4096, 413, "exceeds 2048"),
])
async def test_bad_cups_requests_get_a_clear_4xx_and_others_are_still_served(server, body, status, message) -> None:
    async with aiohttp.ClientSession() as http:
        async with http.post(server.endpoints()["cups"] + "/update-info", data=body) as response:
            assert response.status == status
            assert message in await response.text()
    _, reply = await raw_http(server.endpoints()["cups"], update_info(OBSERVED_REQUEST))
    assert reply == NO_UPDATE


async def test_cups_refuses_chunked_requests_and_other_methods(server) -> None:
    async def chunks():
        yield OBSERVED_REQUEST

    async with aiohttp.ClientSession() as http:
        async with http.post(server.endpoints()["cups"] + "/update-info", data=chunks()) as response:
            assert response.status == 411 and "Content-Length required" in await response.text()
        async with http.get(server.endpoints()["cups"] + "/update-info") as response:
            assert response.status == 405


async def test_a_lying_huge_content_length_is_refused_before_reading(server) -> None:
    head, body = await raw_http(server.endpoints()["cups"], update_info(b"{}", content_length=99999))
    assert head.startswith(b"HTTP/1.1 413 ") and b"99999 bytes exceeds 2048" in body


async def test_admin_api_rejects_bad_input(server) -> None:
    cups = server.endpoints()["cups"]
    async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {server.admin_token}"}) as http:
        cases = [
            ("PUT", "/admin/stations/not-an-eui!", {"json": {}}, 400, "EUI 'not-an-eui!' contains 'n'"),
            ("PUT", "/admin/stations/::2", {"data": b"{"}, 400, "not JSON"),
            ("PUT", "/admin/stations/::2", {"json": {"tcCredentials": "%%%"}}, 400, "not base64"),
            ("PUT", "/admin/stations/::3/cups", {"json": {"package": "v1"}}, 404, "unknown station"),
            ("PUT", "/admin/stations/::2/cups", {"json": {"package": "v1", "fwKeyChecksum": -1}}, 400,
             "unsigned 32-bit"),
            ("PUT", "/admin/stations/::2/cups", {"json": {"fwUrl": "x"}}, 400, "'package' is required"),
            ("PUT", "/admin/firmware/-bad", {"data": b"x"}, 400, "bad firmware name"),
            ("DELETE", "/admin/firmware/nothing", {}, 404, "no firmware"),
        ]
        for method, path, body, status, message in cases:
            async with http.request(method, cups + path, **body) as response:
                assert (response.status, message in (await response.json())["error"]) == (status, True), message
        async with http.put(f"{cups}/admin/firmware/fw-1", data=b"#!/bin/sh\n") as response:
            assert response.status == 201
        async with http.put(f"{cups}/admin/firmware/fw-1", data=b"other") as response:
            assert response.status == 409
        async with http.get(f"{cups}/admin/firmware/fw-1") as response:
            assert await response.read() == b"#!/bin/sh\n"


# -- LNS ----------------------------------------------------------------------------------------


async def discover(server, text: str | bytes):
    async with connect(server.endpoints()["lns"] + "/router-info", proxy=None) as websocket:
        await websocket.send(text)
        try:
            return await websocket.recv()
        except websockets.ConnectionClosed as closed:
            return closed.rcvd.code, closed.rcvd.reason


async def test_discovery_answers_known_unknown_and_rejected_routers(server) -> None:
    accepted = RouterInfoResponse.decode(await discover(server, '{"router":"::1"}'))
    assert accepted.accepted and accepted.uri == server.endpoints()["lns"] + "/router-data/0000000000000001"
    unknown = json.loads(await discover(server, '{"router":"::5"}'))
    assert unknown == {"router": "::5", "error": "unknown router 00-00-00-00-00-00-00-05"}
    server.registry.update(1, lns_reject_reason="maintenance")
    assert json.loads(await discover(server, '{"router":1}')) == {"router": "::1", "error": "maintenance"}


@pytest.mark.parametrize(("text", "code", "reason"), [
    ("garbage", 1007, "bad router-info request: router-info request is not valid JSON"),
    ('{"router":"xyz!"}', 1007, "bad router-info request: EUI 'xyz!' contains 'x'"),
    ('{"eui":"::1"}', 1007, "bad router-info request: missing field 'router'"),
    (b"\x00\x01", 1003, "binary frames are not part of the protocol"),
])
async def test_discovery_closes_on_garbage(server, text, code, reason) -> None:
    closed_code, closed_reason = await discover(server, text)
    assert closed_code == code and closed_reason.startswith(reason), closed_reason


async def test_data_path_refuses_unknown_bad_and_rejected_routers(server) -> None:
    lns = server.endpoints()["lns"]
    for path, status in (("/router-data/0000000000000009", 404), ("/router-data/zz!", 400)):
        with pytest.raises(websockets.InvalidStatus) as refused:
            async with connect(lns + path, proxy=None):
                pass
        assert refused.value.response.status_code == status
    server.registry.update(2, lns_reject_reason="maintenance")
    with pytest.raises(websockets.InvalidStatus, match="403"):
        async with connect(lns + "/router-data/0000000000000002", proxy=None):
            pass


@pytest.mark.parametrize(("frame", "code"), [
    ("not json {", 1007),
    ('["version"]', 1007),
    ('{"station":"no msgtype"}', 1007),
    ('{"msgtype":"version","station":"2.0.6","firmware":null,"package":7,"model":"linux","protocol":2,'
     '"features":""}', 1007),
    (b"\x01\x02\x03", 1003),
    ("x" * 70000, 1009),
])
async def test_garbage_on_the_data_socket_closes_it_and_others_keep_working(server, frame, code) -> None:
    lns = server.endpoints()["lns"]
    async with connect(lns + "/router-data/0000000000000002", proxy=None, compression=None) as good, \
            connect(lns + "/router-data/0000000000000001", proxy=None, compression=None, max_size=None) as bad:
        await bad.send(frame)
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await asyncio.wait_for(bad.recv(), 5)
        assert closed.value.rcvd.code == code
        await good.send(OBSERVED_VERSION)
        config = RouterConfig.decode(await asyncio.wait_for(good.recv(), 5))
        assert config.region == "EU868" and config.hwspec == "sx1301/1"


async def test_version_is_recorded_and_answered_with_the_eu868_router_config(server) -> None:
    lns = server.endpoints()["lns"]
    version = OBSERVED_VERSION.replace('"firmware":null,"package":null', '"firmware":"v7","package":"v7"')
    fixture = json.loads((Path(__file__).parents[2] / "fixtures/basics_station/eu868_router_config.json").read_text())
    async with connect(lns + "/router-data/0000000000000002", proxy=None) as websocket:
        await websocket.send('{"msgtype":"updf","note":"no handler yet"}')  # kept, logged, ignored
        await websocket.send(version)
        config = json.loads(await asyncio.wait_for(websocket.recv(), 5))
    mux_time = config.pop("MuxTime")
    assert config == fixture
    assert abs(mux_time - RealClock().epoch()) < 60
    assert server.registry.get(2).reported_package == "v7"
    session = server.lns.history[-1]
    assert session.texts == ['{"msgtype":"updf","note":"no handler yet"}', version]
    assert format_eui(session.eui) == "00-00-00-00-00-00-00-02"


async def test_a_handler_can_be_added_per_message_type(server) -> None:
    seen = []

    async def handle_updf(session, message):
        seen.append((session.eui, message["FCnt"]))
        await session.send({"msgtype": "dnmsg", "echo": message["FCnt"]})

    server.lns.on("updf", handle_updf)
    async with connect(server.endpoints()["lns"] + "/router-data/::2".replace("::2", "0000000000000002"),
                       proxy=None) as websocket:
        await websocket.send('{"msgtype":"updf","FCnt":5}')
        assert json.loads(await asyncio.wait_for(websocket.recv(), 5)) == {"msgtype": "dnmsg", "echo": 5}
    assert seen == [(2, 5)]

"""Downlink queues that cannot jam, through the application API (issue: a 300-byte downlink for a
class A device was accepted, never sent, and held every downlink behind it for good).

- A payload no data rate of the device's region and class can carry is refused at enqueue with
  400 naming the maximum (class A: RX1 at the region's fastest rate, 222 octets in EU868; class C:
  its RX2 rate, 51 at DR0).
- One that fits a faster data rate than the current uplink allows waits for such an uplink while
  those behind it go out.
- One that stops fitting (the device's receive settings changed) is dropped with an event and its
  handle cancelled; the queue goes on.
Judged from the device's radio (what it decoded) and the API's queue listing."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web
from lorawan_e2e_world import World, run_world

from otaharness.servers.http_service import serve_app

CLASS_A = 0x0004A30B001C00A1
CLASS_C = 0x0004A30B001C00C1
CONFIRMATION_SECONDS = 5.0  # scenario time for a station's dntxed to reach the network server


async def api_client(world: World) -> tuple[Any, Any]:
    assert world.api is not None
    app = web.Application()
    world.api.add_routes(app)
    site = await serve_app(app)
    http = aiohttp.ClientSession()

    async def call(method: str, path: str, body: Any = None) -> tuple[int, Any]:
        async with http.request(method, site.url + path, json=body) as reply:
            return reply.status, await reply.json()

    async def close() -> None:
        await http.close()
        await site.stop()

    return call, close


async def queue_once_transmitted(world: World, call: Any, dev_eui: int) -> dict[str, Any]:
    """The device's queue listing once no entry is in flight: the station confirms a downlink
    (``dntxed``) at the frame's end, so the device can have decoded it a moment before the network
    server hears that it went out."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + CONFIRMATION_SECONDS
    while True:
        status, body = await call("GET", f"/api/devices/{dev_eui:016X}/queue")
        assert status == 200, body
        if not any(entry["inFlight"] for entry in body["queue"]) or loop.time() >= deadline:
            return body
        await asyncio.sleep(0.1)


async def joined_class_a_device(world: World) -> tuple[Any, list[tuple[int, bytes]]]:
    """A class A device joined through one station, sending at DR0; what its radio decoded."""
    await world.station()
    device = world.device("a", CLASS_A, data_rate=0)
    received: list[tuple[int, bytes]] = []
    device.on_downlink = lambda fport, payload, multicast: received.append((fport, payload))
    assert await device.join()
    return device, received


def test_oversize_refused_bigger_waits_for_a_fast_uplink_and_the_rest_goes_on(tmp_path: Path) -> None:
    async def main(world: World) -> None:
        call, close = await api_client(world)
        try:
            device, received = await joined_class_a_device(world)

            status, body = await call("POST", f"/api/devices/{CLASS_A:016X}/queue",
                                      {"fPort": 3, "payload": "aa" * 300})
            assert status == 400 and "at most 222 octets" in body["error"], body  # the schema's cap
            status, body = await call("POST", f"/api/devices/{CLASS_A:016X}/queue",
                                      {"fPort": 3, "payload": "bb" * 200})
            assert status == 201
            status, body = await call("POST", f"/api/devices/{CLASS_A:016X}/queue",
                                      {"fPort": 4, "payload": "0102"})
            assert status == 201

            await device.send(2, b"slow")  # DR0: RX1 and RX2 carry 51 octets at most
            assert received == [(4, b"\x01\x02")]
            body = await queue_once_transmitted(world, call, CLASS_A)
            assert [entry["fPort"] for entry in body["queue"]] == [3]  # waiting, not jamming

            device.mac.data_rate = 5  # a fast uplink: RX1 at DR5 carries 222
            await device.send(2, b"fast")
            assert received == [(4, b"\x01\x02"), (3, b"\xbb" * 200)]
            body = await queue_once_transmitted(world, call, CLASS_A)
            assert body["queue"] == []
        finally:
            await close()

    run_world(tmp_path, main)


def test_a_downlink_that_stops_fitting_is_dropped_with_an_event(tmp_path: Path) -> None:
    async def main(world: World) -> None:
        assert world.ns is not None
        call, close = await api_client(world)
        try:
            device, received = await joined_class_a_device(world)
            big = world.ns.enqueue_downlink(CLASS_A, 3, b"\xcc" * 200)
            assert (await call("POST", f"/api/devices/{CLASS_A:016X}/queue",
                               {"fPort": 4, "payload": "0304"}))[0] == 201
            # The device's RX1 offset moves to 5 (as an acknowledged RXParamSetup would): from
            # now on every window is DR0, 51 octets; for a DR0 uplink nothing changes on the air.
            world.ns.registry.update(CLASS_A, rx1_dr_offset=5)

            await device.send(2, b"up")
            assert received == [(4, b"\x03\x04")]
            (dropped,) = world.ns.dropped_downlinks
            assert (dropped.queue_id, dropped.dev_eui, dropped.size) == (big.queue_id, CLASS_A, 200)
            assert "at most 51 octets" in dropped.reason
            assert big.transmitted.cancelled()
            body = await queue_once_transmitted(world, call, CLASS_A)
            assert body["queue"] == []
            assert body["dropped"] == [{"id": big.queue_id, "size": 200, "reason": dropped.reason,
                                        "at": dropped.at}]  # the application is told why
            # Still refused at the door from now on.
            status, body = await call("POST", f"/api/devices/{CLASS_A:016X}/queue",
                                      {"fPort": 3, "payload": "dd" * 52})
            assert status == 400 and "at most 51 octets" in body["error"], body
        finally:
            await close()

    run_world(tmp_path, main)


def test_class_c_is_refused_beyond_its_rx2_rate(tmp_path: Path) -> None:
    async def main(world: World) -> None:
        call, close = await api_client(world)
        try:
            otaa = {"joinEui": "70B3D57ED0000001", "appKey": "2b7e151628aed2a6abf7158809cf4f3c", "class": "C"}
            assert (await call("PUT", f"/api/devices/{CLASS_C:016X}", otaa))[0] == 201
            status, body = await call("POST", f"/api/devices/{CLASS_C:016X}/queue",
                                      {"fPort": 3, "payload": "ee" * 52})
            assert status == 400 and "at most 51 octets" in body["error"], body
            assert (await call("POST", f"/api/devices/{CLASS_C:016X}/queue",
                               {"fPort": 3, "payload": "ee" * 51}))[0] == 201
        finally:
            await close()

    run_world(tmp_path, main)

"""The application interface over HTTP: registration, queues, uplink events, multicast, errors."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web
from lorawan_e2e_world import World, run_world


async def serve(world: World) -> tuple[web.AppRunner, str]:
    assert world.api is not None
    app = web.Application()
    world.api.add_routes(app)
    runner = web.AppRunner(app, handle_signals=False, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    return runner, f"http://127.0.0.1:{runner.addresses[0][1]}"


def test_api_round_trip_and_errors(tmp_path: Path) -> None:
    async def main(world: World) -> None:
        runner, base = await serve(world)
        try:
            async with aiohttp.ClientSession() as http:
                async def call(method: str, path: str, body: Any = None) -> tuple[int, Any]:
                    async with http.request(method, base + path, json=body) as reply:
                        return reply.status, await reply.json()

                otaa = {"joinEui": "70B3D57ED0000001", "appKey": "2b7e151628aed2a6abf7158809cf4f3c", "class": "C"}
                assert (await call("PUT", "/api/devices/0004A30B001C0001", otaa))[0] == 201
                status, body = await call("PUT", "/api/devices/0004A30B001C0001", otaa)
                assert status == 409 and "exists" in body["error"]
                assert (await call("PUT", "/api/devices/zz", otaa))[0] == 400
                assert (await call("PUT", "/api/devices/01", {**otaa, "appKey": "00"}))[0] == 400
                assert (await call("PUT", "/api/devices/02", {**otaa, "class": "B"}))[0] == 400
                for raw in (b"{not json", b"[1, 2]"):
                    async with http.put(base + "/api/devices/04", data=raw) as reply:
                        assert reply.status == 400
                        assert "body" in (await reply.json())["error"]
                assert (await call("GET", "/api/devices/04"))[0] == 404  # nothing stored
                abp = {"devAddr": "26011B01", "nwkSKey": "00" * 16, "appSKey": "11" * 16}
                status, body = await call("PUT", "/api/devices/03", abp)
                assert status == 201 and body["devAddr"] == "26011B01" and body["joined"] and body["class"] == "A"
                status, body = await call("GET", "/api/devices/0004A30B001C0001")
                assert status == 200 and body["activation"] == "OTAA" and body["joined"] is False
                assert (await call("GET", "/api/devices/0004A30B001C0099"))[0] == 404
                status, body = await call("POST", "/api/devices/03/queue", {"fPort": 3, "payload": "beef"})
                assert status == 201
                status, body = await call("GET", "/api/devices/03/queue")
                assert body["queue"] == [{"id": 1, "fPort": 3, "payload": "beef", "confirmed": False,
                                          "inFlight": False}]
                for bad in ({"fPort": 0, "payload": "00"}, {"fPort": 3, "payload": "xyz"},
                            {"fPort": 3, "payload": "00", "confirmed": "yes"}):
                    assert (await call("POST", "/api/devices/03/queue", bad))[0] == 400, bad
                assert (await call("POST", "/api/devices/0099/queue", {"fPort": 3, "payload": "00"}))[0] == 404
                status, body = await call("GET", "/api/uplinks/2")
                assert status == 200 and body == {"events": [], "next": 0}
                assert (await call("GET", "/api/uplinks/0"))[0] == 400
                assert (await call("GET", "/api/uplinks/2?since=x"))[0] == 400
                group = {"mcAddr": "01020304", "mcNwkSKey": "22" * 16, "mcAppSKey": "33" * 16,
                         "frequency": 869525000, "dr": 0}
                status, body = await call("PUT", "/api/multicast-groups/g1", group)
                assert status == 201 and body["mcAddr"] == "01020304" and body["fCnt"] == 0
                assert (await call("PUT", "/api/multicast-groups/g1", group))[0] == 409
                assert (await call("PUT", "/api/multicast-groups/g2", {**group, "frequency": 123}))[0] == 400
                status, body = await call("POST", "/api/multicast-groups/g1/queue", {"fPort": 200, "payload": "00"})
                assert status == 400 and "no gateway" in body["error"]  # no station connected
                assert (await call("POST", "/api/multicast-groups/nope/queue", {"fPort": 1, "payload": ""}))[0] == 404
                assert (await call("POST", "/api/devices/03/queue", [1, 2]))[0] == 400
        finally:
            await runner.cleanup()

    run_world(tmp_path, main)

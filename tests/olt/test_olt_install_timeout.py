"""An installation whose device goes silent while installing fails after ``install_timeout``
seconds on the scenario clock (also across a restart), so the slot takes a new installation."""

from __future__ import annotations

import asyncio
import datetime as dt
from pathlib import Path

import aiohttp
from olt_world import Api, fetch_token, fixture_json, image

from otaharness.runtime.clock import VirtualClock, VirtualEventLoop
from otaharness.servers.olt.server import OltServer

START = dt.datetime(2026, 1, 5, tzinfo=dt.UTC)
TIMEOUT = 1800.0


def run_on_virtual_clock(main, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    clock = VirtualClock(START, real_time_limit=20)
    loop = VirtualEventLoop(clock)
    try:
        loop.run_until_complete(main(clock, tmp_path / "olt.sqlite3"))
        assert not [task for task in asyncio.all_tasks(loop) if not task.done()]
    finally:
        loop.run_until_complete(loop.shutdown_default_executor())
        loop.close()


async def _installing(api, device_id: str) -> str:  # type: ignore[no-untyped-def]
    """A new installation brought to ``installing``; its path."""
    firmware = await api.ok("POST", "/v1/firmwares", {"name": "switch firmware", "version": "2.0"})
    await api.ok("PUT", f"/v1/firmwares/{firmware['id']}/blob", raw=image(300, "timeout"),
                 headers={"Content-Type": "application/octet-stream"})
    path = f"/v1/devices/{device_id}/firmware-installations"
    installation = await api.ok("POST", path, {"firmwareId": firmware["id"], "slot": "firmware"})
    one = f"{path}/{installation['id']}"
    for status in ("downloading", "downloaded", "installing"):
        await api.ok("PATCH", one, {"status": status})
    return one


def test_a_silent_installing_installation_fails_and_frees_its_slot(tmp_path: Path) -> None:
    async def main(clock: VirtualClock, database: Path) -> None:
        server = OltServer(database, clock, install_timeout=TIMEOUT)
        await server.start()
        async with aiohttp.ClientSession() as session:
            try:
                tenant = server.backend.create_tenant("acme")

                async def tenant_api() -> Api:  # tokens expire within the hours this test runs
                    return Api(session, server.url, await fetch_token(
                        session, server.url, tenant.client_id, tenant.client_secret))

                api = await tenant_api()
                device_type = await api.ok("POST", "/v1/device-types",
                                           fixture_json("osram_switch_all_slots_type.json"))
                device = await api.ok("POST", "/v1/devices", {
                    "info": {"name": "switch 1", "deviceTypeId": device_type["id"]}})
                one = await _installing(api, device["id"])
                await clock.run_for(TIMEOUT - 60)
                # a progress report moves the deadline: still installing a timeout after it
                await api.ok("PATCH", one, {"status": "installing",
                                            "progress": {"cnt": 100, "of": 300}})
                await clock.run_for(TIMEOUT - 1)
                assert (await api.ok("GET", one))["status"] == "installing"
                status, body = await api.request("POST", one.rsplit("/", 1)[0], {
                    "firmwareId": (await api.ok("GET", one))["firmwareId"], "slot": "firmware"})
                assert status == 409, body
                await clock.run_for(2)
                failed = await api.ok("GET", one)
                assert failed["status"] == "failed"
                assert failed["details"] == [
                    "no report for 1800 s while installing: the device or its gateway is gone"]
                assert [h["status"] for h in failed["history"]][-2:] == ["installing", "failed"]
                status, body = await api.request("PATCH", one, {"status": "succeeded"})
                assert status == 410, body  # a device that comes back late is told it is over

                # killed while installing: the deadline holds across the restart
                second = await _installing(api, device["id"])
                await server.stop()
                await clock.run_for(TIMEOUT + 1)
                server = OltServer(database, clock, install_timeout=TIMEOUT)
                await server.start()
                api = await tenant_api()
                await clock.run_for(0.1)
                assert (await api.ok("GET", second))["status"] == "failed"
            finally:
                await server.stop()

    run_on_virtual_clock(main, tmp_path)

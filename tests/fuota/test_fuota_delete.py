"""DELETE /campaigns/{id} on virtual time: a running campaign is stopped with the seed's stop
cleanup of its stage first and removed once that is over (also across a server restart); two
stops at once run one cleanup; a server restart leaves a campaign it cannot read alone."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import Awaitable
from pathlib import Path
from typing import Any

import aiohttp
from fuota_world import OLD_VERSION, FuotaWorld, image, run_world

from otaharness.api_token_option import authorization_headers
from otaharness.protocols.fuota import firmware_management as ts006
from otaharness.servers.fuota import CampaignState
from otaharness.servers.fuota.api import serve
from otaharness.servers.http_service import new_token


async def settle(world: FuotaWorld, awaitable: Awaitable[Any]) -> Any:
    task = asyncio.ensure_future(awaitable)
    await world.until(task.done)
    return task.result()


class Api:
    def __init__(self, world: FuotaWorld, http: aiohttp.ClientSession, url: str) -> None:
        self.world, self.http, self.url = world, http, url

    async def _call(self, method: str, path: str) -> tuple[int, Any]:
        async with self.http.request(method, self.url + path) as response:
            body = await response.read()
            return response.status, (json.loads(body) if body else None)

    async def __call__(self, method: str, path: str) -> tuple[int, Any]:
        return await settle(self.world, self._call(method, path))


async def with_api(world: FuotaWorld, body: Any) -> Any:
    token = new_token()
    site = await serve(world.fuota, token=token)
    try:
        async with aiohttp.ClientSession(headers=authorization_headers(token)) as http:
            return await body(Api(world, http, site.url))
    finally:
        await site.stop()


def heard(world: FuotaWorld, name: str, since: float) -> list[str]:
    return [type(command).__name__ for at, command, multicast in world.agents[name].received
            if at >= since and not multicast]


def test_delete_of_a_running_campaign_stops_it_with_the_cleanup_then_removes_it(tmp_path: Path) -> None:
    async def main(world: FuotaWorld) -> None:
        world.add_device("a")
        world.add_device("b")
        campaign = world.fuota.create_campaign(world.config(reboot_time=world.clock.epoch() + 5000), image(3000))
        world.fuota.start_campaign(campaign)
        run = world.fuota.runs[campaign]
        await world.until(lambda: run.progress.get("next_fragment", 0) >= 2)  # stage 5

        async def body(api: Api) -> None:
            since = asyncio.get_running_loop().time()
            status, accepted = await api("DELETE", f"/campaigns/{campaign}")
            assert (status, accepted) == (202, {"id": campaign, "state": "stopping", "delete_requested": True})
            status, progress = await api("GET", f"/campaigns/{campaign}")
            assert status == 200 and progress["state"] == "stopping" and progress["delete_requested"] is True
            assert (await api("DELETE", f"/campaigns/{campaign}"))[0] == 202  # still pending: the same answer
            await world.until(lambda: run.cleanup_task is not None and run.cleanup_task.done())
            assert run.state is CampaignState.STOPPED
            assert (await api("GET", f"/campaigns/{campaign}"))[0] == 404
            assert (await api("GET", "/campaigns"))[1] == []
            assert campaign not in world.fuota.runs
            assert not world.fuota.store.events(campaign)
            for name in ("a", "b"):  # the stage 5 cleanup reached the devices before the removal
                assert {"DevRebootTimeReq", "DevDeleteImageReq"} <= set(heard(world, name, since)), name
        await with_api(world, body)
        await world.clock.run_until(None, timeout=6000)  # past the reboot time stage 2 had programmed
        for name, agent in world.agents.items():
            assert agent.firmware_version == OLD_VERSION and agent.reboots == 0, name
            assert agent.flash.data is None, name
    run_world(tmp_path, main)


def test_delete_of_a_finished_campaign_removes_it_at_once(tmp_path: Path) -> None:
    async def main(world: FuotaWorld) -> None:
        world.add_device("a")
        campaign = world.fuota.create_campaign(world.config(), image())
        world.fuota.start_campaign(campaign)
        await world.finish(campaign)

        async def body(api: Api) -> None:
            assert (await api("GET", f"/campaigns/{campaign}"))[1]["state"] == "finished"
            requests_before = len(world.requests(campaign))
            assert await api("DELETE", f"/campaigns/{campaign}") == (204, None)
            assert (await api("GET", f"/campaigns/{campaign}"))[0] == 404
            assert (await api("POST", f"/campaigns/{campaign}/start"))[0] == 404
            assert requests_before > 0 and not world.fuota.store.events(campaign)  # nothing was sent for it
        await with_api(world, body)
    run_world(tmp_path, main)


def test_a_pending_delete_survives_a_restart(tmp_path: Path) -> None:
    async def main(world: FuotaWorld) -> None:
        world.add_device("a")
        campaign = world.fuota.create_campaign(world.config(reboot_time=world.clock.epoch() + 5000), image(3000))
        world.fuota.start_campaign(campaign)
        run = world.fuota.runs[campaign]
        await world.until(lambda: any(d.reboot_programmed for d in run.devices.values()))
        assert await world.fuota.delete_campaign(campaign) is False
        server = await world.restart_fuota()  # the cleanup had not finished
        assert server.store.exists(campaign) and server.runs[campaign].state is CampaignState.STOPPING
        resumed = server.runs[campaign]
        await world.until(lambda: resumed.cleanup_task is not None and resumed.cleanup_task.done())
        assert not server.store.exists(campaign) and campaign not in server.runs
        assert any(isinstance(c, ts006.DevRebootTimeReq) and c.is_cancel for _, c, _ in world.agents["a"].received)
    run_world(tmp_path, main)


def test_two_stops_at_once_run_one_cleanup(tmp_path: Path) -> None:
    async def main(world: FuotaWorld) -> None:
        world.add_device("a")
        campaign = world.fuota.create_campaign(world.config(), image())
        world.fuota.start_campaign(campaign)
        run = world.fuota.runs[campaign]
        await world.until(lambda: run.stage == 3)

        async def body(api: Api) -> None:
            answers = await settle(world, asyncio.gather(api._call("POST", f"/campaigns/{campaign}/stop"),
                                                         api._call("POST", f"/campaigns/{campaign}/stop")))
            assert sorted(status for status, _ in answers) == [202, 409], answers
            await world.finish(campaign)
        await with_api(world, body)
        assert run.state is CampaignState.STOPPED
        assert [e.kind for e in world.fuota.store.events(campaign) if e.kind in ("stop", "cleanup", "stopped")] == [
            "stop", "cleanup", "stopped"]
    run_world(tmp_path, main)


def test_a_restart_leaves_a_running_campaign_it_cannot_read_alone(tmp_path: Path) -> None:
    async def main(world: FuotaWorld) -> None:
        world.add_device("a")
        world.add_device("b")
        bad = world.fuota.create_campaign(world.config(devices=[world.campaign_device("a")]), image())
        good = world.fuota.create_campaign(world.config(devices=[world.campaign_device("b")]), image())
        world.fuota.start_campaign(bad)
        world.fuota.start_campaign(good)
        await world.until(lambda: world.stage(good) == 3)
        with sqlite3.connect(tmp_path / "fuota.sqlite") as db:
            db.execute("UPDATE campaigns SET config = '{' WHERE id = ?", (bad,))
        server = await world.restart_fuota()
        assert bad not in server.runs and server.runs[good].state is CampaignState.RUNNING
        assert server.status(bad)["state"] == "unreadable"
        await world.finish(good)
        assert server.status(good)["devices"]["passed"] == 1
        assert await server.delete_campaign(bad) is True and not server.store.exists(bad)
    run_world(tmp_path, main)

"""The FUOTA HTTP API, its CLI and the report, against a campaign on virtual time."""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
from collections.abc import Awaitable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from fuota_world import FuotaWorld, image, run_world

from otaharness.servers.fuota import CampaignConfig, CampaignError, cli
from otaharness.api_token_option import authorization_headers
from otaharness.servers.fuota.api import serve
from otaharness.servers.http_service import new_token

TOKEN = new_token()
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


async def settle(world: FuotaWorld, awaitable: Awaitable[Any]) -> Any:
    task = asyncio.ensure_future(awaitable)
    await world.until(task.done)
    return task.result()


def test_api_create_start_progress_report_and_errors(tmp_path: Path) -> None:
    async def main(world: FuotaWorld) -> None:
        world.add_device("a")
        site = await serve(world.fuota, token=TOKEN)
        url = site.url
        try:
            async with aiohttp.ClientSession(headers=authorization_headers(TOKEN)) as http:
                async def call(method: str, path: str, **kwargs: Any) -> tuple[int, Any]:
                    async with http.request(method, url + path, **kwargs) as response:
                        body = await response.read()
                        return response.status, (body if response.content_type == "image/png" else json.loads(body))

                config = world.config().to_json()
                document = {"config": config, "image": base64.b64encode(image()).decode()}
                status, created = await settle(world, call("POST", "/campaigns", json=document))
                assert status == 201
                campaign = created["id"]
                assert (await settle(world, call("POST", f"/campaigns/{campaign}/start")))[0] == 202
                assert (await settle(world, call("POST", f"/campaigns/{campaign}/start")))[0] == 409
                await world.until(lambda: world.fuota.runs[campaign].progress.get("next_fragment", 0) > 3)
                status, progress = await settle(world, call("GET", f"/campaigns/{campaign}"))
                assert progress["state"] == "running" and progress["stage"] == 5
                assert progress["fragments_sent"] > 3 and progress["fragments_total"] == 10
                await world.finish(campaign)
                status, progress = await settle(world, call("GET", f"/campaigns/{campaign}"))
                assert progress["devices"]["passed"] == 1
                status, png = await settle(world, call("GET", f"/campaigns/{campaign}/report.png"))
                assert status == 200 and png.startswith(PNG_MAGIC)
                status, report = await settle(world, call("GET", f"/campaigns/{campaign}/report"))
                assert [s["stage"] for s in report["stages"]] == [1, 3, 4, 5, 6, 7]
                assert len(report["fragments"]) == 10
                status, answers = await settle(world, call("GET", f"/campaigns/{campaign}/events?kind=answer"))
                assert {a["command"] for a in answers} >= {"McGroupSetupAns", "DevVersionAns"}
                # bad input
                assert (await settle(world, call("GET", "/campaigns/99")))[0] == 404
                assert (await settle(world, call("POST", "/campaigns", data=b"{nope")))[0] == 400
                bad = {"config": dict(config, success_threshold=2), "image": document["image"]}
                status, error = await settle(world, call("POST", "/campaigns", json=bad))
                assert status == 400 and "success_threshold" in error["error"]
                unknown = {"config": dict(config, devices=[{"dev_eui": "0102030405060708", "gen_app_key": "00" * 16}]),
                           "image": document["image"]}
                assert (await settle(world, call("POST", "/campaigns", json=unknown)))[0] == 400
                assert (await settle(world, call("POST", f"/campaigns/{campaign}/stop")))[0] == 409
        finally:
            await site.stop()
    run_world(tmp_path, main)


def test_cli_creates_starts_stops_and_reports(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    async def main(world: FuotaWorld) -> None:
        world.add_device("a")
        site = await serve(world.fuota, token=TOKEN)
        url = site.url
        parser = argparse.ArgumentParser()
        cli.add_arguments(parser)
        config_file, image_file = tmp_path / "campaign.json", tmp_path / "firmware.bin"
        document = world.config().to_json()
        document["devices"] = [dict(d, dev_eui=f"{d['dev_eui']:016X}") for d in document["devices"]]
        config_file.write_text(json.dumps(document))
        image_file.write_bytes(image())
        try:
            async def command(*argv: str) -> int:
                return await settle(world, cli.run(parser.parse_args(["--url", url, "--token", TOKEN, *argv])))
            assert await command("create", str(config_file), str(image_file)) == 0
            assert await command("start", "1") == 0
            await world.until(lambda: world.fuota.runs[1].stage == 3)
            assert await command("stop", "1") == 0
            await world.finish(1)
            assert await command("show", "1") == 0
            assert await command("report", "1", str(tmp_path / "t.png")) == 0
            assert await command("delete", "1") == 0
            assert not world.fuota.store.exists(1)
        finally:
            await site.stop()
        assert (tmp_path / "t.png").read_bytes().startswith(PNG_MAGIC)
    run_world(tmp_path, main)
    out = capsys.readouterr().out
    assert "campaign 1 'test' (firmware): stopped, stage 3" in out
    assert "failed  campaign stopped in stage 3" in out
    assert "campaign 1: removed" in out


def test_configuration_is_checked() -> None:
    device = {"dev_eui": "0102030405060708", "gen_app_key": "00" * 16}
    with pytest.raises(CampaignError, match="gen_app_key"):
        CampaignConfig.from_json({"name": "x", "firmware_version": 1, "devices": [dict(device, gen_app_key="00")]})
    with pytest.raises(CampaignError, match=r"\$\.devices: \[\] should be non-empty"):
        CampaignConfig.from_json({"name": "x", "firmware_version": 1, "devices": []})
    with pytest.raises(CampaignError, match="frag_size"):
        CampaignConfig.from_json({"name": "x", "firmware_version": 1, "devices": [device], "frag_size": 300,
                                  "data_rate": 0}).fragment_size()
    assert CampaignConfig.from_json({"name": "x", "firmware_version": 1, "devices": [device],
                                     "data_rate": 0}).fragment_size() == 48

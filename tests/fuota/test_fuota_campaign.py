"""FUOTA campaigns end to end on virtual time: network server, FUOTA server, radio, devices."""

from __future__ import annotations

from pathlib import Path

from otaharness.servers.fuota import CampaignState, DeviceStatus, Stage

from fuota_world import NEW_VERSION, FuotaWorld, image, run_world


def test_campaign_with_fec_upgrades_every_device(tmp_path: Path) -> None:
    async def main(world: FuotaWorld) -> None:
        for name in ("a", "b", "c"):
            world.add_device(name)
        campaign = world.fuota.create_campaign(world.config(), image())
        world.fuota.start_campaign(campaign)
        await world.finish(campaign)
        status = world.fuota.status(campaign)
        assert status["state"] == "finished", status
        assert status["devices"]["passed"] == 3, status
        for agent in world.agents.values():
            assert agent.firmware_version == NEW_VERSION
            assert agent.reboots == 1
        stages = [e.detail["stage"] for e in world.fuota.store.events(campaign, "stage") if e.detail["event"] == "start"]
        assert stages == [1, 3, 4, 5, 6, 7]
    run_world(tmp_path, main)


def _debug_dump(world: FuotaWorld, campaign: int) -> None:
    for event in world.fuota.store.events(campaign):
        print(round(event.at - world.fuota.store.get(campaign).created_at, 1), event.dev_eui and hex(event.dev_eui),
              event.kind, event.detail)

"""Stopping a campaign in each stage (the seed's cleanup traffic), server restarts, bad input."""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path

import pytest
from fuota_world import NEW_VERSION, OLD_VERSION, FuotaWorld, image, run_world

from otaharness.emulators.lorawan_device.fuota import SPECIFICATION
from otaharness.protocols.fuota import firmware_management as ts006
from otaharness.protocols.fuota import fragmentation as ts004
from otaharness.protocols.fuota import multicast_setup as ts005
from otaharness.servers.fuota import CampaignState, DeviceStatus, Stage


def requests_after_stop(world: FuotaWorld, campaign: int) -> set[tuple[str, str]]:
    events = world.fuota.store.events(campaign)
    stop = next(index for index, event in enumerate(events) if event.kind == "stop")
    return {(f"{e.dev_eui:016X}", e.detail["command"]) for e in events[stop:] if e.kind == "request"}


def stop_time(world: FuotaWorld, campaign: int) -> float:
    return world.fuota.store.events(campaign, "stop")[0].at


def received(world: FuotaWorld, name: str, command: type) -> list[float]:
    return [at for at, c, _ in world.agents[name].received if isinstance(c, command)]


@pytest.mark.parametrize("stage", [1, 2, 3, 4, 5, 6])
def test_stop_in_stages_1_to_6_sends_exactly_the_seed_cleanup(tmp_path: Path, stage: int) -> None:
    async def main(world: FuotaWorld) -> None:
        world.add_device("a")
        world.add_device("b")
        reboot_time = world.clock.epoch() + 2500
        campaign = world.fuota.create_campaign(world.config(reboot_time=reboot_time), image(3000))
        world.fuota.start_campaign(campaign)
        run = world.fuota.runs[campaign]
        if stage == 2:  # once a reboot is programmed somewhere
            await world.until(lambda: any(d.reboot_programmed for d in run.devices.values()))
        elif stage == 5:  # while fragments go out
            await world.until(lambda: run.progress.get("next_fragment", 0) >= 2)
        else:
            await world.until(lambda: run.stage == stage)
        assert run.stage == stage
        await world.fuota.stop_campaign(campaign)
        await world.finish(campaign)
        assert run.state is CampaignState.STOPPED
        since = stop_time(world, campaign)
        programmed = {f"{e.dev_eui:016X}" for e in world.fuota.store.events(campaign, "request")
                      if e.detail["command"] == "DevRebootTimeReq" and e.at <= since}
        assert bool(programmed) is (stage > 1)
        expected = {(dev, "DevRebootTimeReq") for dev in programmed}
        if stage >= 5:
            expected |= {(f"{d.dev_eui:016X}", "DevDeleteImageReq") for d in run.devices.values()}
        assert requests_after_stop(world, campaign) == expected
        assert not [e for e in world.fuota.store.events(campaign, "fragment") if e.at > since + 5]
        for name, agent in world.agents.items():
            assert not agent.reboot_programmed
            if stage >= 5:
                assert received(world, name, ts006.DevDeleteImageReq)
                assert agent.flash.data is None
            else:
                assert not received(world, name, ts006.DevDeleteImageReq)
        await world.clock.run_for(reboot_time - world.clock.epoch() + 60)  # past the cancelled reboot time
        assert all(agent.reboots == 0 and agent.firmware_version == OLD_VERSION for agent in world.agents.values())
    run_world(tmp_path, main)


@pytest.mark.parametrize("poll_during_session", [False, True])
def test_cleanup_reaches_a_device_in_a_class_c_session(tmp_path: Path, poll_during_session: bool) -> None:
    """Quiet during the session (default): the DevDeleteImageReq arrives after the session times
    out. Polling during the session: it arrives in a class A window inside the session."""
    async def main(world: FuotaWorld) -> None:
        profile = dataclasses.replace(SPECIFICATION, poll_during_session=poll_during_session)
        world.add_device("a", profile=profile, poll_interval_s=10.0)
        campaign = world.fuota.create_campaign(world.config(session_timeout_exponent=9), image(3000))
        world.fuota.start_campaign(campaign)
        run = world.fuota.runs[campaign]
        await world.until(lambda: run.progress.get("next_fragment", 0) >= 2)
        session_start, session_end = run.session_window()
        await world.fuota.stop_campaign(campaign)
        await world.finish(campaign)
        [delivered] = received(world, "a", ts006.DevDeleteImageReq)
        assert delivered > session_start
        assert (delivered < session_end) is poll_during_session
    run_world(tmp_path, main)


def test_stop_during_verification_cancels_what_has_not_rebooted(tmp_path: Path) -> None:
    async def main(world: FuotaWorld) -> None:
        world.add_device("a")
        campaign = world.fuota.create_campaign(world.config(reboot_countdown_s=3000), image())
        world.fuota.start_campaign(campaign)
        run = world.fuota.runs[campaign]
        await world.until(lambda: world.agents["a"].reboot_programmed)
        assert run.stage is Stage.COMPLETION_VERIFICATION
        await world.fuota.stop_campaign(campaign)
        await world.finish(campaign)
        since = stop_time(world, campaign)
        dev = f"{world.dev_eui('a'):016X}"
        assert requests_after_stop(world, campaign) == {(dev, "DevRebootTimeReq"), (dev, "DevDeleteImageReq")}
        notes = [e.detail["text"] for e in world.fuota.store.events(campaign, "note")]
        assert any("0 device(s) already run the new firmware" in note for note in notes)
        await world.clock.run_for(4000)
        agent = world.agents["a"]
        assert agent.reboots == 0 and agent.firmware_version == OLD_VERSION and agent.flash.data is None
    run_world(tmp_path, main)


@pytest.mark.parametrize("stage", [3, 5])
def test_server_restart_resumes_the_campaign(tmp_path: Path, stage: int) -> None:
    async def main(world: FuotaWorld) -> None:
        world.add_device("a")
        world.add_device("b")
        campaign = world.fuota.create_campaign(world.config(), image(3000))
        world.fuota.start_campaign(campaign)
        run = world.fuota.runs[campaign]
        if stage == 5:
            await world.until(lambda: run.progress.get("next_fragment", 0) >= 3)
        else:
            await world.until(lambda: run.stage == stage)
        fuota = await world.restart_fuota()
        assert fuota.runs[campaign] is not run and fuota.runs[campaign].stage == stage
        await world.finish(campaign)
        assert fuota.status(campaign)["devices"]["passed"] == 2
        assert [e.detail["stage"] for e in fuota.store.events(campaign, "resumed")] == [stage]
        sent = [e.detail["n"] for e in fuota.store.events(campaign, "fragment")]
        assert sent == sorted(set(sent)), "a fragment was sent twice"
        assert all(agent.firmware_version == NEW_VERSION for agent in world.agents.values())
    run_world(tmp_path, main)


def test_bad_answers_are_logged_and_ignored(tmp_path: Path) -> None:
    async def main(world: FuotaWorld) -> None:
        agent = world.add_device("a")
        campaign = world.fuota.create_campaign(world.config(), image())
        world.fuota.start_campaign(campaign)
        device = agent.device

        async def send_bad_answers() -> None:
            await device.send(ts005.FPORT, b"\x02")  # McGroupSetupAns without its status octet
            await device.send(ts004.FPORT, b"\x7f\x00")  # unknown CID
            await device.send(ts004.FPORT, ts004.FragSessionSetupAns(frag_index=2).to_bytes())  # another session
            await device.send(ts005.FPORT, ts005.McGroupSetupAns(mc_group_id=3).to_bytes())  # another group
            await device.send(ts006.FPORT, ts006.DevUpgradeImageAns(  # cut short
                up_image_status=ts006.UpImageStatus.VALID, next_firmware_version=NEW_VERSION).to_bytes()[:3])
        sender = asyncio.ensure_future(send_bad_answers())
        await world.until(sender.done)
        sender.result()
        await world.finish(campaign)
        reasons = [e.detail["reason"] for e in world.fuota.store.events(campaign, "rejected")]
        assert len(reasons) == 5, reasons
        assert any("needs 1 payload octets" in r for r in reasons)
        assert any("unknown uplink CID 0x7f" in r for r in reasons)
        assert any("FragIndex 2" in r for r in reasons)
        assert any("McGroupID 3" in r for r in reasons)
        assert world.device_state(campaign, "a").status is DeviceStatus.PASSED
    run_world(tmp_path, main)

"""FUOTA campaigns end to end on virtual time: network server, FUOTA server, radio, devices."""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path

from fuota_world import HW_VERSION, NEW_VERSION, OLD_VERSION, OTHER_KEY, FuotaWorld, image, run_world

from otaharness.emulators.lorawan_device.fuota import LORAMAC_NODE, SPECIFICATION
from otaharness.protocols.fuota.fec import DecoderState
from otaharness.runtime.radio import FixedLoss
from otaharness.servers.fuota import CampaignKind, CampaignState, DeviceStatus, Stage


def stage_starts(world: FuotaWorld, campaign: int) -> list[tuple[int, int]]:
    return [(e.detail["stage"], e.detail["round"]) for e in world.fuota.store.events(campaign, "stage")
            if e.detail["event"] == "start"]


def answers(world: FuotaWorld, campaign: int, name: str, command: str) -> list[dict]:
    return [e.detail for e in world.fuota.store.events(campaign, "answer")
            if e.dev_eui == world.dev_eui(name) and e.detail["command"] == command]


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
            assert agent.flash.data is None  # deleted after the install
        assert stage_starts(world, campaign) == [(1, 1), (3, 1), (4, 1), (5, 1), (6, 1), (7, 1)]
        fragments = world.fuota.store.events(campaign, "fragment")
        block = world.fuota.runs[campaign].block()
        assert [f.detail["n"] for f in fragments] == list(range(1, len(block.fragments) + 1))
        assert block.redundancy == 2  # 20 % of 8 fragments, rounded up
        # paced by the gateway: 10 % duty cycle on 869.525 MHz
        gaps = [b.at - a.at for a, b in zip(fragments, fragments[1:])]
        assert min(gaps) >= 3.5
    run_world(tmp_path, main)


def test_fec_off_with_threshold_runs_a_second_round_for_the_others(tmp_path: Path) -> None:
    async def main(world: FuotaWorld) -> None:
        world.add_device("a")
        world.add_device("b")
        campaign = world.fuota.create_campaign(world.config(fec=False, success_threshold=1.0, max_rounds=2), image())
        world.fuota.start_campaign(campaign)
        world.lossy_during_fragments(campaign, "b", 1.0, rounds=(1,))
        await world.finish(campaign)
        assert stage_starts(world, campaign) == [(1, 1), (3, 1), (4, 1), (5, 1), (6, 1), (3, 2), (4, 2), (5, 2),
                                                  (6, 2), (7, 2)]
        assert world.requests(campaign, world.dev_eui("a")).count("FragSessionSetupReq") == 1
        assert world.requests(campaign, world.dev_eui("b")).count("FragSessionSetupReq") == 2
        assert [a["up_image_status"] for a in answers(world, campaign, "b", "DevUpgradeImageAns")] == [0, 3]
        assert world.fuota.status(campaign)["devices"]["passed"] == 2
        assert world.fuota.runs[campaign].block().redundancy == 0
    run_world(tmp_path, main)


def test_devices_ready_after_round_one_are_verified_when_round_two_has_nobody_left(tmp_path: Path) -> None:
    """Round 2 loses its last device in FragSessionSetup (b hears nothing from then on): a, ready
    since round 1, is still told to reboot and verified, not failed with its image in flash."""
    async def main(world: FuotaWorld) -> None:
        world.add_device("a")
        world.add_device("b")
        campaign = world.fuota.create_campaign(world.config(fec=False, success_threshold=1.0, max_rounds=2), image())
        world.fuota.start_campaign(campaign)
        run = world.fuota.runs[campaign]

        async def b_loses_round_one_fragments_then_everything() -> None:
            while run.state is CampaignState.RUNNING:
                deaf = run.round >= 2 or run.stage is Stage.DL_FRAGMENT
                world.medium.set_loss("b", FixedLoss(1.0) if deaf else None)
                await asyncio.sleep(1.0)
        watch = asyncio.ensure_future(b_loses_round_one_fragments_then_everything())
        await world.finish(campaign)
        watch.cancel()
        starts = stage_starts(world, campaign)
        assert (3, 2) in starts and (4, 2) not in starts and starts[-1] == (7, 2), starts
        state_b = world.device_state(campaign, "b")
        assert state_b.status is DeviceStatus.FAILED and "FragSessionSetupAns" in state_b.reason
        assert world.device_state(campaign, "a").status is DeviceStatus.PASSED
        assert world.agents["a"].firmware_version == NEW_VERSION and world.agents["a"].reboots == 1
    run_world(tmp_path, main)


def test_fec_off_threshold_met_ends_without_a_new_round(tmp_path: Path) -> None:
    async def main(world: FuotaWorld) -> None:
        world.add_device("a")
        world.add_device("b")
        campaign = world.fuota.create_campaign(world.config(fec=False, success_threshold=0.5, max_rounds=3), image())
        world.fuota.start_campaign(campaign)
        world.lossy_during_fragments(campaign, "b", 1.0, rounds=(1, 2, 3))
        await world.finish(campaign)
        assert (3, 2) not in stage_starts(world, campaign)
        assert world.device_state(campaign, "a").status is DeviceStatus.PASSED
        state_b = world.device_state(campaign, "b")
        assert state_b.status is DeviceStatus.FAILED and "after 1 round" in state_b.reason
        assert world.agents["b"].firmware_version == OLD_VERSION
    run_world(tmp_path, main)


def test_losses_are_recovered_by_fec_for_both_status_semantics(tmp_path: Path) -> None:
    async def main(world: FuotaWorld) -> None:
        world.add_device("spec", profile=SPECIFICATION)
        world.add_device("node", profile=LORAMAC_NODE)
        campaign = world.fuota.create_campaign(world.config(redundancy=1.0, max_rounds=1), image(4000))
        world.fuota.start_campaign(campaign)
        world.lossy_during_fragments(campaign, "spec", 0.25)
        world.lossy_during_fragments(campaign, "node", 0.25)
        await world.finish(campaign)
        nb_frag = world.fuota.runs[campaign].block().nb_frag
        for name in ("spec", "node"):
            agent = world.agents[name]
            uncoded = [c for _, c, multicast in agent.received if multicast and getattr(c, "n", 99999) <= nb_frag]
            assert len(uncoded) < nb_frag, f"{name} lost no uncoded fragment: nothing for FEC to do"
            assert world.device_state(campaign, name).status is DeviceStatus.PASSED
            assert agent.firmware_version == NEW_VERSION
        # LoRaMac-node reports the cumulative loss even after recovery; the specification 0
        assert answers(world, campaign, "node", "FragSessionStatusAns")[-1]["missing_frag"] > 0
        assert answers(world, campaign, "spec", "FragSessionStatusAns")[-1]["missing_frag"] == 0
    run_world(tmp_path, main)


def test_device_with_too_much_loss_fails(tmp_path: Path) -> None:
    async def main(world: FuotaWorld) -> None:
        world.add_device("good")
        world.add_device("bad")
        campaign = world.fuota.create_campaign(world.config(redundancy=0.2, max_rounds=1, success_threshold=0.5),
                                               image(4000))
        world.fuota.start_campaign(campaign)
        world.lossy_during_fragments(campaign, "bad", 0.7)
        await world.finish(campaign)
        bad = world.device_state(campaign, "bad")
        assert bad.status is DeviceStatus.FAILED and "no complete image" in bad.reason
        assert answers(world, campaign, "bad", "FragSessionStatusAns")[-1]["missing_frag"] > 0
        assert world.agents["bad"].fragment_state() is DecoderState.RECEIVING
        assert world.agents["bad"].firmware_version == OLD_VERSION
        assert "DevRebootCountdownReq" not in world.requests(campaign, world.dev_eui("bad"))
        assert world.device_state(campaign, "good").status is DeviceStatus.PASSED
    run_world(tmp_path, main)


def test_scheduled_reboot_time(tmp_path: Path) -> None:
    async def main(world: FuotaWorld) -> None:
        world.add_device("a")
        world.add_device("b")
        reboot_at = world.clock.epoch() + 1200
        campaign = world.fuota.create_campaign(world.config(reboot_time=reboot_at), image())
        world.fuota.start_campaign(campaign)
        start_loop = world.clock.monotonic()
        await world.finish(campaign)
        assert stage_starts(world, campaign)[:2] == [(1, 1), (2, 1)]
        for name, agent in world.agents.items():
            reboots = [at for at, what in agent.events if what == "rebooted"]
            assert len(reboots) == 1 and abs(reboots[0] - start_loop - 1200) < 1.0, reboots
            assert answers(world, campaign, name, "DevRebootTimeAns")[0]["reboot_time"] > 1000
            assert world.device_state(campaign, name).status is DeviceStatus.PASSED
        assert "DevRebootCountdownReq" not in world.requests(campaign)
    run_world(tmp_path, main)


def test_bad_signature_and_other_hardware_images_fail(tmp_path: Path) -> None:
    def run(image_bytes: bytes, status: int, reason: str) -> None:
        async def main(world: FuotaWorld) -> None:
            world.add_device("a")
            campaign = world.fuota.create_campaign(world.config(max_rounds=1), image_bytes)
            world.fuota.start_campaign(campaign)
            await world.finish(campaign)
            assert [a["up_image_status"] for a in answers(world, campaign, "a", "DevUpgradeImageAns")] == [status]
            state = world.device_state(campaign, "a")
            assert state.status is DeviceStatus.FAILED and reason in state.reason
            assert world.agents["a"].firmware_version == OLD_VERSION and world.agents["a"].reboots == 0
        run_world(tmp_path / str(status), main)

    (tmp_path / "1").mkdir()
    (tmp_path / "2").mkdir()
    run(image(key=OTHER_KEY), 1, "badly signed")
    run(image(hw=HW_VERSION + 1), 2, "other hardware")


def test_drifting_clock_misses_the_session_until_clock_sync(tmp_path: Path) -> None:
    def run(profile: object, expected: DeviceStatus) -> None:
        async def main(world: FuotaWorld) -> None:
            agent = world.add_device("late", profile=profile, clock_offset_s=-300.0)
            campaign = world.fuota.create_campaign(world.config(max_rounds=1), image())
            world.fuota.start_campaign(campaign)
            await world.finish(campaign)
            assert world.device_state(campaign, "late").status is expected
            heard = [c for _, c, multicast in agent.received if multicast]
            assert bool(heard) is (expected is DeviceStatus.PASSED)
        run_world(tmp_path / expected.value, main)

    (tmp_path / "passed").mkdir()
    (tmp_path / "failed").mkdir()
    run(dataclasses.replace(SPECIFICATION, clock_sync_at_boot=False), DeviceStatus.FAILED)
    run(SPECIFICATION, DeviceStatus.PASSED)


def test_not_enough_memory_is_reported(tmp_path: Path) -> None:
    async def main(world: FuotaWorld) -> None:
        world.add_device("small", flash_capacity=512)
        campaign = world.fuota.create_campaign(world.config(), image())
        world.fuota.start_campaign(campaign)
        await world.finish(campaign)
        state = world.device_state(campaign, "small")
        assert state.status is DeviceStatus.FAILED and "not_enough_memory" in state.reason
        assert stage_starts(world, campaign)[-1][0] == 3  # nobody left for the later stages
    run_world(tmp_path, main)


def test_binary_campaign_delivers_a_file_without_reboot(tmp_path: Path) -> None:
    async def main(world: FuotaWorld) -> None:
        world.add_device("a")
        payload = bytes(range(256)) * 7
        campaign = world.fuota.create_campaign(world.config(kind=CampaignKind.BINARY), payload)
        world.fuota.start_campaign(campaign)
        await world.finish(campaign)
        assert [s for s, _ in stage_starts(world, campaign)] == [1, 3, 4, 5, 6]
        assert world.device_state(campaign, "a").status is DeviceStatus.PASSED
        assert world.agents["a"].flash.data == payload
        assert world.agents["a"].reboots == 0
        assert not [r for r in world.requests(campaign) if r.startswith("Dev")]
    run_world(tmp_path, main)


def test_class_b_session_commands_are_answered(tmp_path: Path) -> None:
    async def main(world: FuotaWorld) -> None:
        world.add_device("a")
        campaign = world.fuota.create_campaign(world.config(session_class="B", ping_slot_periodicity=3,
                                                            max_rounds=1), image())
        world.fuota.start_campaign(campaign)
        await world.finish(campaign)
        assert "McClassBSessionReq" in world.requests(campaign)
        answer = answers(world, campaign, "a", "McClassBSessionAns")[0]
        assert answer["time_to_start"] > 0 and not answer["mc_group_undefined"]
        # beacon-synchronised reception is out of scope: no fragment is heard
        assert world.device_state(campaign, "a").status is DeviceStatus.FAILED
    run_world(tmp_path, main)

"""The device-side FUOTA agent on a stand-in device: TS005 keys (fact sheet vectors), TS006 reboot
and image rules, TS003 tokens, unicast/multicast acceptance."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable, Coroutine
from typing import Any

from fuota_world import HW_VERSION, NEW_VERSION, OLD_VERSION, OTHER_KEY, SIGNING_KEY, image

from otaharness.emulators.lorawan_device import DeviceClock, MulticastGroup, MulticastSession
from otaharness.emulators.lorawan_device.fuota import FuotaAgent
from otaharness.protocols.fuota import CLOCK_SYNC, FIRMWARE_MANAGEMENT, FRAGMENTATION, MULTICAST_SETUP, Command
from otaharness.protocols.fuota import clock_sync as ts003
from otaharness.protocols.fuota import firmware_management as ts006
from otaharness.protocols.fuota import fragmentation as ts004
from otaharness.protocols.fuota import multicast_setup as ts005
from otaharness.protocols.lorawan import keys as lorawan_keys
from otaharness.protocols.fuota.fec import DecoderState, encode_block
from otaharness.protocols.lorawan import EU868, SessionKeys
from otaharness.runtime.clock import VirtualClock, VirtualEventLoop

GEN_APP_KEY = bytes([3]) + bytes(range(2, 17))  # fact sheet §1.1 inputs
MC_KEY = bytes(range(1, 17))
MC_ADDR = 0x01020304


class StandInDevice:
    """What FuotaAgent uses of LoRaWANDevice, recording the uplinks."""

    def __init__(self, clock: VirtualClock, loop: asyncio.AbstractEventLoop) -> None:
        self.name = "stand-in"
        self.region = EU868
        self.config = type("Config", (), {"gen_app_key": GEN_APP_KEY, "dev_eui": 1})()
        self.clock = DeviceClock(clock, loop, 0.0, 0.0)
        self.multicast: dict[int, MulticastGroup] = {}
        self.handlers: dict[int, Callable[[int, bytes, bool], None]] = {}
        self.sent: list[tuple[int | None, bytes]] = []
        self.joined = True
        self.reboots = 0

    def set_port_handler(self, fport: int, handler: Callable[[int, bytes, bool], None]) -> None:
        self.handlers[fport] = handler

    async def send(self, fport: int | None, payload: bytes = b"") -> bool:
        self.sent.append((fport, payload))
        return True

    def add_multicast_group(self, group_id: int, mc_addr: int, keys: SessionKeys, *, min_fcnt: int = 0,
                            max_fcnt: int = 0) -> MulticastGroup:
        self.multicast[group_id] = MulticastGroup(group_id, mc_addr, keys, min_fcnt, max_fcnt)
        return self.multicast[group_id]

    def remove_multicast_group(self, group_id: int) -> bool:
        return self.multicast.pop(group_id, None) is not None

    def start_multicast_session(self, group_id: int, *, start_gps: float, timeout_exponent: int, frequency_hz: int,
                                data_rate: int) -> MulticastSession:
        session = MulticastSession(start_gps, timeout_exponent, frequency_hz, data_rate)
        self.multicast[group_id].session = session
        return session

    async def reboot(self) -> None:
        self.reboots += 1

    def deliver(self, command: Command, *, multicast: bool = False) -> None:
        package = next(p for p in (MULTICAST_SETUP, FRAGMENTATION, CLOCK_SYNC, FIRMWARE_MANAGEMENT)
                       if type(command) in p.downlink_commands)
        self.handlers[package.fport](package.fport, command.to_bytes(), multicast)

    def answers(self, fport: int) -> list[Command]:
        package = {p.fport: p for p in (MULTICAST_SETUP, FRAGMENTATION, CLOCK_SYNC, FIRMWARE_MANAGEMENT)}[fport]
        return [c for port, payload in self.sent if port == fport for c in package.parse_uplink(payload)]


def run(main: Callable[[StandInDevice, FuotaAgent, VirtualClock], Coroutine[Any, Any, None]]) -> None:
    clock = VirtualClock()
    loop = VirtualEventLoop(clock)
    asyncio.set_event_loop(loop)

    async def scenario() -> None:
        device = StandInDevice(clock, loop)
        agent = FuotaAgent(device, SIGNING_KEY.public_key(), OLD_VERSION, HW_VERSION,  # type: ignore[arg-type]
                           flash_capacity=4096, rng=random.Random(1), poll_interval_s=10_000)
        agent.start()
        try:
            await main(device, agent, clock)
        finally:
            await agent.stop()

    try:
        loop.run_until_complete(scenario())
    finally:
        loop.close()
        asyncio.set_event_loop(None)


def test_group_setup_derives_the_fact_sheet_keys_and_is_unicast_only() -> None:
    async def main(device: StandInDevice, agent: FuotaAgent, clock: VirtualClock) -> None:
        ke_key = lorawan_keys.derive_mc_ke_key(lorawan_keys.mc_root_key_from_gen_app_key(GEN_APP_KEY))
        request = ts005.McGroupSetupReq(mc_group_id=1, mc_addr=MC_ADDR,
                                        mc_key_encrypted=lorawan_keys.encrypt_mc_key(ke_key, MC_KEY),
                                        min_mc_fcount=0, max_mc_fcount=0xFFFFFFFF)
        device.deliver(request, multicast=True)  # TS005 is unicast only: dropped
        await clock.run_for(5)
        assert device.multicast == {} and device.answers(200) == []
        device.deliver(request)
        await clock.run_for(5)
        keys = device.multicast[1].keys
        assert keys.app_s_key.hex() == "95cb4518ee375606735bbacbdce837fa"
        assert keys.nwk_s_key.hex() == "c3f6b388bad6c000b23291ad52c11c7b"
        assert device.answers(200) == [ts005.McGroupSetupAns(mc_group_id=1, id_error=False)]
    run(main)


def test_session_request_checks_group_frequency_and_start_time() -> None:
    async def main(device: StandInDevice, agent: FuotaAgent, clock: VirtualClock) -> None:
        device.add_multicast_group(0, MC_ADDR, SessionKeys(bytes(16), bytes(16)))
        now = int(device.clock.gps())
        common = dict(time_out=6, dr=5)
        device.deliver(ts005.McClassCSessionReq(mc_group_id=0, session_time=now + 100, dl_frequency=8695250, **common))
        device.deliver(ts005.McClassCSessionReq(mc_group_id=0, session_time=now - 5, dl_frequency=8695250, **common))
        device.deliver(ts005.McClassCSessionReq(mc_group_id=2, session_time=now + 100, dl_frequency=8695250, **common))
        device.deliver(ts005.McClassCSessionReq(mc_group_id=0, session_time=now + 100, dl_frequency=4000000, **common))
        await clock.run_for(5)
        first, past, undefined, frequency = device.answers(200)
        assert first.accepted and first.time_to_start == 100
        assert past.mc_group_undefined and past.time_to_start is None
        assert undefined.mc_group_undefined and undefined.mc_group_id == 2
        assert frequency.freq_error and not frequency.accepted
        assert device.multicast[0].session is not None
    run(main)


def test_reboot_time_rules() -> None:
    async def main(device: StandInDevice, agent: FuotaAgent, clock: VirtualClock) -> None:
        now = int(device.clock.gps())
        device.deliver(ts006.DevRebootTimeReq(reboot_time=now - 10))
        device.deliver(ts006.DevRebootTimeReq(reboot_time=now + 500))
        await clock.run_for(5)
        assert agent.reboot_programmed
        device.deliver(ts006.DevRebootTimeReq(reboot_time=ts006.REBOOT_TIME_CANCEL))
        await clock.run_for(600)
        assert [a.reboot_time for a in device.answers(203)] == [0, 500, ts006.REBOOT_TIME_CANCEL]
        assert not agent.reboot_programmed and device.reboots == 0
        device.deliver(ts006.DevRebootCountdownReq(countdown=0))  # now, and no answer (TS006 §3.4)
        await clock.run_for(5)
        assert device.reboots == 1 and len(device.answers(203)) == 3
    run(main)


def test_image_status_delete_and_install() -> None:
    async def main(device: StandInDevice, agent: FuotaAgent, clock: VirtualClock) -> None:
        device.deliver(ts006.DevUpgradeImageReq())
        device.deliver(ts006.DevDeleteImageReq(firmware_to_delete_version=NEW_VERSION))
        agent.flash.write(image(200, key=OTHER_KEY))
        device.deliver(ts006.DevUpgradeImageReq())
        agent.flash.write(image(200))
        device.deliver(ts006.DevDeleteImageReq(firmware_to_delete_version=NEW_VERSION + 1))
        device.deliver(ts006.DevUpgradeImageReq())
        await clock.run_for(5)
        statuses = [a for a in device.answers(203)]
        assert statuses == [
            ts006.DevUpgradeImageAns(up_image_status=ts006.UpImageStatus.NO_IMAGE),
            ts006.DevDeleteImageAns(error_no_valid_image=True, error_invalid_version=False),
            ts006.DevUpgradeImageAns(up_image_status=ts006.UpImageStatus.CORRUPT_OR_BAD_SIGNATURE),
            ts006.DevDeleteImageAns(error_no_valid_image=False, error_invalid_version=True),
            ts006.DevUpgradeImageAns(up_image_status=ts006.UpImageStatus.VALID, next_firmware_version=NEW_VERSION),
        ]
        await agent.reboot()
        assert agent.firmware_version == NEW_VERSION and agent.flash.data is None
        await clock.run_for(130)  # announces the new version 16-128 s after the boot
        assert device.answers(203)[-1] == ts006.DevVersionAns(fw_version=NEW_VERSION, hw_version=HW_VERSION)
    run(main)


def test_fragments_not_enough_memory_and_multicast_rules() -> None:
    async def main(device: StandInDevice, agent: FuotaAgent, clock: VirtualClock) -> None:
        data = bytes(range(200)) * 5
        block = encode_block(data, 50, 4)
        too_big = ts004.FragSessionSetupReq.for_block(encode_block(bytes(5000), 50, 0), frag_index=1,
                                                      mc_group_bit_mask=1, block_ack_delay=0, descriptor=bytes(4))
        device.deliver(too_big)
        setup = ts004.FragSessionSetupReq.for_block(block, frag_index=0, mc_group_bit_mask=1, block_ack_delay=0,
                                                    descriptor=bytes(4))
        device.deliver(setup, multicast=True)  # setup only by unicast: dropped
        device.deliver(setup)
        for fragment in ts004.data_fragments(block, 0):
            if fragment.n not in (2, 7):  # two lost, rebuilt from the coded ones
                device.deliver(fragment, multicast=True)
        device.deliver(ts004.FragSessionStatusReq(participants=True, frag_index=0), multicast=True)
        await clock.run_for(20)
        refused, accepted, status = device.answers(201)
        assert refused.not_enough_memory and refused.frag_index == 1
        assert accepted.accepted
        assert status == ts004.FragSessionStatusAns(nb_frag_received=22, frag_index=0, missing_frag=0,
                                                    not_enough_matrix_memory=False)
        assert agent.flash.data == data
    run(main)


def test_app_time_answer_needs_the_current_token() -> None:
    async def main(device: StandInDevice, agent: FuotaAgent, clock: VirtualClock) -> None:
        await clock.run_for(15)  # the AppTimeReq after boot
        [request] = device.answers(202)
        assert isinstance(request, ts003.AppTimeReq) and request.ans_required and request.token_req == 0
        before = device.clock.gps()
        device.deliver(ts003.AppTimeAns(time_correction=40, token_ans=5))  # stale token: ignored
        assert abs(device.clock.gps() - before) < 1
        device.deliver(ts003.AppTimeAns(time_correction=40, token_ans=0))
        assert abs(device.clock.gps() - before - 40) < 1
    run(main)


def test_provision_takes_unicast_requests_as_if_received_and_queues_their_answers() -> None:
    async def main(device: StandInDevice, agent: FuotaAgent, clock: VirtualClock) -> None:
        ke_key = lorawan_keys.derive_mc_ke_key(lorawan_keys.mc_root_key_from_gen_app_key(GEN_APP_KEY))
        block = encode_block(bytes(range(200)) * 5, 50, 4)
        now = int(device.clock.gps())
        agent.provision(
            ts005.McGroupSetupReq(mc_group_id=0, mc_addr=MC_ADDR, mc_key_encrypted=lorawan_keys.encrypt_mc_key(
                ke_key, MC_KEY), min_mc_fcount=0, max_mc_fcount=0xFFFFFFFF),
            ts005.McClassCSessionReq(mc_group_id=0, session_time=now + 100, dl_frequency=8695250, time_out=6, dr=5),
            ts004.FragSessionSetupReq.for_block(block, frag_index=0, mc_group_bit_mask=1, block_ack_delay=0,
                                                descriptor=bytes(4)))
        assert device.multicast[0].keys.app_s_key.hex() == "95cb4518ee375606735bbacbdce837fa"
        assert device.multicast[0].session is not None
        assert agent.fragment_state(0) is DecoderState.RECEIVING
        assert [type(command) for _, command, _ in agent.received] == [
            ts005.McGroupSetupReq, ts005.McClassCSessionReq, ts004.FragSessionSetupReq]
        await clock.run_for(30)  # the session is 100 s away: the agent still answers before it
        assert device.answers(200)[0] == ts005.McGroupSetupAns(mc_group_id=0, id_error=False)
        assert device.answers(201) == [ts004.FragSessionSetupAns(frag_index=0, encoding_unsupported=False,
                                                                 not_enough_memory=False)]
    run(main)

"""The FUOTA server (the seed's "RMC agent") on the network server's application interface.

It takes the uplinks of FPorts 200-203 (``NetworkServer.on_uplink``), sends unicast requests
with ``enqueue_downlink`` (class A: they leave in the RX1/RX2 of the device's next uplink) and
the fragments with ``enqueue_multicast`` one at a time, each after the ``dntxed`` of the previous
one, so the gateways' duty cycle paces them and a stop takes effect at the next fragment.

A campaign runs the seed's stages in order; see docs/fuota.md for the decisions taken where the
seed and the specifications leave room (completion rules per device profile, who programs the
reboot, stop cleanup and when it reaches a device in a class C session).
"""

from __future__ import annotations

import asyncio
import logging
import random
from enum import Enum
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from otaharness.protocols.fuota import CLOCK_SYNC, PACKAGES_BY_FPORT, Command, FuotaCodecError, PackageVersionAns
from otaharness.protocols.fuota import clock_sync as ts003
from otaharness.protocols.fuota import firmware_management as ts006
from otaharness.protocols.fuota import fragmentation as ts004
from otaharness.protocols.fuota import multicast_setup as ts005
from otaharness.protocols.lorawan import keys as lorawan_keys
from otaharness.protocols.fuota.fec import EncodedBlock, encode_block
from otaharness.protocols.lorawan import EU868, LoRaWANError, Region
from otaharness.runtime.clock import Clock, gps_seconds
from otaharness.servers.lorawan import DownlinkHandle, NetworkServer, UplinkMeta

from .campaign import (
    CampaignConfig,
    CampaignDevice,
    CampaignError,
    CampaignKind,
    CampaignState,
    CorruptCampaign,
    DeviceState,
    DeviceStatus,
    Stage,
    UnknownCampaign,
)
from .store import CampaignStore

log = logging.getLogger(__name__)

GPS_MODULO = 1 << 32
FUOTA_FPORTS = (ts005.FPORT, ts004.FPORT, ts003.FPORT, ts006.FPORT)
LORAMAC_NODE = "loramac-node"


def fragments_complete(profile: str, answer: ts004.FragSessionStatusAns, nb_frag: int, coded_sent: int) -> bool:
    """Completion rule for FragSessionStatusAns, per device profile (fact sheet, consequence 1).

    specification/chirpstack: MissingFrag counts the fragments still missing, so 0 = complete.
    loramac-node: MissingFrag is the cumulative number lost, > 0 even after FEC rebuilt them; a
    session can only be complete if no more were lost than coded fragments were sent, so that
    is the rule here, and a firmware campaign confirms it with DevUpgradeImageReq.
    """
    if answer.not_enough_matrix_memory:
        return False
    if profile == LORAMAC_NODE:
        return answer.missing_frag <= coded_sent
    return answer.missing_frag == 0


class _NobodyLeft(Exception):
    """No device takes part any more: the remaining stages are skipped."""


class CampaignRun:
    """One campaign being carried out (or resumed) by the server."""

    def __init__(self, server: FuotaServer, campaign_id: int) -> None:
        record = server.store.get(campaign_id)
        self.server = server
        self.id = campaign_id
        self.config = record.config
        self.image = record.image
        self.state = record.state
        self.progress = record.progress
        self.devices = {device.dev_eui: device for device in server.store.devices(campaign_id)}
        self.task: asyncio.Task[None] | None = None
        self.cleanup_task: asyncio.Task[None] | None = None
        self._changed = asyncio.Event()
        self._handles: dict[tuple[int, str], DownlinkHandle] = {}
        self._block: EncodedBlock | None = None
        self._setup_multicast()

    # -- bookkeeping -------------------------------------------------------------------------
    @property
    def stage(self) -> Stage:
        return Stage(self.progress.get("stage", Stage.MC_GROUP_SETUP))

    @property
    def round(self) -> int:
        return int(self.progress.get("round", 1))

    @property
    def group_name(self) -> str:
        return f"fuota-{self.id}"

    def _now(self) -> float:
        return self.server.clock.epoch()

    def _save(self) -> None:
        self.server.store.save(self.id, self.state, self.progress)

    def _save_device(self, device: DeviceState) -> None:
        self.server.store.save_device(self.id, device)
        self._changed.set()

    def log(self, kind: str, dev_eui: int | None = None, **detail: Any) -> None:
        self.server.store.log(self.id, self._now(), kind, detail, dev_eui)

    def block(self) -> EncodedBlock:
        if self._block is None:
            frag_size = self.config.fragment_size(self.server.region)
            nb_frag = -(-len(self.image) // frag_size)
            self._block = encode_block(self.image, frag_size, self.config.coded_fragments(nb_frag))
        return self._block

    def _setup_multicast(self) -> None:
        """The group's McAddr and McKey are drawn once and kept in the progress record."""
        if "mc_key" not in self.progress:
            rng = self.server.rng
            self.progress["mc_addr"] = rng.randrange(1, 1 << 32)
            self.progress["mc_key"] = rng.randbytes(16).hex()
            self._save()
        network = self.server.network
        if network.registry.find_group(self.group_name) is None:
            keys = lorawan_keys.derive_mc_session_keys(bytes.fromhex(self.progress["mc_key"]), self.progress["mc_addr"])
            network.create_multicast_group(self.progress["mc_addr"], keys.nwk_s_key, keys.app_s_key,
                                           self.config.frequency, self.config.data_rate, name=self.group_name)

    def _step(self, name: str) -> str:
        return f"{name}:{self.round}"

    def participants(self) -> list[DeviceState]:
        return [device for device in self.devices.values() if device.status is DeviceStatus.ACTIVE]

    async def _until(self, predicate: Callable[[], bool], timeout: float) -> bool:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not predicate():
            remaining = deadline - loop.time()
            if remaining <= 0:
                return False
            self._changed.clear()
            try:
                async with asyncio.timeout(remaining):
                    await self._changed.wait()
            except TimeoutError:
                return predicate()
        return True

    # -- unicast -----------------------------------------------------------------------------
    def send(self, device: DeviceState, command: Command) -> None:
        """Queue ``command`` for the device unless the same request still waits at the network server."""
        fport = next(p.fport for p in PACKAGES_BY_FPORT.values() if type(command) in p.downlink_commands)
        key = (device.dev_eui, type(command).__name__)
        previous = self._handles.get(key)
        if previous is not None and not previous.transmitted.done():
            return
        self._handles[key] = self.server.network.enqueue_downlink(device.dev_eui, fport, command.to_bytes())
        self.log("request", device.dev_eui, command=type(command).__name__, fport=fport,
                 payload=command.to_bytes().hex(), stage=self.stage.value, round=self.round)

    async def exchange(self, step: str, devices: Iterable[DeviceState], build: Callable[[DeviceState], Command],
                       first_wait_extra_s: float = 0.0) -> list[DeviceState]:
        """Unicast request/answer with retries; returns the devices that never answered."""
        devices = list(devices)

        def waiting() -> list[DeviceState]:
            return [d for d in devices if step not in d.done and d.status is not DeviceStatus.FAILED]

        for attempt in range(self.config.unicast_attempts):
            pending = waiting()
            if not pending:
                break
            for device in pending:
                self.send(device, build(device))
            extra = first_wait_extra_s if attempt == 0 else 0.0
            # asked after every answer of the fleet: stops at the first device still waiting
            await self._until(lambda: not any(step not in d.done and d.status is not DeviceStatus.FAILED
                                              for d in devices), self.config.unicast_timeout_s + extra)
        return waiting()

    # -- stages ------------------------------------------------------------------------------
    def _enter(self, stage: Stage) -> None:
        wanted = DeviceStatus.READY if stage is Stage.COMPLETION_VERIFICATION else DeviceStatus.ACTIVE
        if not any(device.status is wanted for device in self.devices.values()):
            raise _NobodyLeft(stage)
        self.progress["stage"] = int(stage)
        self._save()
        self.log("stage", stage=int(stage), name=stage.name, round=self.round, event="start")
        log.info("campaign %d: stage %d %s (round %d)", self.id, stage, stage.name, self.round)

    def _leave(self, stage: Stage) -> None:
        self.log("stage", stage=int(stage), name=stage.name, round=self.round, event="end")

    def _fail_silent(self, silent: list[DeviceState], what: str) -> None:
        for device in silent:
            device.fail(f"no {what} after {self.config.unicast_attempts} attempts")
            self._save_device(device)

    async def run(self) -> None:
        try:
            await self._run_stages()
        except _NobodyLeft as nobody:
            self.log("note", text=f"no device left for stage {int(nobody.args[0])}")
        firmware = self.config.kind is CampaignKind.FIRMWARE
        for device in self.devices.values():
            if device.status is DeviceStatus.READY and not firmware:
                device.status = DeviceStatus.PASSED
            device.fail("did not complete")
            self._save_device(device)
        self.state = CampaignState.FINISHED
        self._save()
        self.log("finished", passed=sum(d.status is DeviceStatus.PASSED for d in self.devices.values()))

    async def _run_stages(self) -> None:
        config = self.config
        firmware = config.kind is CampaignKind.FIRMWARE
        resume_at = self.stage
        if resume_at <= Stage.MC_GROUP_SETUP:
            self._enter(Stage.MC_GROUP_SETUP)
            await self.stage_group_setup()
            self._leave(Stage.MC_GROUP_SETUP)
        if resume_at <= Stage.DEV_REBOOT_TIME and firmware and config.reboot_time is not None:
            self._enter(Stage.DEV_REBOOT_TIME)
            await self.stage_reboot_time()
            self._leave(Stage.DEV_REBOOT_TIME)
        try:
            await self._run_rounds(resume_at)
        except _NobodyLeft as nobody:
            # No active device left for a later round's stage: the devices made ready by the
            # rounds before are still verified (they would otherwise end failed, image in hand).
            self.log("note", text=f"no device left for stage {int(nobody.args[0])} of round {self.round}")
        if firmware:
            self._enter(Stage.COMPLETION_VERIFICATION)
            await self.stage_verification()
            self._leave(Stage.COMPLETION_VERIFICATION)

    async def _run_rounds(self, resume_at: Stage) -> None:
        """Stages 3-6, again for another round while stage 6 asks for one."""
        while resume_at <= Stage.UPGRADE_IMAGE:
            if resume_at <= Stage.FRAG_SESSION_SETUP:
                self._enter(Stage.FRAG_SESSION_SETUP)
                await self.stage_frag_session_setup()
                self._leave(Stage.FRAG_SESSION_SETUP)
            if resume_at <= Stage.MC_SESSION_SETUP:
                self._enter(Stage.MC_SESSION_SETUP)
                await self.stage_session_setup()
                self._leave(Stage.MC_SESSION_SETUP)
            if resume_at <= Stage.DL_FRAGMENT:
                self._enter(Stage.DL_FRAGMENT)
                await self.stage_fragments()
                self._leave(Stage.DL_FRAGMENT)
            self._enter(Stage.UPGRADE_IMAGE)
            again = await self.stage_upgrade_image()
            self._leave(Stage.UPGRADE_IMAGE)
            if not again:
                break
            self.progress["round"] = self.round + 1
            self.progress.pop("next_fragment", None)
            self.progress.pop("session_time_gps", None)
            resume_at = Stage.FRAG_SESSION_SETUP

    async def stage_group_setup(self) -> None:
        config = self.config
        mc_key = bytes.fromhex(self.progress["mc_key"])
        group = self.server.network.registry.find_group(self.group_name)
        assert group is not None  # created in _setup_multicast

        def request(device: DeviceState) -> Command:
            gen_app_key = bytes.fromhex(self.server.device_keys[device.dev_eui])
            ke_key = lorawan_keys.derive_mc_ke_key(lorawan_keys.mc_root_key_from_gen_app_key(gen_app_key))
            return ts005.McGroupSetupReq(mc_group_id=config.mc_group_id, mc_addr=self.progress["mc_addr"],
                                         mc_key_encrypted=lorawan_keys.encrypt_mc_key(ke_key, mc_key),
                                         min_mc_fcount=group.fcnt,
                                         max_mc_fcount=GPS_MODULO - 1)
        self._fail_silent(await self.exchange("McGroupSetup", self.participants(), request), "McGroupSetupAns")

    async def stage_reboot_time(self) -> None:
        assert self.config.reboot_time is not None
        gps = int(gps_seconds(self.config.reboot_time)) % GPS_MODULO

        def request(device: DeviceState) -> Command:
            device.reboot_requested = True
            return ts006.DevRebootTimeReq(reboot_time=gps)
        silent = await self.exchange("DevRebootTime", self.participants(), request)
        self._fail_silent(silent, "DevRebootTimeAns")

    async def stage_frag_session_setup(self) -> None:
        block = self.block()
        request = ts004.FragSessionSetupReq.for_block(
            block, frag_index=self.config.frag_index, mc_group_bit_mask=1 << self.config.mc_group_id,
            block_ack_delay=self.config.block_ack_delay, descriptor=self.config.firmware_version.to_bytes(4, "little"))
        silent = await self.exchange(self._step("FragSessionSetup"), self.participants(), lambda device: request)
        self._fail_silent(silent, "FragSessionSetupAns")

    def session_window(self) -> tuple[float, float]:
        """Loop times of the current round's session start and end."""
        loop_now = asyncio.get_running_loop().time()
        start = loop_now + self.progress["session_time_gps"] - self.server.clock.gps()
        return start, start + (1 << self.progress["session_timeout_exponent"])

    async def stage_session_setup(self) -> None:
        config = self.config
        if "session_time_gps" not in self.progress:
            self.progress["session_time_gps"] = int(self.server.clock.gps() + config.session_start_delay())
            self.progress["session_timeout_exponent"] = config.timeout_exponent(len(self.block().fragments),
                                                                                self.server.region)
            self._save()
        fields = dict(mc_group_id=config.mc_group_id, session_time=self.progress["session_time_gps"] % GPS_MODULO,
                      time_out=self.progress["session_timeout_exponent"], dl_frequency=config.frequency // 100,
                      dr=config.data_rate)
        request: Command = (ts005.McClassCSessionReq(**fields) if config.session_class == "C"
                            else ts005.McClassBSessionReq(periodicity=config.ping_slot_periodicity, **fields))
        silent = await self.exchange(self._step("McSessionSetup"), self.participants(), lambda device: request)
        self._fail_silent(silent, "McClassCSessionAns" if config.session_class == "C" else "McClassBSessionAns")

    async def stage_fragments(self) -> None:
        loop = asyncio.get_running_loop()
        start, end = self.session_window()
        if start > loop.time():
            await asyncio.sleep(start - loop.time())
        block = self.block()
        fragments = ts004.data_fragments(block, self.config.frag_index)
        first = int(self.progress.get("next_fragment", 0))
        for index in range(first, len(fragments)):
            if loop.time() >= end:
                self.log("note", text=f"session ended: fragments {index + 1}..{len(fragments)} not sent")
                break
            frame = self.server.network.enqueue_multicast(self.group_name, ts004.FPORT, fragments[index].to_bytes())
            # Handed to the network server, the fragment goes out even if this server stops now:
            # a restarted server must go on from the next one, or the air carries it twice.
            self.progress["next_fragment"] = index + 1
            self._save()
            results = await frame.transmitted
            self.log("fragment", n=index + 1, fcnt=frame.fcnt, gateways=sum(r is not None for r in results.values()),
                     round=self.round)

    async def stage_upgrade_image(self) -> bool:
        """Stage 6. Returns True when another round is due."""
        config = self.config
        participants = [d for d in self.participants() if self._step("FragSessionSetup") in d.done]
        _, session_end = self.session_window()
        # devices stay quiet during the session (docs/fuota.md): the answers come after it
        extra = max(session_end - asyncio.get_running_loop().time(), 0.0)
        asked_status = config.fec or config.kind is CampaignKind.BINARY
        if asked_status:
            status = ts004.FragSessionStatusReq(participants=True, frag_index=config.frag_index)
            await self.exchange(self._step("FragSessionStatus"), participants, lambda device: status, extra)
            extra = 0.0
        if config.kind is CampaignKind.FIRMWARE:
            candidates = [d for d in participants if d.status is DeviceStatus.ACTIVE
                          and (not asked_status or d.answers.get("fragments_complete"))]
            await self.exchange(self._step("DevUpgradeImage"), candidates,
                                lambda device: ts006.DevUpgradeImageReq(), extra)
        ready = sum(d.status in (DeviceStatus.READY, DeviceStatus.PASSED) for d in self.devices.values())
        needed = config.success_threshold * len(self.devices)
        self.log("round", round=self.round, ready=ready, needed=needed)
        if ready < needed and self.round < config.max_rounds and self.participants():
            return True
        for device in self.participants():
            device.fail(f"no complete image after {self.round} round(s)")
            self._save_device(device)
        return False

    async def stage_verification(self) -> None:
        config = self.config
        ready = [d for d in self.devices.values() if d.status is DeviceStatus.READY]
        if config.reboot_time is not None:
            reboot_at = config.reboot_time
        else:
            def request(device: DeviceState) -> Command:
                device.reboot_requested = True
                return ts006.DevRebootCountdownReq(countdown=config.reboot_countdown_s)
            silent = await self.exchange("DevRebootCountdown", ready, request)
            # a lost answer does not mean a lost request: the version check below decides
            for device in silent:
                self.log("note", device.dev_eui, text="no DevRebootCountdownAns; verified by its version")
            reboot_at = max([d.done["DevRebootCountdown"] for d in ready if "DevRebootCountdown" in d.done],
                            default=self._now()) + config.reboot_countdown_s
        self.progress["reboot_at"] = reboot_at
        self._save()

        def unverified() -> list[DeviceState]:
            return [d for d in ready if d.status is DeviceStatus.READY]
        wait = reboot_at - self._now() + config.verification_timeout_s
        await self._until(lambda: not unverified(), max(wait, 0.0))
        if unverified():  # silent devices: ask (the seed: unicast DevVersionReq)
            silent = await self.exchange("DevVersionReq", unverified(), lambda device: ts006.DevVersionReq())
            self._fail_silent(silent, "DevVersionAns")

    # -- stop --------------------------------------------------------------------------------
    async def cleanup(self) -> None:
        """The seed's stop processing for the stage the campaign was in."""
        stage = Stage(self.progress.get("stopped_in", self.stage))
        version = self.config.firmware_version
        open_devices = [d for d in self.devices.values() if d.status is not DeviceStatus.PASSED and not d.rebooted]
        # a request still queued at the network server may program a reboot after the stop
        cancel = [d for d in open_devices if d.reboot_programmed or d.reboot_requested]
        delete: list[DeviceState] = []
        if stage >= Stage.DL_FRAGMENT and self.config.kind is CampaignKind.FIRMWARE:
            delete = [d for d in open_devices if d.frag_session_set_up]
        if stage == Stage.COMPLETION_VERIFICATION:
            upgraded = sum(d.status is DeviceStatus.PASSED or d.rebooted for d in self.devices.values())
            self.log("note", text=f"stopped during verification: {upgraded} device(s) already run the new firmware "
                                  "(TS006 has no rollback); the others' reboot is cancelled and image deleted")
        # Requests the campaign queued before the stop and the network has not sent yet are
        # withdrawn: after a stop only the cleanup goes out.
        withdrawn = sum(self.server.network.withdraw_downlinks(d.dev_eui, FUOTA_FPORTS)
                        for d in self.devices.values())
        self.log("cleanup", stage=int(stage), cancel_reboot=[f"{d.dev_eui:016X}" for d in cancel],
                 delete_image=[f"{d.dev_eui:016X}" for d in delete], withdrawn=withdrawn)
        # devices in a class C session poll again only after it: wait for them that long
        extra = 0.0
        if "session_time_gps" in self.progress:
            extra = max(self.session_window()[1] - asyncio.get_running_loop().time(), 0.0)
        await asyncio.gather(
            self.exchange("CancelReboot", cancel,
                          lambda device: ts006.DevRebootTimeReq(reboot_time=ts006.REBOOT_TIME_CANCEL), extra),
            self.exchange("DeleteImage", delete,
                          lambda device: ts006.DevDeleteImageReq(firmware_to_delete_version=version), extra))
        for device in self.devices.values():
            device.fail(f"campaign stopped in stage {int(stage)}")
            self._save_device(device)
        self.state = CampaignState.STOPPED
        self._save()
        self.log("stopped", stage=int(stage))
        if self.progress.get("delete_requested"):
            self.server.remove(self.id)

    # -- answers -----------------------------------------------------------------------------
    def on_answer(self, device: DeviceState, command: Command) -> None:
        name = type(command).__name__
        now = self._now()
        config = self.config

        def reject(why: str) -> None:
            log.warning("campaign %d: %s from %016X ignored: %s", self.id, name, device.dev_eui, why)
            self.log("rejected", device.dev_eui, command=name, reason=why)

        if isinstance(command, ts005.McGroupSetupAns):
            if command.mc_group_id != config.mc_group_id:
                return reject(f"McGroupID {command.mc_group_id} is not the campaign's {config.mc_group_id}")
            if command.id_error:
                device.fail("McGroupSetupAns IDerror")
            else:
                device.mark("McGroupSetup", now)
        elif isinstance(command, (ts005.McClassCSessionAns, ts005.McClassBSessionAns)):
            expected = ts005.McClassCSessionAns if config.session_class == "C" else ts005.McClassBSessionAns
            if not isinstance(command, expected):
                return reject(f"the campaign uses class {config.session_class} sessions")
            if command.mc_group_id != config.mc_group_id:
                return reject(f"McGroupID {command.mc_group_id} is not the campaign's {config.mc_group_id}")
            if not command.accepted:
                device.fail(f"{name}: DR error {command.dr_error}, frequency error {command.freq_error}, "
                            f"group undefined/too late {command.mc_group_undefined}")
            else:
                device.mark(self._step("McSessionSetup"), now)
        elif isinstance(command, ts004.FragSessionSetupAns):
            if command.frag_index != config.frag_index:
                return reject(f"FragIndex {command.frag_index} is not the campaign's {config.frag_index}")
            if not command.accepted:
                bits = [b for b in ("encoding_unsupported", "not_enough_memory", "frag_session_index_not_supported",
                                    "wrong_descriptor") if getattr(command, b)]
                device.fail("FragSessionSetupAns: " + ", ".join(bits))
            else:
                device.frag_session_set_up = True
                device.mark(self._step("FragSessionSetup"), now)
        elif isinstance(command, ts004.FragSessionStatusAns):
            if command.frag_index != config.frag_index:
                return reject(f"FragIndex {command.frag_index} is not the campaign's {config.frag_index}")
            block = self.block()
            complete = fragments_complete(device.profile, command, block.nb_frag, block.redundancy)
            device.answers["fragments_complete"] = complete
            if complete and config.kind is CampaignKind.BINARY:
                device.status = DeviceStatus.READY
            device.mark(self._step("FragSessionStatus"), now)
        elif isinstance(command, ts006.DevUpgradeImageAns):
            status = command.up_image_status
            if status is ts006.UpImageStatus.VALID:
                if command.next_firmware_version == config.firmware_version:
                    device.status = DeviceStatus.READY
                else:
                    device.fail(f"image ready with version {command.next_firmware_version:#x}, "
                                f"expected {config.firmware_version:#x}")
            elif status is ts006.UpImageStatus.CORRUPT_OR_BAD_SIGNATURE:
                device.fail("UpImageStatus 1: image corrupt or badly signed")
            elif status is ts006.UpImageStatus.WRONG_HARDWARE:
                device.fail("UpImageStatus 2: image for other hardware")
            device.mark(self._step("DevUpgradeImage"), now)
        elif isinstance(command, ts006.DevRebootTimeAns):
            if command.reboot_time == ts006.REBOOT_TIME_CANCEL:
                device.reboot_programmed = False
                device.mark("CancelReboot", now)
            elif command.reboot_time == 0:
                device.fail("DevRebootTimeAns 0: cannot reboot at the requested time")
            else:
                device.reboot_programmed = True
                device.mark("DevRebootTime", now)
        elif isinstance(command, ts006.DevRebootCountdownAns):
            device.reboot_programmed = command.countdown != ts006.COUNTDOWN_CANCEL
            device.mark("DevRebootCountdown", now)
        elif isinstance(command, ts006.DevVersionAns):
            reboot_at = self.progress.get("reboot_at")
            if self.stage is Stage.COMPLETION_VERIFICATION and reboot_at is not None and now >= reboot_at:
                device.rebooted = True
                device.mark("DevVersionReq", now)
                if device.status is DeviceStatus.READY:
                    if command.fw_version == config.firmware_version:
                        device.status = DeviceStatus.PASSED
                    else:
                        device.fail(f"runs version {command.fw_version:#x} after the reboot, "
                                    f"expected {config.firmware_version:#x}")
        elif isinstance(command, ts006.DevDeleteImageAns):
            device.mark("DeleteImage", now)
        device.answers[name] = {key: _json_value(value) for key, value in vars(command).items()}
        self.log("answer", device.dev_eui, command=name, **device.answers[name])
        self._save_device(device)


def _json_value(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, (bool, int, float, str)) or value is None:
        return value
    return str(value)


class FuotaServer:
    """Campaigns over one network server; state in SQLite at ``db_path``."""

    def __init__(self, network: NetworkServer, db_path: Path | str, clock: Clock, rng: random.Random,
                 region: Region = EU868) -> None:
        self.network = network
        self.store = CampaignStore(db_path)
        self.clock = clock
        self.rng = rng
        self.region = region
        self.runs: dict[int, CampaignRun] = {}
        self.device_keys: dict[int, str] = {}  # DevEUI -> GenAppKey hex (from campaign configurations)
        self.rejected = 0
        for fport in FUOTA_FPORTS:
            network.on_uplink(fport, self._on_uplink)

    async def start(self) -> None:
        """Resume campaigns that were running (or stopping) when the server went down. A campaign
        whose stored rows cannot be read is left as it is (``status`` reports it)."""
        for campaign_id in self.store.ids(CampaignState.RUNNING, CampaignState.STOPPING):
            try:
                run = self._load(campaign_id)
            except CorruptCampaign as error:
                log.error("campaign %d not resumed: %s", campaign_id, error)
                continue
            if run.state is CampaignState.RUNNING:
                log.info("campaign %d: resumed in stage %d round %d", campaign_id, run.stage, run.round)
                run.log("resumed", stage=int(run.stage), round=run.round)
                run.task = asyncio.ensure_future(run.run())
            else:
                run.cleanup_task = asyncio.ensure_future(run.cleanup())

    async def close(self) -> None:
        """Stop working (state stays in SQLite; a new server resumes). Not a campaign stop."""
        tasks = [t for run in self.runs.values() for t in (run.task, run.cleanup_task) if t is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self.store.close()

    def _load(self, campaign_id: int) -> CampaignRun:
        """The campaign's run (loaded from SQLite once); :class:`UnknownCampaign`, or
        :class:`CorruptCampaign` when what is stored cannot be carried out."""
        run = self.runs.get(campaign_id)
        if run is None:
            record = self.store.get(campaign_id)
            try:
                run = CampaignRun(self, campaign_id)
                _ = (run.stage, run.round)  # both come from the stored progress
            except CampaignError:
                raise
            except (TypeError, ValueError, KeyError, AttributeError) as error:
                raise CorruptCampaign(f"stored campaign {campaign_id} cannot be carried out: {error!r}") from None
            for device in record.config.devices:
                self.device_keys[device.dev_eui] = device.gen_app_key
            self.runs[campaign_id] = run
        return run

    # -- campaign API ------------------------------------------------------------------------
    def create_campaign(self, config: CampaignConfig, image: bytes) -> int:
        """Check and store a campaign (state ``created``). Everything about it that can be wrong is
        found here, :class:`CampaignError` saying what: the configuration against the schema
        (docs/fuota.md), then what depends on the region and the image."""
        config.check()
        if not isinstance(image, (bytes, bytearray)) or not image:
            raise CampaignError("the image is empty")
        try:
            data_rate = self.region.data_rate(config.data_rate)
            self.region.sub_band(config.frequency)
            if data_rate.spreading_factor is None:
                raise CampaignError(f"DR{config.data_rate} is not a LoRa data rate: no multicast session on it")
            block = encode_block(bytes(image), config.fragment_size(self.region), 0)
            config.timeout_exponent(len(block.fragments), self.region)
        except FuotaCodecError as error:
            raise CampaignError(f"image cannot be fragmented: {error}") from None
        except LoRaWANError as error:
            raise CampaignError(f"{error} ({self.region.name})") from None
        for device in config.devices:
            self.network.device(device.dev_eui)  # raises UnknownDevice for a device the network lacks
        devices = [DeviceState(d.dev_eui, d.profile) for d in config.devices]
        return self.store.create(config, image, devices, self.clock.epoch())

    def start_campaign(self, campaign_id: int) -> None:
        run = self._load(campaign_id)
        if run.state is not CampaignState.CREATED:
            raise CampaignError(f"campaign {campaign_id} is {run.state.value}, not created")
        busy = {d for other in self.runs.values() if other.state is CampaignState.RUNNING for d in other.devices}
        if busy & set(run.devices):
            raise CampaignError("a device of this campaign takes part in another running campaign")
        run.state = CampaignState.RUNNING
        run._save()
        run.log("started")
        run.task = asyncio.ensure_future(run.run())

    async def stop_campaign(self, campaign_id: int) -> None:
        """Stop processing at once; the cleanup traffic runs on in the background."""
        run = self._load(campaign_id)
        if run.state is not CampaignState.RUNNING:
            raise CampaignError(f"campaign {campaign_id} is {run.state.value}, not running")
        run.state = CampaignState.STOPPING  # at once: a second stop while this one waits is refused
        if run.task is not None:
            run.task.cancel()
            await asyncio.gather(run.task, return_exceptions=True)
        run.progress["stopped_in"] = int(run.stage)
        run._save()
        run.log("stop", stage=int(run.stage))
        run.cleanup_task = asyncio.ensure_future(run.cleanup())

    async def delete_campaign(self, campaign_id: int) -> bool:
        """Remove a campaign. A running one is stopped first (:meth:`stop_campaign`: the seed's
        stop processing for its stage) and removed when that cleanup is over, as is one already
        stopping: returns False then (the removal is pending, and survives a restart). Otherwise
        it is removed at once (True). A campaign whose rows cannot be read is removed at once."""
        if not self.store.exists(campaign_id):
            raise UnknownCampaign(f"no campaign {campaign_id}")
        run = self.runs.get(campaign_id)
        if run is None:
            try:
                state = self.store.get(campaign_id).state
                if state in (CampaignState.RUNNING, CampaignState.STOPPING):
                    run = self._load(campaign_id)
            except CorruptCampaign as error:
                log.warning("campaign %d: removing it unread: %s", campaign_id, error)
        if run is not None and run.state is CampaignState.RUNNING:
            await self.stop_campaign(campaign_id)
        if run is not None and run.state is CampaignState.STOPPING:
            run.progress["delete_requested"] = True
            run._save()
            run.log("delete", text="removed when the stop cleanup is over")
            stop_under_way = run.task is not None and not run.task.done()  # stop_campaign still waits
            if not stop_under_way and (run.cleanup_task is None or run.cleanup_task.done()):
                run.cleanup_task = asyncio.ensure_future(run.cleanup())  # loaded, never resumed by start()
            return False
        self.remove(campaign_id)
        return True

    def remove(self, campaign_id: int) -> None:
        """Forget a campaign: its rows and its run (its multicast group stays in the network
        server's registry under its never reused name ``fuota-<id>``)."""
        self.runs.pop(campaign_id, None)
        self.store.delete(campaign_id)
        log.info("campaign %d removed", campaign_id)

    async def wait(self, campaign_id: int) -> CampaignState:
        run = self._load(campaign_id)
        for task in (run.task, run.cleanup_task):
            if task is not None:
                await asyncio.gather(task, return_exceptions=True)
        if run.cleanup_task is not None:
            await asyncio.gather(run.cleanup_task, return_exceptions=True)
        return run.state

    def status(self, campaign_id: int) -> dict[str, Any]:
        """Progress for the API: state, stage, round, fragments sent, devices by status. A
        campaign whose stored rows cannot be read is ``{"id", "state": "unreadable", "error"}``:
        one bad campaign never breaks the list. :class:`UnknownCampaign` if there is none."""
        try:
            return self._status(campaign_id)
        except UnknownCampaign:
            raise
        except (TypeError, ValueError, KeyError, AttributeError) as error:  # CorruptCampaign included
            log.error("campaign %d: status unreadable: %s", campaign_id, error)
            message = (str(error) if isinstance(error, CorruptCampaign)
                       else f"stored campaign {campaign_id} cannot be read: {error!r}")
            return {"id": campaign_id, "state": "unreadable", "error": message}

    def _status(self, campaign_id: int) -> dict[str, Any]:
        record = self.store.get(campaign_id)
        run = self.runs.get(campaign_id)
        devices = list(run.devices.values()) if run else self.store.devices(campaign_id)
        progress = run.progress if run else record.progress
        state = run.state if run else record.state
        counts = {status.value: sum(d.status is status for d in devices) for status in DeviceStatus}
        fragments = len(run.block().fragments) if run else None
        return {"id": campaign_id, "name": record.config.name, "kind": record.config.kind.value,
                "state": state.value, "stage": progress.get("stage"), "round": progress.get("round", 1),
                "fragments_sent": progress.get("next_fragment", 0), "fragments_total": fragments,
                "delete_requested": bool(progress.get("delete_requested", False)), "devices": counts,
                "device_states": [{"dev_eui": f"{d.dev_eui:016X}", "status": d.status.value, "reason": d.reason,
                                   "done": d.done} for d in devices]}

    def campaign_of(self, dev_eui: int) -> CampaignRun | None:
        for run in self.runs.values():
            if run.state in (CampaignState.RUNNING, CampaignState.STOPPING) and dev_eui in run.devices:
                return run
        return None

    # -- uplinks -----------------------------------------------------------------------------
    def _on_uplink(self, dev_eui: int, fport: int, payload: bytes, meta: UplinkMeta) -> None:
        package = PACKAGES_BY_FPORT[fport]
        run = self.campaign_of(dev_eui)
        try:
            commands = package.parse_uplink(payload)
        except FuotaCodecError as error:
            self.rejected += 1
            log.warning("FPort %d uplink from %016X ignored: %s", fport, dev_eui, error)
            if run is not None:
                run.log("rejected", dev_eui, fport=fport, payload=payload.hex(), reason=str(error))
            return
        for command in commands:
            if isinstance(command, ts003.AppTimeReq):
                self._answer_clock_sync(dev_eui, command, meta)
            elif isinstance(command, PackageVersionAns) or run is None:
                log.info("%016X: %s (no campaign action)", dev_eui, command)
            else:
                run.on_answer(run.devices[dev_eui], command)

    def _answer_clock_sync(self, dev_eui: int, request: ts003.AppTimeReq, meta: UplinkMeta) -> None:
        """TS003: TimeCorrection from the GPS time the uplink was received at. Sent at once, so the
        network server can put it in the RX1 of this very uplink."""
        answer = ts003.answer_app_time(request, int(meta.gps_time) % GPS_MODULO)
        if answer.time_correction == 0 and not request.ans_required:
            return
        self.network.enqueue_downlink(dev_eui, CLOCK_SYNC.fport, answer.to_bytes())
        log.info("%016X: AppTimeAns correction %d s", dev_eui, answer.time_correction)


__all__ = ["CampaignDevice", "CampaignRun", "FuotaServer", "fragments_complete"]

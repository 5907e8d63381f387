"""The FUOTA packages of an emulated end device (TS003, TS004, TS005, TS006 v1).

:class:`FuotaAgent` sits on a :class:`~otaharness.emulators.lorawan_device.LoRaWANDevice` through its
public per-FPort hooks (``set_port_handler`` for 200-203, ``send``, ``add_multicast_group``,
``start_multicast_session``, ``clock``) and owns the application's uplink schedule: it sends
queued answers, and otherwise an empty poll uplink every ``poll_interval_s`` so that the class A
network server can deliver unicast requests in RX1/RX2.

A device inside a class C multicast session listens only on the session's channel; an uplink
(and its RX1 on another channel) would cost fragments, so by default the agent stays silent from
shortly before the session start until it ends (``FuotaProfile.poll_during_session``). A unicast
request queued at the network server meanwhile therefore reaches the device after the session
times out, at its first poll; with ``poll_during_session`` it arrives in the class A windows of
the polls made during the session.
"""

from __future__ import annotations

import asyncio
import logging
import random
from array import array
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, overload

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from otaharness.protocols.fuota import (
    CLOCK_SYNC,
    FIRMWARE_MANAGEMENT,
    FRAGMENTATION,
    MULTICAST_SETUP,
    Command,
    FuotaCodecError,
    Package,
    PackageVersionReq,
)
from otaharness.protocols.fuota import clock_sync as ts003
from otaharness.protocols.fuota import firmware_management as ts006
from otaharness.protocols.fuota import fragmentation as ts004
from otaharness.protocols.fuota import multicast_setup as ts005
from otaharness.protocols.fuota.fec import (
    LORAMAC_NODE_PROFILE,
    SPECIFICATION_PROFILE,
    DecoderProfile,
    DecoderState,
    FragmentDecoder,
)
from otaharness.protocols.lorawan import LoRaWANError
from otaharness.protocols.lorawan import keys as lorawan_keys
from otaharness.runtime import timeline

from ..device import LoRaWANDevice
from ..state import DeviceError
from .image import FlashFull, FlashSlot, check_image

log = logging.getLogger(__name__)

GPS_MODULO = 1 << 32
SESSION_GUARD_S = 5.0  # no uplink this long before a multicast session starts
POLL_JITTER = 0.2  # each poll interval is drawn from poll_interval_s × (1 ± this)
BOOT_JITTER_S = 10.0  # the clock sync request after boot comes this long after it at most


@dataclass(frozen=True)
class FuotaProfile:
    """Where implementations differ (fact sheet, design consequences 1, 5, 6 and §3)."""

    name: str
    decoder: DecoderProfile
    # LoRaMac-node FRAG_MAX_REDUNDANCY: lost fragments the decoder's matrix can hold (None: all)
    max_missing: int | None = None
    answers_group_status: bool = True  # LoRaMac-node does not implement McGroupStatusReq
    announce_version_after_boot: bool = True  # ST/Actility variant: DevVersionAns 16-128 s after boot
    announce_delay_s: tuple[float, float] = (16.0, 128.0)
    clock_sync_at_boot: bool = True  # AppTimeReq (AnsRequired) after every boot
    poll_during_session: bool = False


SPECIFICATION = FuotaProfile("specification", SPECIFICATION_PROFILE)
LORAMAC_NODE = FuotaProfile("loramac-node", LORAMAC_NODE_PROFILE, max_missing=400, answers_group_status=False)
PROFILES = {profile.name: profile for profile in (SPECIFICATION, LORAMAC_NODE)}


@dataclass
class _FragSession:
    setup: ts004.FragSessionSetupReq
    decoder: FragmentDecoder


class ReceivedLog:
    """What an agent heard, as (loop time, command, multicast) entries in order of arrival.

    Kept in three parallel arrays (8 + 8 + 1 octets an entry) rather than a tuple and a float
    object per command, since a device hears over a thousand DataFragments per image; the
    commands themselves are shared with other devices that heard the same multicast frame
    (see `shared_downlink_commands`)."""

    def __init__(self) -> None:
        self._times = array("d")
        self._commands: list[Command] = []
        self._multicast = bytearray()

    def append(self, entry: tuple[float, Command, bool]) -> None:
        self.add(*entry)

    def add(self, at: float, command: Command, multicast: bool) -> None:
        """``append((at, command, multicast))`` without the tuple (once per command heard)."""
        self._times.append(at)
        self._commands.append(command)
        self._multicast.append(multicast)

    def __len__(self) -> int:
        return len(self._commands)

    @overload
    def __getitem__(self, index: int) -> tuple[float, Command, bool]: ...

    @overload
    def __getitem__(self, index: slice) -> list[tuple[float, Command, bool]]: ...

    def __getitem__(self, index: int | slice) -> tuple[float, Command, bool] | list[tuple[float, Command, bool]]:
        if isinstance(index, slice):
            return list(self)[index]
        return self._times[index], self._commands[index], bool(self._multicast[index])

    def __iter__(self) -> Iterator[tuple[float, Command, bool]]:
        return zip(self._times, self._commands, map(bool, self._multicast))


# A multicast frame's plain FRMPayload is the same bytes object for every device that heard it
# (device.py shares the decryption), and parsing is a pure function of those bytes into frozen
# commands: devices share the parsed commands too, so a DataFragment's payload is held once
# in the process however many decoders reference it. Bounded: a few campaign rounds' frames.
_SHARED_PARSES_LIMIT = 4096
_shared_parses: dict[tuple[int, bytes], tuple[Command, ...]] = {}


def forget_shared_parses() -> None:
    """Empty the shared parse results (to time reception from a cold start)."""
    _shared_parses.clear()


def shared_downlink_commands(package: Package, payload: bytes) -> tuple[Command, ...]:
    """``package.parse_downlink(payload)`` for a multicast payload, parsed once per process."""
    key = (package.fport, payload)
    commands = _shared_parses.get(key)
    if commands is None:
        commands = tuple(package.parse_downlink(payload))
        if len(_shared_parses) >= _SHARED_PARSES_LIMIT:
            _shared_parses.clear()
        _shared_parses[key] = commands
    return commands


def _resolve(waiter: asyncio.Future[None] | None) -> None:
    """Wake the agent's uplink loop if it is waiting (a timer firing or an uplink queued)."""
    if waiter is not None and not waiter.done():
        waiter.set_result(None)


@dataclass
class _Uplink:
    fport: int
    build: Callable[[], bytes]  # built at send time (AppTimeReq carries the time of sending)
    not_before: float = 0.0


@dataclass
class FuotaAgent:
    """The FUOTA side of one device. ``firmware_version``/``hw_version`` are what DevVersionAns
    reports; the flash slot and the running version survive reboot() and power_cut()."""

    device: LoRaWANDevice
    verify_key: Ed25519PublicKey
    firmware_version: int
    hw_version: int
    flash_capacity: int = 512 * 1024
    profile: FuotaProfile = SPECIFICATION
    rng: random.Random = field(default_factory=random.Random)
    poll_interval_s: float = 60.0
    flash: FlashSlot = field(init=False)
    events: list[tuple[float, str]] = field(default_factory=list)  # (loop time, what) for tests
    received: ReceivedLog = field(default_factory=ReceivedLog)  # (loop time, command, multicast)

    def __post_init__(self) -> None:
        self.flash = FlashSlot(self.flash_capacity)
        self._loop: asyncio.AbstractEventLoop | None = None
        self.reboots = 0
        self._runner: asyncio.Task[None] | None = None
        self._wakeup: asyncio.Future[None] | None = None  # what _run waits on; _queue resolves it
        self._boot_ram()
        self._hooks: dict[int, tuple[Package, Callable[[int, bytes, bool], None]]] = {}
        for package, handler in ((MULTICAST_SETUP, self._on_multicast_setup), (FRAGMENTATION, self._on_fragmentation),
                                 (CLOCK_SYNC, self._on_clock_sync), (FIRMWARE_MANAGEMENT, self._on_firmware)):
            hook = self._hook(package, handler)
            self._hooks[package.fport] = package, hook
            self.device.set_port_handler(package.fport, hook)

    @property
    def name(self) -> str:
        return self.device.name

    def _boot_ram(self) -> None:
        """RAM state from scratch (boot)."""
        self._outbox: list[_Uplink] = []
        self._sessions: dict[int, _FragSession] = {}
        self._class_b_sessions: dict[int, ts005.McClassBSessionReq] = {}
        self._reboot_timer: asyncio.TimerHandle | None = None
        self._token = 0
        self._last_uplink = -float("inf")
        self._poll_gap = self.poll_interval_s

    # -- life cycle ------------------------------------------------------------------------------
    def start(self) -> None:
        """Boot actions (clock sync, version announcement) and the uplink loop; the first poll
        comes at a random point of the poll interval so that a fleet does not send all at once."""
        self._last_uplink = self._now() - self.rng.uniform(0, self.poll_interval_s)
        self._booted()
        if self._runner is None:
            self._runner = asyncio.ensure_future(self._run())

    async def stop(self) -> None:
        if self._runner is not None:
            self._runner.cancel()
            await asyncio.gather(self._runner, return_exceptions=True)
            self._runner = None
        if self._reboot_timer is not None:
            self._reboot_timer.cancel()

    async def reboot(self) -> None:
        """Restart: a valid image in the flash slot is installed first (TS006 §2), then RAM is lost."""
        check = check_image(self.flash.data, verify_key=self.verify_key, hw_version=self.hw_version)
        if check.status is ts006.UpImageStatus.VALID and check.fw_version is not None:
            self._note(f"installed firmware {check.fw_version:#x} (was {self.firmware_version:#x}, "
                       f"{check.body_size} octets)")
            self.firmware_version = check.fw_version
            self.flash.erase()  # "after a successful reboot into the new version the image is deleted"
        self.reboots += 1
        if self._reboot_timer is not None:
            self._reboot_timer.cancel()
        self._boot_ram()
        await self.device.reboot()
        self._note("rebooted")
        self._booted()

    async def power_cut(self) -> None:
        """Supply lost: no install, RAM lost, the device clock restarts with its error."""
        if self._reboot_timer is not None:
            self._reboot_timer.cancel()
        self._boot_ram()
        await self.device.power_cut()
        self._note("power cut")
        self._booted()

    def _booted(self) -> None:
        if self.profile.clock_sync_at_boot:
            self._queue_app_time_request(self.rng.uniform(0, BOOT_JITTER_S))
        if self.profile.announce_version_after_boot and self.reboots:
            delay = self.rng.uniform(*self.profile.announce_delay_s)
            self._queue(FIRMWARE_MANAGEMENT, lambda: ts006.DevVersionAns(fw_version=self.firmware_version,
                                                                         hw_version=self.hw_version), delay)

    # -- uplinks ---------------------------------------------------------------------------------
    def _now(self) -> float:
        loop = self._loop  # the running loop, looked up once (asked per fragment heard)
        if loop is None:
            loop = self._loop = asyncio.get_running_loop()
        return loop.time()

    def _note(self, what: str) -> None:
        self.events.append((self._now(), what))
        log.info("%s: %s", self.name, what)
        timeline.note(self.name, "state", what)

    def _queue(self, package: Package, build: Callable[[], Command], delay_s: float = 0.0) -> None:
        self._outbox.append(_Uplink(package.fport, lambda: build().to_bytes(), self._now() + delay_s))
        _resolve(self._wakeup)

    def _queue_app_time_request(self, delay_s: float = 0.0) -> None:
        def request() -> Command:
            return ts003.AppTimeReq(device_time=int(self.device.clock.gps()) % GPS_MODULO,
                                    token_req=self._token, ans_required=True)
        self._queue(CLOCK_SYNC, request, delay_s)

    def in_session(self) -> bool:
        """Inside (or about to start) a multicast session, by the device's own clock."""
        now = self.device.clock.gps()
        return any(group.session is not None
                   and group.session.start_gps - SESSION_GUARD_S <= now <= group.session.end_gps
                   for group in self.device.multicast.values())

    def _quiet(self) -> bool:
        return self.in_session() and not self.profile.poll_during_session

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            now = self._now()
            due = [item for item in self._outbox if item.not_before <= now]
            quiet = self._quiet()  # asked once: nothing between here and the wait changes it
            if self.device.joined and not quiet and (due or now - self._last_uplink >= self._poll_gap):
                await self._send(due)
                # jittered, so that devices polling at one period do not keep meeting in the same
                # gateway RX1 slots (where the duty cycle would starve the same ones every time)
                self._poll_gap = self.poll_interval_s * self.rng.uniform(1 - POLL_JITTER, 1 + POLL_JITTER)
                continue
            if quiet:  # nothing goes out before the session ends
                waits = [self.device.clock.loop_time_of(group.session.end_gps) - now + 1.0
                         for group in self.device.multicast.values() if group.session is not None]
            else:
                waits = [item.not_before - now for item in self._outbox if item.not_before > now]
                waits.append(self._last_uplink + self._poll_gap - now)
            # Until the earliest wait is over or _queue wakes us: one future and one timer that
            # resolves it (at the loop time asyncio.timeout would have used), rather than
            # asyncio.timeout around an Event, whose expiry -- how most waits end, at the next
            # poll -- cancels the task and raises and converts a CancelledError (issue #18:
            # 96,000 polls at 1,000 devices).
            self._wakeup = wakeup = loop.create_future()
            timer = loop.call_later(max(min(waits), 0.05), _resolve, wakeup)
            try:
                await wakeup
            finally:
                timer.cancel()
                self._wakeup = None

    async def _send(self, due: list[_Uplink]) -> None:
        fport: int | None = None
        payload = b""
        if due:
            fport = due[0].fport
            for item in [item for item in due if item.fport == fport]:
                octets = item.build()
                if payload and len(payload) + len(octets) > 48:  # keep to what DR0-2 carries
                    break
                payload += octets
                self._outbox.remove(item)
        self._last_uplink = self._now()
        try:
            await self.device.send(fport, payload)
        except DeviceError as error:  # includes a reset during the uplink
            log.info("%s: uplink not completed: %s", self.name, error)

    # -- downlinks -------------------------------------------------------------------------------
    def provision(self, *commands: Command) -> None:
        """Take unicast FUOTA requests as if each had arrived in its own downlink, without the
        radio: a fleet put in the state its class A exchanges would leave (a multicast session
        set up, a fragmentation session open) to measure what comes next. Answers are queued
        as for a received request."""
        for command in commands:
            package, hook = next((package, hook) for package, hook in self._hooks.values()
                                 if type(command) in package.downlink_commands)
            hook(package.fport, command.to_bytes(), False)

    def _hook(self, package: Package, handler: Callable[[Command, bool], None]) -> Callable[[int, bytes, bool], None]:
        package_fport = package.fport

        def on_downlink(fport: int, payload: bytes, multicast: bool) -> None:
            # once per fragment every device hears: the shared parse looked up here first, the
            # loop's time read directly once the loop is known
            commands: Sequence[Command] | None = _shared_parses.get((package_fport, payload)) if multicast else None
            if commands is None:
                try:
                    commands = (shared_downlink_commands(package, payload) if multicast
                                else package.parse_downlink(payload))
                except FuotaCodecError as error:
                    self._note(f"FPort {fport}: downlink ignored: {error}")
                    return
            loop = self._loop
            now = loop.time() if loop is not None else self._now()
            for command in commands:
                if multicast and not command.MULTICAST_ALLOWED:
                    self._note(f"{type(command).__name__} on multicast dropped (unicast only)")
                    continue
                self.received.add(now, command, multicast)
                if isinstance(command, PackageVersionReq):
                    self._queue(package, package.version_answer)
                else:
                    handler(command, multicast)
        return on_downlink

    # TS005 ------------------------------------------------------------------------------------
    def _on_multicast_setup(self, command: Command, multicast: bool) -> None:
        device = self.device
        if isinstance(command, ts005.McGroupStatusReq):
            if not self.profile.answers_group_status:
                return  # LoRaMac-node: not implemented
            groups = tuple(ts005.McGroupStatusEntry(g.group_id, g.mc_addr) for g in device.multicast.values()
                           if command.req_group_mask >> g.group_id & 1)
            mask = sum(1 << entry.mc_group_id for entry in groups)
            self._queue(MULTICAST_SETUP, lambda: ts005.McGroupStatusAns(
                ans_group_mask=mask, nb_total_groups=len(device.multicast), groups=groups))
        elif isinstance(command, ts005.McGroupSetupReq):
            gen_app_key = device.config.gen_app_key
            if gen_app_key is None:
                self._queue(MULTICAST_SETUP, lambda: ts005.McGroupSetupAns(mc_group_id=command.mc_group_id,
                                                                           id_error=True))
                return
            ke_key = lorawan_keys.derive_mc_ke_key(lorawan_keys.mc_root_key_from_gen_app_key(gen_app_key))
            mc_key = lorawan_keys.decrypt_mc_key(ke_key, command.mc_key_encrypted)
            session_keys = lorawan_keys.derive_mc_session_keys(mc_key, command.mc_addr)
            device.add_multicast_group(command.mc_group_id, command.mc_addr,
                                       session_keys,
                                       min_fcnt=command.min_mc_fcount, max_fcnt=command.max_mc_fcount)
            self._note(f"multicast group {command.mc_group_id} McAddr {command.mc_addr:08X}")
            self._queue(MULTICAST_SETUP, lambda: ts005.McGroupSetupAns(mc_group_id=command.mc_group_id,
                                                                       id_error=False))
        elif isinstance(command, ts005.McGroupDeleteReq):
            removed = device.remove_multicast_group(command.mc_group_id)
            self._queue(MULTICAST_SETUP, lambda: ts005.McGroupDeleteAns(mc_group_id=command.mc_group_id,
                                                                        mc_group_undefined=not removed))
        elif isinstance(command, (ts005.McClassCSessionReq, ts005.McClassBSessionReq)):
            self._on_session_request(command)

    def _on_session_request(self, command: ts005.McClassCSessionReq | ts005.McClassBSessionReq) -> None:
        device = self.device
        answer_type: Any = (ts005.McClassCSessionAns if isinstance(command, ts005.McClassCSessionReq)
                            else ts005.McClassBSessionAns)
        try:
            device.region.sub_band(command.frequency_hz)
            freq_error = False
        except LoRaWANError:
            freq_error = True
        try:
            device.region.data_rate(command.dr)
            dr_error = False
        except LoRaWANError:
            dr_error = True
        undefined = command.mc_group_id not in device.multicast
        # SessionTime is GPS seconds mod 2^32; TimeToStart by the device's own clock (LoRaMac-node).
        now = device.clock.gps()
        start = command.session_time + (int(now) // GPS_MODULO) * GPS_MODULO
        time_to_start = int(start - now)
        if time_to_start <= 0 or time_to_start >= 1 << 24:
            undefined = True  # LoRaMac-node sets bit 4 when the start has passed
        if dr_error or freq_error or undefined:
            self._note(f"{type(command).__name__} refused (dr {dr_error}, freq {freq_error}, group/time {undefined})")
            self._queue(MULTICAST_SETUP, lambda: answer_type(mc_group_id=command.mc_group_id, dr_error=dr_error,
                                                             freq_error=freq_error, mc_group_undefined=undefined))
            return
        if isinstance(command, ts005.McClassCSessionReq):
            device.start_multicast_session(command.mc_group_id, start_gps=start, timeout_exponent=command.time_out,
                                           frequency_hz=command.frequency_hz, data_rate=command.dr)
            self._note(f"class C session in {time_to_start} s for {command.session_timeout_seconds} s")
        else:  # beacon-synchronised ping slots are out of scope: the session is only recorded
            self._class_b_sessions[command.mc_group_id] = command
            self._note(f"class B session recorded (periodicity {command.periodicity}), not received")
        self._queue(MULTICAST_SETUP, lambda: answer_type(mc_group_id=command.mc_group_id,
                                                         time_to_start=time_to_start))

    # TS004 ------------------------------------------------------------------------------------
    def _on_fragmentation(self, command: Command, multicast: bool) -> None:
        if type(command) is ts004.DataFragment:  # first: over a thousand of these per image
            self._on_fragment(command)
        elif isinstance(command, ts004.FragSessionSetupReq):
            self._on_frag_setup(command)
        elif isinstance(command, ts004.FragSessionDeleteReq):
            missing = self._sessions.pop(command.frag_index, None) is None
            self._queue(FRAGMENTATION, lambda: ts004.FragSessionDeleteAns(frag_index=command.frag_index,
                                                                          session_does_not_exist=missing))
        elif isinstance(command, ts004.FragSessionStatusReq):
            session = self._sessions.get(command.frag_index)
            if session is None:
                return
            if not command.participants and session.decoder.state is DecoderState.COMPLETE:
                return  # Participants = 0: only devices still missing fragments answer
            delay = self.rng.uniform(0, session.setup.block_ack_delay_max_seconds)
            self._queue(FRAGMENTATION, lambda: ts004.FragSessionStatusAns.from_decoder(session.decoder,
                                                                                       command.frag_index), delay)
        elif isinstance(command, ts004.DataFragment):
            self._on_fragment(command)

    def _on_frag_setup(self, command: ts004.FragSessionSetupReq) -> None:
        size = command.nb_frag * command.frag_size
        encoding_unsupported = command.frag_algo != ts004.FRAG_ALGO_PARITY
        not_enough_memory = size > self.flash.capacity
        ok = not (encoding_unsupported or not_enough_memory)
        if ok:
            try:
                decoder = command.decoder(profile=self.profile.decoder, max_missing=self.profile.max_missing)
            except FuotaCodecError:
                ok, encoding_unsupported = False, True
        if ok:
            self._sessions[command.frag_index] = _FragSession(command, decoder)
            self._note(f"fragmentation session {command.frag_index}: {command.nb_frag} x {command.frag_size}")
        else:
            self._note(f"fragmentation session {command.frag_index} refused ({size} octets)")
        self._queue(FRAGMENTATION, lambda: ts004.FragSessionSetupAns(
            frag_index=command.frag_index, encoding_unsupported=encoding_unsupported,
            not_enough_memory=not_enough_memory))

    def _on_fragment(self, command: ts004.DataFragment) -> None:
        session = self._sessions.get(command.frag_index)
        if session is None:
            return
        receiving = session.decoder.state is DecoderState.RECEIVING
        try:  # fragments after the end still count in NbFragReceived (TS004 §3.2)
            state = session.decoder.push(command.n, command.payload)
        except FuotaCodecError as error:
            self._note(f"fragment N={command.n} ignored: {error}")
            return
        if not receiving:
            return
        if state is DecoderState.COMPLETE:
            try:
                self.flash.write(session.decoder.block())
                self._note(f"data block {command.frag_index} complete ({len(self.flash.data or b'')} octets)")
            except FlashFull as error:
                self._note(f"data block {command.frag_index} not stored: {error}")
        elif state is not DecoderState.RECEIVING:
            self._note(f"fragmentation session {command.frag_index}: {state.value}")

    def fragment_state(self, frag_index: int = 0) -> DecoderState | None:
        session = self._sessions.get(frag_index)
        return None if session is None else session.decoder.state

    # TS003 ------------------------------------------------------------------------------------
    def _on_clock_sync(self, command: Command, multicast: bool) -> None:
        if isinstance(command, ts003.AppTimeAns):
            if command.token_ans != self._token:
                self._note(f"AppTimeAns token {command.token_ans} is not {self._token}: ignored")
                return
            self.device.clock.adjust(command.time_correction)
            self._token = (self._token + 1) % 16
            self._note(f"clock corrected by {command.time_correction} s")
        elif isinstance(command, ts003.DeviceAppTimePeriodicityReq):
            self._queue(CLOCK_SYNC, lambda: ts003.DeviceAppTimePeriodicityAns(
                not_supported=True, device_time=int(self.device.clock.gps()) % GPS_MODULO))
        elif isinstance(command, ts003.ForceDeviceResyncReq):
            for _ in range(command.nb_transmissions):
                self._queue_app_time_request()

    # TS006 ------------------------------------------------------------------------------------
    def _on_firmware(self, command: Command, multicast: bool) -> None:
        if isinstance(command, ts006.DevVersionReq):
            self._queue(FIRMWARE_MANAGEMENT, lambda: ts006.DevVersionAns(fw_version=self.firmware_version,
                                                                         hw_version=self.hw_version))
        elif isinstance(command, ts006.DevRebootTimeReq):
            self._on_reboot_time(command.reboot_time)
        elif isinstance(command, ts006.DevRebootCountdownReq):
            self._on_reboot_countdown(command.countdown)
        elif isinstance(command, ts006.DevUpgradeImageReq):
            check = check_image(self.flash.data, verify_key=self.verify_key, hw_version=self.hw_version)
            self._note(f"upgrade image status {check.status.name}")
            version = check.fw_version if check.status is ts006.UpImageStatus.VALID else None
            self._queue(FIRMWARE_MANAGEMENT, lambda: ts006.DevUpgradeImageAns(up_image_status=check.status,
                                                                              next_firmware_version=version))
        elif isinstance(command, ts006.DevDeleteImageReq):
            check = check_image(self.flash.data, verify_key=self.verify_key, hw_version=self.hw_version)
            no_image = self.flash.data is None
            wrong = not no_image and check.fw_version is not None and check.fw_version != command.firmware_to_delete_version
            if not no_image and not wrong:
                self.flash.erase()  # a corrupt image is deleted too: nothing valid to keep
                self._sessions.clear()
                self._note("image deleted")
            self._queue(FIRMWARE_MANAGEMENT, lambda: ts006.DevDeleteImageAns(error_no_valid_image=no_image,
                                                                             error_invalid_version=wrong))

    def _schedule_reboot(self, delay_s: float) -> None:
        if self._reboot_timer is not None:
            self._reboot_timer.cancel()  # only one reboot can be programmed (TS006 §3.3)
        loop = asyncio.get_running_loop()
        self._reboot_timer = loop.call_later(self.device.clock.loop_delay(delay_s),
                                             lambda: asyncio.ensure_future(self.reboot()))

    def _cancel_reboot(self) -> None:
        if self._reboot_timer is not None:
            self._reboot_timer.cancel()
            self._reboot_timer = None
        self._note("programmed reboot cancelled")

    @property
    def reboot_programmed(self) -> bool:
        return self._reboot_timer is not None and not self._reboot_timer.cancelled()

    def _on_reboot_time(self, reboot_time: int) -> None:
        if reboot_time == ts006.REBOOT_TIME_CANCEL:
            self._cancel_reboot()
            answer = ts006.REBOOT_TIME_CANCEL
        elif reboot_time == ts006.REBOOT_TIME_NOW:
            # No answer rule for RebootTime 0 was found; like the ST variant, reboot before answering.
            self._schedule_reboot(0.0)
            return
        else:
            now = self.device.clock.gps()
            delay = reboot_time + (int(now) // GPS_MODULO) * GPS_MODULO - now
            if delay > 0:
                self._schedule_reboot(delay)
                self._note(f"reboot programmed in {delay:.0f} s")
            answer = max(int(delay), 0)  # 0: cannot reboot at a past time
        self._queue(FIRMWARE_MANAGEMENT, lambda: ts006.DevRebootTimeAns(reboot_time=answer))

    def _on_reboot_countdown(self, countdown: int) -> None:
        if countdown == ts006.COUNTDOWN_CANCEL:
            self._cancel_reboot()
        elif countdown == ts006.COUNTDOWN_NOW:
            self._schedule_reboot(0.0)  # TS006 §3.4: the device SHALL NOT answer Countdown 0
            return
        else:
            self._schedule_reboot(countdown)
            self._note(f"reboot programmed in {countdown} s")
        self._queue(FIRMWARE_MANAGEMENT, lambda: ts006.DevRebootCountdownAns(countdown=countdown))

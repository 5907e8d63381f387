"""A LoRaWAN 1.0.x class A/C end device on the in-process radio medium (see the package docstring)."""

from __future__ import annotations

import asyncio
import collections
import logging
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from otaharness.protocols.lorawan import mac_commands as mc
from otaharness.protocols.lorawan.airtime import frame_time_on_air_s, lora_symbol_time_s
from otaharness.protocols.lorawan.errors import LoRaWANError
from otaharness.protocols.lorawan.frames import (
    DataFrame,
    EncryptedJoinAccept,
    MType,
    UplinkFCtrl,
    build_data_frame,
    build_join_request,
    decode_phy_payload,
    reconstruct_fcnt,
)
from otaharness.protocols.lorawan.keys import SessionKeys, derive_session_keys
from otaharness.protocols.lorawan.region import EU868, Region, frequencies_from_cf_list
from otaharness.runtime.radio import (
    DeviceRadio,
    DutyCycleTracker,
    Position,
    RadioMedium,
    Reception,
    Transmission,
)

from .mac import STICKY_ANSWERS, MacContext, answer_mac_commands
from .state import (
    FCNT_MAX,
    MAX_MULTICAST_GROUPS,
    Channel,
    Clock,
    DeviceClass,
    DeviceConfig,
    DeviceError,
    DeviceResetError,
    DevNonceMode,
    MacSettings,
    MulticastGroup,
    MulticastSession,
    Nvm,
    Session,
)

log = logging.getLogger(__name__)
T = TypeVar("T")
K = TypeVar("K")

MAX_FOPTS = 15
MIC_AND_MHDR = 5  # MHDR(1) + MIC(4) around a MACPayload
# LoRaWAN 1.0.3 §18.4 ACK_TIMEOUT: a confirmed uplink is repeated 1..3 s (random) after RX2.
ACK_TIMEOUT_RANGE_S = (1.0, 3.0)
JOIN_RETRY_RANGE_S = (1.0, 3.0)

DownlinkHandler = Callable[[int, bytes, bool], None]  # (fport, payload, multicast)
SessionListener = Callable[[int, SessionKeys], None]  # (DevAddr or McAddr, keys): e.g. a capture key log


# Work on a multicast frame that is the same pure function of the same bytes and keys for every
# device of the group that heard it is done once per process and shared: the MIC check (keyed by
# the PHYPayload, NwkSKey and the 32-bit FCnt tried) and the FRMPayload decryption (PHYPayload,
# AppSKey, FCnt), whose result is then one bytes object that every device's FUOTA agent
# references. Each device still decodes the PHYPayload, rebuilds the FCnt and applies its own
# counters and rules. Bounded: cleared when full (a few campaign rounds' frames). A device's
# reception of a multicast frame asks `shared_multicast_payload`, both in one look-up.
_SHARED_MULTICAST_LIMIT = 4096
_shared_mic_checks: dict[tuple[bytes, bytes, int], bool] = {}
_shared_plaintexts: dict[tuple[bytes, bytes, int], bytes] = {}
_shared_payloads: dict[tuple[bytes, bytes, bytes, int], bytes | None] = {}
_NOT_YET = object()


def _remember(table: dict[K, T], key: K, value: T) -> T:
    if len(table) >= _SHARED_MULTICAST_LIMIT:
        table.clear()
    table[key] = value
    return value


def forget_shared_multicast_work() -> None:
    """Empty the shared MIC and decryption results (to time reception from a cold start)."""
    _shared_mic_checks.clear()
    _shared_plaintexts.clear()
    _shared_payloads.clear()


def shared_multicast_mic_is_valid(frame: DataFrame, phy_payload: bytes, nwk_s_key: bytes, fcnt: int) -> bool:
    """``frame.mic_is_valid(nwk_s_key, fcnt)`` for the multicast frame decoded from ``phy_payload``,
    computed once per process for those octets, key and FCnt."""
    key = (phy_payload, nwk_s_key, fcnt)
    valid = _shared_mic_checks.get(key)
    if valid is None:
        valid = _remember(_shared_mic_checks, key, frame.mic_is_valid(nwk_s_key, fcnt))
    return valid


def shared_multicast_plaintext(frame: DataFrame, phy_payload: bytes, keys: SessionKeys, fcnt: int) -> bytes:
    """``frame.decrypt_payload(keys, fcnt)`` for a multicast frame (FPort > 0, so AppSKey) decoded
    from ``phy_payload``, computed once per process: the same bytes object for every device."""
    key = (phy_payload, keys.app_s_key, fcnt)
    plaintext = _shared_plaintexts.get(key)
    if plaintext is None:
        plaintext = _remember(_shared_plaintexts, key, frame.decrypt_payload(keys, fcnt))
    return plaintext


def shared_multicast_payload(frame: DataFrame, phy_payload: bytes, keys: SessionKeys, fcnt: int) -> bytes | None:
    """The plain FRMPayload of a multicast frame (FPort > 0) decoded from ``phy_payload`` if its
    MIC holds for ``keys.nwk_s_key`` and ``fcnt``, else None: ``shared_multicast_mic_is_valid``
    then ``shared_multicast_plaintext`` in one look-up, computed once per process for those
    octets, keys and FCnt (the same bytes object for every device of the group)."""
    key = (phy_payload, keys.nwk_s_key, keys.app_s_key, fcnt)
    plaintext = _shared_payloads.get(key, _NOT_YET)
    if plaintext is _NOT_YET:
        plaintext = _remember(_shared_payloads, key, frame.decrypt_payload(keys, fcnt)
                              if frame.mic_is_valid(keys.nwk_s_key, fcnt) else None)
    return plaintext  # type: ignore[return-value]


# Keyed by the region object's identity (the entry holds the region, so the id is not reused):
# hashing a Region dataclass hashes every data rate and channel of it, and two windows open
# per uplink of every device.
_window_timings: dict[tuple[int, int], tuple[Region, tuple[float, float]]] = {}


def _window_timing(region: Region, data_rate: int) -> tuple[float, float]:
    """(symbol time, airtime of the longest downlink) at ``data_rate``: a receive window's size."""
    known = _window_timings.get((id(region), data_rate))
    if known is not None:
        return known[1]
    dr = region.data_rate(data_rate)
    assert dr.spreading_factor is not None and dr.bandwidth_hz is not None
    longest = frame_time_on_air_s(min(dr.max_mac_payload_size(repeater_compatible=False) + MIC_AND_MHDR, 255),
                                  dr, uplink=False)
    timing = lora_symbol_time_s(dr.spreading_factor, dr.bandwidth_hz), longest
    _window_timings[(id(region), data_rate)] = region, timing
    return timing


def _resolve_with_none(result: asyncio.Future[DataFrame | None]) -> None:
    """A receive window closed with nothing caught (unless a frame or a power cut resolved it)."""
    if not result.done():
        result.set_result(None)


class DeviceClock:
    """The device's own GPS clock: the true time plus an offset, running ``drift_ppm`` fast."""

    def __init__(self, clock: Clock, loop: asyncio.AbstractEventLoop, drift_ppm: float, offset_s: float) -> None:
        self._loop = loop
        self.rate = 1.0 + drift_ppm * 1e-6
        self._reference_loop = loop.time()
        self._reference_gps = clock.gps() + offset_s

    def gps(self, at: float | None = None) -> float:
        """Device GPS seconds at loop time ``at`` (now by default)."""
        at = self._loop.time() if at is None else at
        return self._reference_gps + (at - self._reference_loop) * self.rate

    def loop_time_of(self, gps: float) -> float:
        return self._reference_loop + (gps - self._reference_gps) / self.rate

    def set_gps(self, gps: float, at: float) -> None:
        """The device's clock read ``gps`` at loop time ``at`` (DeviceTimeAns, TS003 AppTimeAns)."""
        self._reference_loop, self._reference_gps = at, gps

    def adjust(self, correction_s: float) -> None:
        self._reference_gps += correction_s

    def loop_delay(self, local_seconds: float) -> float:
        """Loop seconds a device timer of ``local_seconds`` takes."""
        return local_seconds / self.rate


@dataclass
class RxWindow:
    """A class A receive window: catches a frame whose preamble starts within ``tolerance`` of ``opens``."""

    frequency_hz: int
    data_rate: int
    opens: float  # loop time
    tolerance: float
    closes_by: float  # loop time by which a caught frame has certainly ended
    cancelled: bool = False

    def catches(self, frequency_hz: int, data_rate: int, start: float) -> bool:
        return (not self.cancelled and (frequency_hz, data_rate) == (self.frequency_hz, self.data_rate)
                and abs(start - self.opens) <= self.tolerance)


class LoRaWANDevice:
    """One end device: OTAA/ABP, class A windows, class C, multicast, MAC answers, NVM."""

    def __init__(self, name: str, config: DeviceConfig, medium: RadioMedium, position: Position, *,
                 clock: Clock, rng: random.Random, region: Region = EU868,
                 on_downlink: DownlinkHandler | None = None, on_session: SessionListener | None = None) -> None:
        self.name = name
        self.config = config
        self.medium = medium
        self.position = position
        self.region = region
        self.rng = rng
        self._harness_clock = clock
        self.on_downlink = on_downlink
        self.on_session = on_session
        self._port_handlers: dict[int, DownlinkHandler] = {}
        self.nvm = Nvm()
        self.counters: collections.Counter[str] = collections.Counter()
        self.link_check: mc.LinkCheckAns | None = None
        self._radio: DeviceRadio | None = None
        self._generation = 0
        self._power_on()

    # -- power -----------------------------------------------------------------------------------
    def _power_on(self, *, keep_clock: DeviceClock | None = None) -> None:
        """Boot: RAM from scratch, then what NVM and the configuration give."""
        loop = self.medium.loop
        self._generation += 1
        self.clock = keep_clock or DeviceClock(self._harness_clock, loop, self.config.clock_drift_ppm,
                                               self.config.clock_offset_s)
        self._lock = asyncio.Lock()
        self._windows: list[RxWindow] = []
        self._tx_intervals: collections.deque[tuple[float, float]] = collections.deque(maxlen=4)
        self._window_result: asyncio.Future[DataFrame | None] | None = None
        self._join_dev_nonce: int | None = None
        self._joined_with: int | None = None
        self._uplink_asks_time = False
        self._pending_answers: list[mc.MacCommand] = []
        self._sticky_answers: list[mc.MacCommand] = []
        self._ack_downlink = False
        self._requests: list[mc.MacCommand] = []
        self._device_time_request_end: float | None = None
        self._last_snr_db = 0.0
        self.duty_cycle = DutyCycleTracker(self.region)
        self.device_class = self.config.device_class
        nvm = self.nvm
        self.session = nvm.session if self.config.keep_session else None
        if self.session is not None and not self.config.keep_fcnts:
            self.session.fcnt_up, self.session.fcnt_down = 0, None
        self.mac = nvm.mac if (self.config.keep_session and nvm.mac) else MacSettings.defaults(self.region, self.config)
        self.multicast = nvm.multicast if self.config.keep_multicast else {}
        for group in self.multicast.values():
            group.session = None  # sessions are RAM state
            if not self.config.keep_fcnts:
                group.last_fcnt = None
        if self.session is None and self.config.abp is not None:
            self.session = Session(self.config.abp.dev_addr, self.config.abp.keys)
            if self.config.keep_fcnts and nvm.session is not None:
                self.session.fcnt_up, self.session.fcnt_down = nvm.session.fcnt_up, nvm.session.fcnt_down
        self._persist()
        self._radio = self.medium.attach_device(self.name, self.position, self._on_reception, self.listening)
        if self.session is not None:
            self._announce(self.session.dev_addr, self.session.keys)

    def _power_off(self) -> None:
        self._generation += 1
        self.medium.detach(self.name)
        self._radio = None
        if self._window_result is not None and not self._window_result.done():
            self._window_result.set_result(None)

    async def reboot(self) -> None:
        """Restart: RAM state lost, NVM kept; the device's real-time clock keeps running."""
        clock = self.clock
        self._power_off()
        self._power_on(keep_clock=clock)

    async def power_cut(self) -> None:
        """Supply lost and back: as reboot(), and the clock restarts with its configured error."""
        self._power_off()
        self._power_on()

    def _persist(self) -> None:
        """NVM write (LoRaMac-node writes on every change; so does this emulator)."""
        self.nvm.session = self.session
        self.nvm.mac = self.mac
        self.nvm.multicast = self.multicast

    def _check_alive(self, generation: int) -> None:
        if generation != self._generation:
            raise DeviceResetError(f"device {self.name} was reset during the operation")

    def _announce(self, address: int, keys: SessionKeys) -> None:
        if self.on_session is not None:
            self.on_session(address, keys)

    # -- application API -------------------------------------------------------------------------
    def set_port_handler(self, fport: int, handler: DownlinkHandler | None) -> None:
        """``handler(fport, payload, multicast)`` for downlinks on ``fport`` (instead of on_downlink)."""
        if not 1 <= fport <= 255:
            raise DeviceError(f"application FPort must be 1..255, got {fport}")
        if handler is None:
            self._port_handlers.pop(fport, None)
        else:
            self._port_handlers[fport] = handler

    def request_link_check(self) -> None:
        self._requests.append(mc.LinkCheckReq())

    def request_device_time(self) -> None:
        self._requests.append(mc.DeviceTimeReq())

    @property
    def joined(self) -> bool:
        return self.session is not None

    async def send(self, fport: int | None, payload: bytes = b"", *, confirmed: bool = False) -> bool:
        """One uplink cycle (with its RX windows). Confirmed: repeated until acknowledged, up to
        ``confirmed_attempts`` transmissions; returns whether an ACK came. Unconfirmed: sent
        NbTrans times unless a downlink arrives; returns True. ``fport`` None sends only MAC
        answers (an empty frame)."""
        if self.session is None:
            raise DeviceError(f"device {self.name} has no session: join first")
        if fport is not None and not 1 <= fport <= 223:
            raise DeviceError(f"application FPort must be 1..223, got {fport}")
        generation = self._generation
        async with self._lock:
            self._check_alive(generation)
            return await self._data_cycle(generation, fport, bytes(payload), confirmed)

    async def join(self) -> bool:
        """OTAA: join-requests until a valid join-accept arrives, at most ``join_attempts``."""
        app_key = self.config.app_key
        if app_key is None:
            raise DeviceError(f"device {self.name} is ABP-activated; it has no AppKey to join with")
        generation = self._generation
        async with self._lock:
            for _ in range(self.config.join_attempts):
                self._check_alive(generation)
                dev_nonce = self._next_dev_nonce()
                request = build_join_request(app_eui=self.config.app_eui, dev_eui=self.config.dev_eui,
                                             dev_nonce=dev_nonce, app_key=app_key)
                self._join_dev_nonce = dev_nonce
                await self._transmit_and_listen(generation, request.to_bytes(), join=True)
                self._join_dev_nonce = None
                if self._joined_with == dev_nonce:
                    return True
                await self._sleep(generation, self.rng.uniform(*JOIN_RETRY_RANGE_S))
            return False

    def _next_dev_nonce(self) -> int:
        nvm = self.nvm
        if self.config.dev_nonce_mode is DevNonceMode.COUNTER:
            if nvm.dev_nonce_counter > 0xFFFF:
                raise DeviceError(f"device {self.name} has used every DevNonce")
            nonce = nvm.dev_nonce_counter
        else:
            if len(nvm.used_dev_nonces) > 0xFFFF:
                raise DeviceError(f"device {self.name} has used every DevNonce")
            nonce = self.rng.randrange(0x10000)
            while nonce in nvm.used_dev_nonces:
                nonce = self.rng.randrange(0x10000)
        nvm.dev_nonce_counter += 1
        nvm.used_dev_nonces.add(nonce)
        return nonce

    # -- multicast (TS005 state; the FUOTA package fills it) ----------------------------------------
    def add_multicast_group(self, group_id: int, mc_addr: int, keys: SessionKeys, *, min_fcnt: int = 0,
                            max_fcnt: int = FCNT_MAX) -> MulticastGroup:
        if not 0 <= group_id < MAX_MULTICAST_GROUPS:
            raise DeviceError(f"multicast group id must be 0..{MAX_MULTICAST_GROUPS - 1}, got {group_id}")
        group = MulticastGroup(group_id, mc_addr, keys, min_fcnt=min_fcnt, max_fcnt=max_fcnt)
        self.multicast[group_id] = group
        self._persist()
        self._announce(mc_addr, keys)
        return group

    def remove_multicast_group(self, group_id: int) -> bool:
        removed = self.multicast.pop(group_id, None) is not None
        self._persist()
        return removed

    def start_multicast_session(self, group_id: int, *, start_gps: float, timeout_exponent: int,
                                frequency_hz: int, data_rate: int) -> MulticastSession:
        """Listen on the group's frequency/DR from ``start_gps`` (device clock) for 2^timeout s."""
        group = self.multicast.get(group_id)
        if group is None:
            raise DeviceError(f"multicast group {group_id} is not defined on {self.name}")
        self.region.data_rate(data_rate)
        group.session = MulticastSession(start_gps, timeout_exponent, frequency_hz, data_rate)
        return group.session

    # -- the uplink cycle ----------------------------------------------------------------------
    async def _data_cycle(self, generation: int, fport: int | None, payload: bytes, confirmed: bool) -> bool:
        session = self.session
        assert session is not None
        if session.fcnt_up > FCNT_MAX:
            raise DeviceError(f"device {self.name}: FCntUp exhausted, a new session is needed")
        frame_bytes = self._build_uplink(session, fport, payload, confirmed)
        attempts = self.config.confirmed_attempts if confirmed else self.mac.nb_trans
        acked = False
        for attempt in range(attempts):
            if attempt:
                self.counters["retransmissions"] += 1
            downlink = await self._transmit_and_listen(generation, frame_bytes, join=False)
            if confirmed and downlink is not None and downlink.fctrl.ack:
                acked = True
                break
            if not confirmed and downlink is not None:
                break
            if attempt + 1 < attempts and confirmed:
                await self._sleep(generation, self.rng.uniform(*ACK_TIMEOUT_RANGE_S))
        self._check_alive(generation)
        session.fcnt_up += 1
        self._persist()
        if confirmed:
            self.counters["acked" if acked else "unacked"] += 1
        return acked or not confirmed

    def _build_uplink(self, session: Session, fport: int | None, payload: bytes, confirmed: bool) -> bytes:
        commands = self._sticky_answers + self._pending_answers + self._requests
        fopts = b""
        for command in commands:
            if len(fopts) + len(command.to_bytes()) <= MAX_FOPTS:
                fopts += command.to_bytes()
        self._pending_answers, self._requests = [], []
        dr = self.region.data_rate(self.mac.data_rate)
        room = dr.max_mac_payload_size(repeater_compatible=False) - 8 - len(fopts)
        if len(payload) > room:
            raise DeviceError(f"payload of {len(payload)} octets exceeds the {room} that fit at DR{dr.index}")
        if fport is None and payload:
            raise DeviceError("a payload needs an FPort")
        mtype = MType.CONFIRMED_DATA_UP if confirmed else MType.UNCONFIRMED_DATA_UP
        fctrl = UplinkFCtrl(adr=self.config.adr, ack=self._ack_downlink)
        self._ack_downlink = False
        frame = build_data_frame(mtype, dev_addr=session.dev_addr, fcnt=session.fcnt_up, keys=session.keys,
                                 fport=fport, payload=payload, fctrl=fctrl, fopts=fopts)
        self._uplink_asks_time = any(isinstance(c, mc.DeviceTimeReq) for c in commands)
        return frame.to_bytes()

    async def _transmit_and_listen(self, generation: int, phy_payload: bytes, *, join: bool) -> DataFrame | None:
        """Send one frame on a free channel, open RX1/RX2, return the downlink caught (or None)."""
        channel = await self._free_channel(generation)
        self._check_alive(generation)
        assert self._radio is not None
        mac = self.mac
        transmission = Transmission(channel.frequency_hz, self.region.data_rate(mac.data_rate), phy_payload,
                                    power_dbm=self.region.tx_power_dbm(mac.tx_power_index))
        frame = self._radio.transmit(transmission)
        self.counters["join_requests" if join else "uplinks"] += 1
        self._tx_intervals.append((frame.start, frame.end))
        self.duty_cycle.aggregate_duty_cycle = 1 / (1 << mac.max_duty_cycle) if mac.max_duty_cycle else None
        self.duty_cycle.record(channel.frequency_hz, frame.start, frame.airtime)
        if self._uplink_asks_time and not join:
            self._device_time_request_end = frame.end
        delay1 = self.region.join_accept_delay1_s if join else mac.rx1_delay_s
        delay2 = self.region.join_accept_delay2_s if join else mac.rx1_delay_s + 1
        rx1 = self._window(channel.rx1_frequency_hz or channel.frequency_hz,
                           self.region.rx1_data_rate(mac.data_rate, mac.rx1_dr_offset), frame.end, delay1)
        rx2 = self._window(mac.rx2_frequency_hz, mac.rx2_data_rate, frame.end, delay2)
        self._windows = [rx1, rx2]
        loop = self.medium.loop
        self._window_result = result = loop.create_future()
        # One timer that resolves the window's future with None when RX2 has closed, instead of
        # asyncio.wait_for: on Python 3.11 that adds a waiter future, and on the timeout (most
        # class A polls hear nothing) a cancel-and-wait round and a TimeoutError, per uplink.
        closing = loop.call_later(max(rx2.closes_by - loop.time(), 0.0), _resolve_with_none, result)
        try:
            await result
        finally:
            closing.cancel()
        self._check_alive(generation)
        self._windows = []
        self._window_result = None
        return result.result() if result.done() and not result.cancelled() else None

    def _window(self, frequency_hz: int, data_rate: int, uplink_end: float, delay_s: int) -> RxWindow:
        symbol_s, longest = _window_timing(self.region, data_rate)
        tolerance = self.config.rx_window_symbols * symbol_s
        opens = uplink_end + self.clock.loop_delay(delay_s)
        return RxWindow(frequency_hz, data_rate, opens, tolerance, opens + tolerance + longest + 1e-6)

    async def _free_channel(self, generation: int) -> Channel:
        """A random enabled channel for the current DR whose sub-band the duty cycle allows now;
        waits (on the loop clock) when every such channel is resting."""
        loop = self.medium.loop
        while True:
            candidates = [ch for ch in self.mac.channels if ch is not None and ch.allows(self.mac.data_rate)]
            if not candidates:
                raise DeviceError(f"device {self.name} has no enabled channel for DR{self.mac.data_rate}")
            waits = [(self.duty_cycle.time_until_allowed(ch.frequency_hz, loop.time()), ch) for ch in candidates]
            free = [ch for wait, ch in waits if wait == 0]
            if free:
                return self.rng.choice(free)
            self.counters["duty_cycle_waits"] += 1
            await self._sleep(generation, min(wait for wait, _ in waits))

    async def _sleep(self, generation: int, seconds: float) -> None:
        await asyncio.sleep(seconds)
        self._check_alive(generation)

    # -- receiving -------------------------------------------------------------------------------
    def listening(self, frequency_hz: int, data_rate: int, start: float, end: float) -> bool:
        """Was the receiver on ``frequency_hz``/``data_rate`` for the whole of [start, end]?"""
        # Asked for every frame the device is in reach of (plain loops: this is the hot path).
        intervals = self._tx_intervals  # in time order: only those ending after `start` can overlap
        if intervals and intervals[-1][1] > start:
            for tx_start, tx_end in intervals:
                if tx_start < end and start < tx_end:
                    return False  # half duplex: the device was transmitting
        windows = self._windows
        if windows:
            for window in windows:
                if window.catches(frequency_hz, data_rate, start):
                    return True
            rx1 = windows[0]
            if rx1.opens - rx1.tolerance < end and start < rx1.opens + rx1.tolerance:
                return False  # RX1 had the receiver on other parameters
        # self._continuous_rx(start, end) == (frequency_hz, data_rate), inline (every frame heard)
        clock = self.clock
        for group in self.multicast.values():
            session = group.session
            if session is not None:
                reference_loop, reference_gps, rate = clock._reference_loop, clock._reference_gps, clock.rate
                if (reference_loop + (session.start_gps - reference_gps) / rate <= start
                        and end <= reference_loop + (session.start_gps + (1 << session.timeout_exponent)
                                                     - reference_gps) / rate):
                    return session.frequency_hz == frequency_hz and session.data_rate == data_rate
        if self.device_class is DeviceClass.C:
            mac = self.mac
            return mac.rx2_frequency_hz == frequency_hz and mac.rx2_data_rate == data_rate
        return False

    def _continuous_rx(self, start: float, end: float) -> tuple[int, int] | None:
        """The parameters the receiver stays on between windows: a running multicast session's
        (LoRaMac-node's McRxParams override class C RX2), else RX2 for class C, else none."""
        clock = self.clock
        for group in self.multicast.values():
            session = group.session
            # clock.loop_time_of, inline: asked for every frame a device in a session hears
            if session is not None and (
                    clock._reference_loop + (session.start_gps - clock._reference_gps) / clock.rate <= start
                    and end <= clock._reference_loop + (session.end_gps - clock._reference_gps) / clock.rate):
                return session.frequency_hz, session.data_rate
        if self.device_class is DeviceClass.C:
            return self.mac.rx2_frequency_hz, self.mac.rx2_data_rate
        return None

    def _on_reception(self, reception: Reception) -> None:
        phy_payload = reception.frame.transmission.phy_payload
        if type(phy_payload) is not bytes:
            phy_payload = bytes(phy_payload)  # what Reception.phy_payload gives, without the call per frame
        try:
            frame = decode_phy_payload(phy_payload)
        except LoRaWANError:
            self.counters["undecodable"] += 1
            return
        self._last_snr_db = reception.snr_db
        if type(frame) is DataFrame:
            if not frame.uplink:
                self._on_data_frame(frame, reception, phy_payload)
        elif isinstance(frame, EncryptedJoinAccept):
            self._on_join_accept(frame)
        elif isinstance(frame, DataFrame) and not frame.uplink:
            self._on_data_frame(frame, reception, phy_payload)

    def _on_join_accept(self, encrypted: EncryptedJoinAccept) -> None:
        app_key = self.config.app_key
        dev_nonce = self._join_dev_nonce
        if app_key is None or dev_nonce is None or self._window_result is None:
            self.counters["unexpected_join_accept"] += 1
            return
        accept = encrypted.decrypt(app_key)
        if not accept.mic_is_valid(app_key):
            self.counters["join_accept_mic_failed"] += 1
            return
        keys = derive_session_keys(app_key, join_nonce=accept.join_nonce, net_id=accept.net_id, dev_nonce=dev_nonce)
        self.session = Session(accept.dev_addr, keys)
        mac = MacSettings.defaults(self.region, self.config)
        mac.rx1_dr_offset, mac.rx2_data_rate = accept.rx1_dr_offset, accept.rx2_data_rate
        mac.rx1_delay_s = max(accept.rx_delay, 1)
        if accept.cf_list is not None:
            try:
                extra = frequencies_from_cf_list(accept.cf_list)
            except LoRaWANError:
                extra = ()
            for index, frequency in enumerate(extra, start=len(self.region.default_channels_hz)):
                mac.channels[index] = Channel(frequency, 0, 5)
        self.mac = mac
        self._joined_with = dev_nonce
        self._pending_answers, self._sticky_answers = [], []
        self._persist()
        self.counters["joins"] += 1
        self._announce(accept.dev_addr, keys)
        self._windows = []
        if not self._window_result.done():
            self._window_result.set_result(None)

    def _on_data_frame(self, frame: DataFrame, reception: Reception, phy_payload: bytes) -> None:
        dev_addr = frame.dev_addr
        session = self.session
        if session is not None and dev_addr == session.dev_addr:
            self._on_unicast(frame, session, reception)
            return
        for group in self.multicast.values():
            if group.mc_addr == dev_addr:
                self._on_multicast(frame, group, phy_payload)
                return
        self.counters["not_for_me"] += 1

    def _accept_fcnt(self, frame: DataFrame, keys: SessionKeys, last: int | None, minimum: int,
                     shared_phy_payload: bytes | None = None) -> int | None:
        """The frame's 32-bit FCnt if it is new and its MIC holds, else None (counted).

        ``shared_phy_payload``: the frame's octets, to share the MIC checks of a multicast frame."""
        try:
            fcnt = reconstruct_fcnt(frame.fcnt16, minimum if last is None else last + 1)
        except LoRaWANError:
            self.counters["fcnt_overflow"] += 1
            return None
        if self._mic_is_valid(frame, keys, fcnt, shared_phy_payload):
            return fcnt
        if last is not None:
            earlier = fcnt - (1 << 16)
            if earlier >= 0 and self._mic_is_valid(frame, keys, earlier, shared_phy_payload):
                self.counters["replayed"] += 1  # an FCnt at or below the last accepted one
                return None
        self.counters["mic_failed"] += 1
        return None

    @staticmethod
    def _mic_is_valid(frame: DataFrame, keys: SessionKeys, fcnt: int, shared_phy_payload: bytes | None) -> bool:
        if shared_phy_payload is None:
            return frame.mic_is_valid(keys.nwk_s_key, fcnt)
        return shared_multicast_mic_is_valid(frame, shared_phy_payload, keys.nwk_s_key, fcnt)

    def _on_unicast(self, frame: DataFrame, session: Session, reception: Reception) -> None:
        fcnt = self._accept_fcnt(frame, session.keys, session.fcnt_down, 0)
        if fcnt is None:
            return
        session.fcnt_down = fcnt
        self._persist()
        self.counters["downlinks"] += 1
        self._sticky_answers = []  # a downlink arrived: stop repeating sticky answers
        if frame.confirmed:
            self._ack_downlink = True
        in_window = any(window.catches(reception.frequency_hz, reception.data_rate.index, reception.start)
                        for window in self._windows)
        if in_window:
            for window in self._windows:
                window.cancelled = True  # class A: a frame in RX1 means no RX2
        try:
            if frame.fport == 0:
                commands = mc.decode_mac_commands(frame.decrypt_payload(session.keys, fcnt), uplink=False)
            else:
                commands = mc.decode_mac_commands(frame.fopts, uplink=False)
        except LoRaWANError:
            self.counters["bad_mac_commands"] += 1
            commands = []
        self._answer(commands)
        if in_window and self._window_result is not None and not self._window_result.done():
            self._window_result.set_result(frame)
        if frame.fport:
            self._deliver(frame.fport, frame.decrypt_payload(session.keys, fcnt), multicast=False)

    def _on_multicast(self, frame: DataFrame, group: MulticastGroup, phy_payload: bytes) -> None:
        # LoRaWAN 1.0.3 §11.2 (class C multicast): unconfirmed, no ACK, no MAC commands, FPort > 0.
        if frame.confirmed or frame.fctrl.ack or frame.fopts or not frame.fport:
            self.counters["multicast_rejected"] += 1
            return
        keys, last = group.keys, group.last_fcnt
        # self._accept_fcnt, inline for a frame whose counter and MIC hold (every fragment heard);
        # anything else goes through it to be counted as it says
        try:
            fcnt: int | None = reconstruct_fcnt(frame.fcnt16, group.min_fcnt if last is None else last + 1)
        except LoRaWANError:
            fcnt = None
        # the MIC check and the decryption, shared with the group's other devices (decrypted
        # even past max_fcnt: a pure function, and such a frame is rare)
        plaintext = None if fcnt is None else shared_multicast_payload(frame, phy_payload, keys, fcnt)
        if plaintext is None:
            fcnt = self._accept_fcnt(frame, keys, last, group.min_fcnt, phy_payload)
            if fcnt is None:
                return
            plaintext = shared_multicast_plaintext(frame, phy_payload, keys, fcnt)
        if fcnt > group.max_fcnt:
            self.counters["multicast_fcnt_beyond_max"] += 1
            return
        group.last_fcnt = fcnt
        self._persist()
        self.counters["multicast_downlinks"] += 1
        fport = frame.fport
        handler = self._port_handlers.get(fport, self.on_downlink)  # self._deliver, inline
        if handler is not None:
            handler(fport, plaintext, True)

    def _deliver(self, fport: int, payload: bytes, *, multicast: bool) -> None:
        handler = self._port_handlers.get(fport, self.on_downlink)
        if handler is not None:
            handler(fport, payload, multicast)

    def _answer(self, commands: list[mc.MacCommand]) -> None:
        ctx = MacContext(self.region, self.mac, self._last_snr_db, self.config.battery,
                         on_link_check=self._on_link_check, on_device_time=self._on_device_time)
        for answer in answer_mac_commands(ctx, commands):
            (self._sticky_answers if isinstance(answer, STICKY_ANSWERS) else self._pending_answers).append(answer)
        self._persist()

    def _on_link_check(self, answer: mc.LinkCheckAns) -> None:
        self.link_check = answer

    def _on_device_time(self, answer: mc.DeviceTimeAns) -> None:
        # §5.9: the time is that of the end of the uplink that carried DeviceTimeReq.
        if self._device_time_request_end is not None:
            self.clock.set_gps(answer.gps_time, self._device_time_request_end)
            self._device_time_request_end = None
            self.counters["clock_synced"] += 1

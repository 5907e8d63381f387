"""The network server core: uplinks in, downlinks out through a :class:`GatewayPort`.

Transport-agnostic: the LNS websocket endpoint (``otaharness.servers.basics_station``) calls
:meth:`NetworkServer.handle_uplink` for ``updf``/``jreq``, :meth:`NetworkServer.handle_dntxed`
for ``dntxed`` and :meth:`NetworkServer.handle_timesync` for ``timesync``, and implements
``GatewayPort.send_dnmsg``. See the package docstring for which station message carries what.
"""

from __future__ import annotations

import asyncio
import collections
import inspect
import logging
import random
from collections.abc import Awaitable, Callable, Collection, Coroutine, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from otaharness.protocols.basics_station import BasicsStationCodecError, format_eui
from otaharness.protocols.basics_station.lns_data import (
    DeviceClass,
    DownlinkMessage,
    DownlinkTransmitted,
    JoinRequestMessage,
    RadioInfo,
    TimesyncReply,
    TimesyncRequest,
    UplinkDataFrame,
    decode_station_message,
)
from otaharness.protocols.lorawan import (
    EU868,
    DataFrame,
    DownlinkFCtrl,
    JoinRequest,
    LoRaWANError,
    MType,
    Region,
    build_data_frame,
    build_join_accept,
    decode_mac_commands,
    derive_session_keys,
    encode_mac_commands,
    frame_time_on_air_s,
    reconstruct_fcnt,
)
from otaharness.protocols.lorawan.crypto import MIC_SIZE
from otaharness.protocols.lorawan.frames import MAX_FOPTS_LENGTH
from otaharness.protocols.lorawan.mac_commands import (
    DeviceTimeAns,
    DeviceTimeReq,
    DevStatusAns,
    DevStatusReq,
    LinkCheckAns,
    LinkCheckReq,
    MacCommand,
)
from otaharness.runtime.clock import Clock, gps_seconds
from otaharness.runtime.tasks import BackgroundTasks

from .duty_cycle import Booking, GatewayAirtime
from .registry import Device, DeviceClassName, DeviceRegistry, MulticastGroup, QueuedDownlink, RegistryError

log = logging.getLogger(__name__)

DEDUP_WINDOW_S = 0.2  # copies of one frame from several gateways arrive within this
DNTXED_TIMEOUT_S = 5.0  # after the planned end of a transmission
CLASS_C_LEAD_S = 0.1  # a class C dnmsg goes out this long before its booked start (station TX_AIM_GAP 20-60 ms)
CLASS_C_ATTEMPTS = 3  # transmissions of one class C downlink without a dntxed before it is dropped
RX2_AFTER_RX1_S = 1.0
FHDR_LENGTH = 7
MAX_FCNT = 2**32 - 1  # frame counters are 32 bits and never wrap within a session
RESERVED_DIID = 0  # in_flight_diid of a queued downlink a class C sender is waiting to send
MULTICAST_DEV_EUI_PREFIX = 0xFFFFFFFF << 32  # DevEui of a multicast dnmsg: prefix | McAddr (never 0)
# Demodulation floor per spreading factor (Semtech SX1276 datasheet), for LinkCheckAns' margin.
DEMODULATION_FLOOR_DB = {7: -7.5, 8: -10.0, 9: -12.5, 10: -15.0, 11: -17.5, 12: -20.0}


class GatewayPort(Protocol):
    """How the core reaches gateways. ``send_dnmsg`` hands one ``dnmsg`` object (JSON-ready
    dict) to the station ``gateway_id``; it raises ``ConnectionError`` when that station is not
    connected. The station's ``dntxed`` comes back through :meth:`NetworkServer.handle_dntxed`."""

    async def send_dnmsg(self, gateway_id: int, dnmsg: dict[str, Any]) -> None: ...


@dataclass(frozen=True)
class GatewayReception:
    gateway_id: int
    radio: RadioInfo
    received_at: float  # loop clock

    @property
    def quality(self) -> tuple[float, float]:
        return self.radio.upinfo.snr, self.radio.upinfo.rssi


@dataclass(frozen=True)
class UplinkMeta:
    """What an application handler learns about an uplink besides its payload."""

    dev_addr: int
    fcnt: int
    confirmed: bool
    adr: bool
    best: GatewayReception
    receptions: tuple[GatewayReception, ...]
    gps_time: float

    @property
    def gateway_id(self) -> int:
        return self.best.gateway_id

    @property
    def data_rate(self) -> int:
        return self.best.radio.dr

    @property
    def frequency(self) -> int:
        return self.best.radio.freq


UplinkHandler = Callable[[int, int, bytes, UplinkMeta], Awaitable[None] | None]


@dataclass(frozen=True)
class TxWindow:
    """Where and when a downlink goes: RX1/RX2 of a class A uplink, or RXC (class C, any time)."""

    name: str
    data_rate: int
    frequency: int
    start: float  # loop clock


@dataclass
class DownlinkHandle:
    """A queued application downlink: ``transmitted`` resolves with the ``dntxed`` of the frame
    that carried it; for a confirmed downlink ``acknowledged`` resolves with the FCnt of the
    device's next uplink if that carries the ACK bit, else with None (not acknowledged; the
    server does not retransmit)."""

    queue_id: int
    dev_eui: int
    confirmed: bool
    transmitted: asyncio.Future[DownlinkTransmitted]
    acknowledged: asyncio.Future[int | None]


@dataclass
class MulticastFrame:
    """A multicast frame in its group's queue; ``transmitted`` resolves with the ``dntxed`` per
    gateway (None for a gateway that did not confirm)."""

    group: str
    fport: int
    payload: bytes
    gateways: tuple[int, ...]
    transmitted: asyncio.Future[dict[int, DownlinkTransmitted | None]]
    fcnt: int | None = None


class DownlinkTooLarge(ValueError):
    """An application payload no receive window of the device can carry (refused when queued)."""

    def __init__(self, size: int, maximum: int, device: Device, region: Region) -> None:
        super().__init__(f"{size} octets fit no {region.name} data rate a class "
                         f"{device.device_class.value} device is sent on: at most {maximum} octets "
                         f"(a {maximum}-octet FRMPayload)")
        self.size = size
        self.maximum = maximum


@dataclass(frozen=True)
class DroppedDownlink:
    """A queued downlink the server gave up (its handle is cancelled with ``reason``)."""

    at: float
    queue_id: int
    dev_eui: int
    size: int
    reason: str


DROPPED_DOWNLINKS_KEPT = 1000


@dataclass
class _PendingUplink:
    message: UplinkDataFrame | JoinRequestMessage
    receptions: list[GatewayReception] = field(default_factory=list)
    window_end: asyncio.TimerHandle | None = None  # cancelled by close(): nothing runs after it


class NetworkServer:
    """LoRaWAN 1.0.x network server for class A and C devices and class C multicast."""

    def __init__(self, db_path: Path | str, clock: Clock, rng: random.Random, gateway_port: GatewayPort, *,
                 region: Region = EU868, net_id: int = 0, dedup_window_s: float = DEDUP_WINDOW_S) -> None:
        self.registry = DeviceRegistry(db_path, net_id)
        self.clock = clock
        self.rng = rng
        self.gateway_port = gateway_port
        self.region = region
        self.dedup_window_s = dedup_window_s
        self.airtime = GatewayAirtime(region)
        self.known_gateways: dict[int, None] = {}  # every gateway heard from, in order
        self._handlers: dict[int, UplinkHandler] = {}
        self._pending: dict[bytes, _PendingUplink] = {}
        self._pending_mac: dict[int, list[MacCommand]] = {}
        self._handles: dict[int, DownlinkHandle] = {}
        self.dropped_downlinks: collections.deque[DroppedDownlink] = collections.deque(maxlen=DROPPED_DOWNLINKS_KEPT)
        self._awaiting_ack: dict[int, DownlinkHandle] = {}
        self._dntxed: dict[int, asyncio.Future[DownlinkTransmitted]] = {}
        self._class_c_senders: dict[int, asyncio.Task[None]] = {}
        self._multicast_queues: dict[str, list[MulticastFrame]] = {}
        self._multicast_senders: dict[str, asyncio.Task[None]] = {}
        self._tasks = BackgroundTasks("network server")
        self._next_diid = rng.randrange(1, 1 << 30)

    async def start(self) -> None:
        """Resume after a restart: class C downlinks still queued go out again (through the
        gateway that last heard each device). Call once the event loop runs."""
        for dev_eui in self.registry.devices_with_queued_downlinks():
            if self.registry.get(dev_eui).device_class is DeviceClassName.C:
                self._kick_class_c(dev_eui)

    async def close(self) -> None:
        for pending in self._pending.values():  # uplinks in their window: dropped, as by a crash
            if pending.window_end is not None:
                pending.window_end.cancel()
        self._pending.clear()
        await self._tasks.cancel_all()
        self.registry.close()

    # -- devices -----------------------------------------------------------------------------
    def add_otaa_device(self, dev_eui: int, join_eui: int, app_key: bytes, device_class: str = "A") -> Device:
        return self.registry.add(Device(dev_eui=dev_eui, join_eui=join_eui, app_key=bytes(app_key),
                                        device_class=DeviceClassName(device_class)))

    def add_abp_device(self, dev_eui: int, dev_addr: int, nwk_s_key: bytes, app_s_key: bytes,
                       device_class: str = "A", fcnt_up: int | None = None, nfcnt_down: int = 0) -> Device:
        """An ABP device; ``fcnt_up`` is its last uplink counter if it has sent before."""
        return self.registry.add(Device(dev_eui=dev_eui, dev_addr=dev_addr, nwk_s_key=bytes(nwk_s_key),
                                        app_s_key=bytes(app_s_key), device_class=DeviceClassName(device_class),
                                        fcnt_up=fcnt_up, nfcnt_down=nfcnt_down))

    def device(self, dev_eui: int) -> Device:
        return self.registry.get(dev_eui)

    # -- application interface -------------------------------------------------------------
    def on_uplink(self, fport: int, handler: UplinkHandler) -> None:
        """``handler(dev_eui, fport, payload, meta)`` for every accepted uplink on ``fport``
        (a coroutine function is run as a task)."""
        if not 1 <= fport <= 255:
            raise ValueError(f"application FPort must be 1..255, got {fport}")
        self._handlers[fport] = handler

    def enqueue_downlink(self, dev_eui: int, fport: int, payload: bytes, confirmed: bool = False) -> DownlinkHandle:
        """Queue an application downlink: class A devices get it after their next uplink, class C
        devices as soon as a gateway and its duty cycle allow."""
        if not 1 <= fport <= 255:
            raise ValueError(f"application FPort must be 1..255, got {fport}")
        maximum = self.max_downlink_payload(self.registry.get(dev_eui))
        if len(payload) > maximum:
            # Refused now: queued, it would wait for a window that can never carry it.
            raise DownlinkTooLarge(len(payload), maximum, self.registry.get(dev_eui), self.region)
        loop = asyncio.get_running_loop()
        item = self.registry.enqueue(dev_eui, fport, bytes(payload), confirmed)
        handle = DownlinkHandle(item.queue_id, dev_eui, confirmed, loop.create_future(), loop.create_future())
        self._handles[item.queue_id] = handle
        if self.registry.get(dev_eui).device_class is DeviceClassName.C:
            self._kick_class_c(dev_eui)
        return handle

    def max_downlink_payload(self, device: Device) -> int:
        """The largest FRMPayload any window this device is sent in can carry, on its current
        settings: class A in RX1 (the DR of an uplink at any data rate, less its RX1DROffset) or
        RX2; class C on its RX2 parameters (where this server sends class C downlinks)."""
        rates = {device.rx2_data_rate}
        if device.device_class is not DeviceClassName.C:
            for uplink_rate in range(len(self.region.data_rates)):
                try:
                    rates.add(self.region.rx1_data_rate(uplink_rate, device.rx1_dr_offset))
                except LoRaWANError:
                    continue
        return max(self.region.data_rate(rate).max_frm_payload_size() for rate in rates)

    def _drop_queued(self, item: QueuedDownlink, reason: str) -> None:
        """Give up a queued downlink: out of the queue, recorded in ``dropped_downlinks``, its
        handle cancelled with the reason (whoever waits on it learns why)."""
        log.warning("downlink %d for %s dropped: %s", item.queue_id, format_eui(item.dev_eui), reason)
        self.registry.remove_queued(item.queue_id)
        self.dropped_downlinks.append(DroppedDownlink(self._now(), item.queue_id, item.dev_eui,
                                                      len(item.payload), reason))
        handle = self._handles.pop(item.queue_id, None)
        if handle is not None:
            handle.transmitted.cancel(reason)
            handle.acknowledged.cancel(reason)

    def _drop_unsendable(self, device: Device, waiting: list[QueuedDownlink]) -> list[QueuedDownlink]:
        """Drop the queued downlinks that stopped fitting every window of the device (its data
        rate settings changed since they were queued); the rest, in order."""
        if not waiting:  # most uplinks find nothing queued: no window sizes to work out
            return waiting
        maximum = self.max_downlink_payload(device)
        kept = []
        for item in waiting:
            if len(item.payload) > maximum:
                self._drop_queued(item, f"{len(item.payload)} octets no longer fit any data rate of the "
                                        f"device (at most {maximum} octets now)")
            else:
                kept.append(item)
        return kept

    def withdraw_downlinks(self, dev_eui: int, fports: Collection[int]) -> int:
        """Withdraw a device's queued application downlinks on these FPorts that have not gone
        out yet (one already handed to a gateway still goes); their handles are cancelled.
        Returns how many were withdrawn."""
        withdrawn = 0
        for item in self.registry.queued(dev_eui):
            if item.fport not in fports:
                continue
            self.registry.remove_queued(item.queue_id)
            handle = self._handles.pop(item.queue_id, None)
            if handle is not None:
                handle.transmitted.cancel()
                handle.acknowledged.cancel()
            withdrawn += 1
        return withdrawn

    def request_dev_status(self, dev_eui: int) -> None:
        """Ask for a DevStatusAns in the next downlink; the answer lands in the registry."""
        self._pending_mac.setdefault(dev_eui, []).append(DevStatusReq())

    def create_multicast_group(self, mc_addr: int, mc_nwk_s_key: bytes, mc_app_s_key: bytes, frequency: int,
                               data_rate: int, name: str | None = None, fcnt: int = 0) -> MulticastGroup:
        self.region.sub_band(frequency)
        self.region.data_rate(data_rate)
        return self.registry.add_group(MulticastGroup(name or f"{mc_addr:08X}", mc_addr, bytes(mc_nwk_s_key),
                                                      bytes(mc_app_s_key), frequency, data_rate, fcnt))

    def enqueue_multicast(self, group: str | MulticastGroup, fport: int, payload: bytes,
                          gateways: Iterable[int] | None = None) -> MulticastFrame:
        """Queue a class C multicast frame, sent through ``gateways`` (default: every gateway heard
        from). Frames of a group go out one after the other, each after the ``dntxed`` of the
        previous one from every gateway (or its timeout)."""
        name = group if isinstance(group, str) else group.name
        record = self.registry.find_group(name)
        if record is None:
            raise RegistryError(f"unknown multicast group {name!r}")
        if not 1 <= fport <= 255:
            raise ValueError("multicast frames carry an application FPort (1..255): no MAC commands")
        limit = self.region.data_rate(record.data_rate).max_frm_payload_size()
        if len(payload) > limit:
            raise ValueError(f"{len(payload)} octets exceed DR{record.data_rate}'s {limit}-octet FRMPayload")
        chosen = tuple(gateways) if gateways is not None else tuple(self.known_gateways)
        if not chosen:
            raise ValueError("no gateway to send the multicast frame through")
        queued = len(self._multicast_queues.get(name, ()))
        if record.fcnt + queued > MAX_FCNT:
            # FCnt is 32 bits (LoRaWAN 1.0.4 §4.3.1.5): the session must be set up anew, the
            # counter never wraps. Refused here, or the frame would wait forever unsent.
            raise ValueError(f"multicast group {name!r} has used up its 32-bit frame counter: "
                             "set its session up again")
        frame = MulticastFrame(name, fport, bytes(payload), chosen, asyncio.get_running_loop().create_future())
        self._multicast_queues.setdefault(name, []).append(frame)
        if name not in self._multicast_senders:
            self._multicast_senders[name] = self._tasks.spawn(self._multicast_sender(name))
        return frame

    # -- station messages ------------------------------------------------------------------
    async def handle_uplink(self, gateway_id: int, message: dict[str, Any] | UplinkDataFrame | JoinRequestMessage,
                            received_at: float | None = None) -> None:
        """An ``updf`` or ``jreq`` from ``gateway_id``, received at ``received_at`` (loop clock,
        default now). Copies of one frame from several gateways within the de-duplication
        window are processed once, the downlink going through the best-heard gateway."""
        self.receive_uplink(gateway_id, message, received_at)

    def receive_uplink(self, gateway_id: int, message: dict[str, Any] | UplinkDataFrame | JoinRequestMessage,
                       received_at: float | None = None) -> None:
        """:meth:`handle_uplink` as a plain call (it never waits), for a caller on the loop that
        would otherwise run a task per uplink for it (the in-process radio link)."""
        loop = asyncio.get_running_loop()
        if received_at is None:
            received_at = loop.time()
        self.known_gateways.setdefault(gateway_id, None)
        try:
            decoded = decode_station_message(message) if isinstance(message, dict) else message
        except BasicsStationCodecError as error:
            log.warning("uplink from gateway %s dropped: malformed message: %s", format_eui(gateway_id), error)
            return
        if not isinstance(decoded, (UplinkDataFrame, JoinRequestMessage)):
            log.info("uplink from gateway %s ignored: %s is not a data or join frame", format_eui(gateway_id),
                     type(decoded).__name__)
            return
        key = decoded.phy_payload()
        reception = GatewayReception(gateway_id, decoded.radio, received_at)
        pending = self._pending.get(key)
        if pending is not None:
            pending.receptions.append(reception)
            return
        pending = self._pending[key] = _PendingUplink(decoded, [reception])
        pending.window_end = loop.call_later(self.dedup_window_s, self._process_uplink, key)

    async def handle_dntxed(self, gateway_id: int, message: dict[str, Any] | DownlinkTransmitted) -> None:
        self.receive_dntxed(gateway_id, message)

    def receive_dntxed(self, gateway_id: int, message: dict[str, Any] | DownlinkTransmitted) -> None:
        """:meth:`handle_dntxed` as a plain call (it never waits)."""
        try:
            dntxed = DownlinkTransmitted.from_dict(message) if isinstance(message, dict) else message
        except BasicsStationCodecError as error:
            log.warning("dntxed from gateway %s dropped: %s", format_eui(gateway_id), error)
            return
        future = self._dntxed.pop(dntxed.diid, None)
        if future is None or future.done():
            log.warning("dntxed from gateway %s for unknown diid %d", format_eui(gateway_id), dntxed.diid)
            return
        if log.isEnabledFor(logging.INFO):  # per frame: no EUI formatting when not logged
            log.info("gateway %s transmitted diid %d for %s on %d Hz DR%d", format_eui(gateway_id), dntxed.diid,
                     format_eui(dntxed.dev_eui), dntxed.freq, dntxed.dr)
        future.set_result(dntxed)

    def handle_timesync(self, gateway_id: int, message: dict[str, Any]) -> dict[str, Any]:
        """The reply to a station ``timesync``: its ``txtime`` echoed with GPS time in µs."""
        request = TimesyncRequest.from_dict(message)
        return TimesyncReply(gpstime=int(self.clock.gps() * 1_000_000), txtime=request.txtime,
                             mux_time=self.clock.epoch()).to_dict()

    # -- uplink processing -----------------------------------------------------------------
    def _process_uplink(self, key: bytes) -> None:
        """The de-duplication window is over: the uplink is processed in the window timer's own
        callback, and a task runs only to hand a downlink to its gateway (issue #18: a task
        per uplink, 96,000 of them in a 1,000-device campaign, most answered with nothing)."""
        pending = self._pending.pop(key)
        best = max(pending.receptions, key=lambda reception: reception.quality)
        try:
            if isinstance(pending.message, JoinRequestMessage):
                hand_over = self._handle_join(key, best)
            else:
                hand_over = self._handle_data(key, best, tuple(pending.receptions))
        except Exception:  # as a failed background task did: logged, and the server goes on
            log.exception("network server: processing an uplink failed")
            return
        if hand_over is not None:
            self._tasks.spawn(hand_over)

    def _handle_join(self, phy: bytes, best: GatewayReception) -> Coroutine[Any, Any, None] | None:
        """The join-request checked and answered: returns the join-accept's hand-over to the
        gateway (None when none is sent)."""
        try:
            request = JoinRequest.from_bytes(phy)
        except LoRaWANError as error:
            log.warning("join-request dropped: %s", error)
            return None
        device = self.registry.find(request.dev_eui)
        if device is None or device.app_key is None:
            log.warning("join-request dropped: unknown DevEUI %s", format_eui(request.dev_eui))
            return None
        app_key = device.app_key
        if device.join_eui != request.app_eui:
            log.warning("join-request from %s dropped: JoinEUI %s is not the device's", format_eui(device.dev_eui),
                        format_eui(request.app_eui))
            return None
        if not request.mic_is_valid(app_key):
            log.warning("join-request from %s dropped: MIC check failed", format_eui(device.dev_eui))
            return None
        if self.registry.dev_nonce_used(device.dev_eui, request.dev_nonce):
            log.warning("join-request from %s dropped: DevNonce %d was used before (replay)",
                        format_eui(device.dev_eui), request.dev_nonce)
            return None
        join_nonce = self.rng.randrange(1 << 24)
        net_id = self.registry.net_id
        dev_addr = self.registry.allocate_dev_addr()
        keys = derive_session_keys(app_key, join_nonce=join_nonce, net_id=net_id, dev_nonce=request.dev_nonce)
        device = self.registry.record_join(device.dev_eui, request.dev_nonce, dev_addr=dev_addr,
                                           nwk_s_key=keys.nwk_s_key, app_s_key=keys.app_s_key, fcnt_up=None,
                                           nfcnt_down=0)
        self._pending_mac.pop(device.dev_eui, None)
        self._awaiting_ack.pop(device.dev_eui, None)
        log.info("device %s joined: DevAddr %08X, DevNonce %d", format_eui(device.dev_eui), dev_addr,
                 request.dev_nonce)
        accept = build_join_accept(join_nonce=join_nonce, net_id=net_id, dev_addr=dev_addr, app_key=app_key,
                                   rx1_dr_offset=device.rx1_dr_offset, rx2_data_rate=device.rx2_data_rate,
                                   rx_delay=device.rx1_delay).to_bytes()
        windows = self._class_a_windows(device, best, self.region.join_accept_delay1_s)
        for window in windows:
            if window.start < self._now():
                continue
            airtime = frame_time_on_air_s(len(accept), self.region.data_rate(window.data_rate), uplink=False)
            if self.airtime.is_free(best.gateway_id, window.frequency, airtime, window.start):
                return self._send_class_a(device, best, self.region.join_accept_delay1_s, window, accept, airtime)
        log.warning("join-accept for %s not sent: no RX1/RX2 window free on gateway %s (duty cycle)",
                    format_eui(device.dev_eui), format_eui(best.gateway_id))
        return None

    def _find_session(self, frame: DataFrame) -> tuple[Device, int] | None:
        """The device whose session verifies the MIC, with the rebuilt 32-bit FCnt."""
        candidates = [d for d in self.registry.devices_by_dev_addr(frame.dev_addr) if d.activated]
        if not candidates:
            log.warning("uplink dropped: unknown DevAddr %08X", frame.dev_addr)
            return None
        for device in candidates:
            keys = device.session_keys
            assert keys is not None
            last = device.fcnt_up or 0
            guesses = [(last & ~0xFFFF) | frame.fcnt16]  # same upper bits: a replay or a counter going back
            try:
                guesses.append(reconstruct_fcnt(frame.fcnt16, last))
            except LoRaWANError:
                pass
            for fcnt in dict.fromkeys(guesses):
                if frame.mic_is_valid(keys.nwk_s_key, fcnt):
                    return device, fcnt
        log.warning("uplink from DevAddr %08X dropped: MIC check failed", frame.dev_addr)
        return None

    def _counter_accepted(self, device: Device, fcnt: int) -> bool:
        if device.fcnt_up is not None and fcnt == device.fcnt_up:
            log.warning("uplink from %s dropped: FCnt %d replayed", format_eui(device.dev_eui), fcnt)
            return False
        if device.fcnt_up is not None and fcnt < device.fcnt_up:
            log.warning("uplink from %s dropped: FCnt %d went back (last %d)", format_eui(device.dev_eui), fcnt,
                        device.fcnt_up)
            return False
        if fcnt - (device.fcnt_up or 0) > self.region.max_fcnt_gap:
            log.warning("uplink from %s dropped: FCnt %d jumps more than %d past %s", format_eui(device.dev_eui),
                        fcnt, self.region.max_fcnt_gap, device.fcnt_up)
            return False
        return True

    def _handle_data(self, phy: bytes, best: GatewayReception,
                     receptions: tuple[GatewayReception, ...]) -> Coroutine[Any, Any, None] | None:
        """The uplink checked, counted, delivered and answered: returns the class A answer's
        hand-over to the gateway (None when nothing is sent)."""
        try:
            frame = DataFrame.from_bytes(phy)
        except LoRaWANError as error:
            log.warning("uplink dropped: malformed frame %s: %s", phy.hex(), error)
            return None
        if not frame.uplink:
            log.warning("uplink dropped: %s is a downlink frame type", frame.mtype.name)
            return None
        session = self._find_session(frame)
        if session is None:
            return None
        device, fcnt = session
        if not self._counter_accepted(device, fcnt):
            return None
        keys = device.session_keys
        assert keys is not None
        # committed before anything this uplink causes leaves the server (_settle_confirmed,
        # _deliver; a downlink's NFCntDown commits it): a crash forgets no uplink heard outside
        device = self.registry.update_deferred(device.dev_eui, fcnt_up=fcnt, last_gateway=best.gateway_id)
        payload = frame.decrypt_payload(keys, fcnt) if frame.fport is not None else b""
        gps_time = gps_seconds(self.clock.epoch() - (asyncio.get_running_loop().time() - best.received_at))
        meta = UplinkMeta(frame.dev_addr, fcnt, frame.confirmed, frame.fctrl.adr, best, receptions, gps_time)
        if log.isEnabledFor(logging.INFO):  # per frame: no EUI formatting when not logged
            log.info("uplink from %s: FCnt %d, FPort %s, %d octets, via %d gateway(s), best %s",
                     format_eui(device.dev_eui), fcnt, frame.fport, len(payload), len(receptions),
                     format_eui(best.gateway_id))
        self._settle_confirmed(device.dev_eui, fcnt if frame.fctrl.ack else None)
        answers = self._answer_mac_commands(device, frame.fopts if frame.fport != 0 else payload, meta)
        if frame.fport:
            self._deliver(device.dev_eui, frame.fport, payload, meta)
        hand_over = self._answer_in_class_a(self.registry.get(device.dev_eui), best, answers, ack=frame.confirmed)
        if device.device_class is not DeviceClassName.C:
            return hand_over
        if hand_over is None:
            self._kick_class_c(device.dev_eui)
            return None
        return self._then_kick_class_c(hand_over, device.dev_eui)

    async def _then_kick_class_c(self, hand_over: Coroutine[Any, Any, None], dev_eui: int) -> None:
        """A class C device's class A answer handed over, then its class C queue (as before)."""
        await hand_over
        self._kick_class_c(dev_eui)

    def _answer_mac_commands(self, device: Device, data: bytes, meta: UplinkMeta) -> list[MacCommand]:
        try:
            commands = decode_mac_commands(data, uplink=True)
        except LoRaWANError as error:
            log.warning("MAC commands from %s ignored: %s", format_eui(device.dev_eui), error)
            return []
        answers: list[MacCommand] = list(self._pending_mac.pop(device.dev_eui, []))
        for command in commands:
            if isinstance(command, LinkCheckReq):
                answers.append(self._link_check_answer(meta))
            elif isinstance(command, DeviceTimeReq):
                seconds = int(meta.gps_time)
                answers.append(DeviceTimeAns(seconds % (1 << 32), int((meta.gps_time - seconds) * 256)))
            elif isinstance(command, DevStatusAns):
                self.registry.update(device.dev_eui, battery=command.battery, margin=command.margin)
                log.info("device %s status: battery %d, margin %d dB", format_eui(device.dev_eui), command.battery,
                         command.margin)
            else:
                log.info("device %s sent %s", format_eui(device.dev_eui), command)
        return answers

    def _link_check_answer(self, meta: UplinkMeta) -> LinkCheckAns:
        spreading_factor = self.region.data_rate(meta.data_rate).spreading_factor or 7
        margin = meta.best.radio.upinfo.snr - DEMODULATION_FLOOR_DB[spreading_factor]
        gateways = len({reception.gateway_id for reception in meta.receptions})
        return LinkCheckAns(margin=max(0, min(254, int(margin))), gw_cnt=min(255, gateways))

    def _deliver(self, dev_eui: int, fport: int, payload: bytes, meta: UplinkMeta) -> None:
        handler = self._handlers.get(fport)
        if handler is None:
            log.info("no application handler for FPort %d (uplink of %s)", fport, format_eui(dev_eui))
            return
        self.registry.commit()
        result = handler(dev_eui, fport, payload, meta)
        if inspect.isawaitable(result):
            self._tasks.spawn(result)

    def _settle_confirmed(self, dev_eui: int, ack_fcnt: int | None) -> None:
        """The first uplink after a confirmed downlink acknowledges it (ACK bit) or not."""
        handle = self._awaiting_ack.pop(dev_eui, None)
        if handle is None or handle.acknowledged.done():
            return
        self.registry.commit()
        if ack_fcnt is None:
            log.warning("device %s did not acknowledge confirmed downlink %d", format_eui(dev_eui), handle.queue_id)
        else:
            log.info("device %s acknowledged downlink %d", format_eui(dev_eui), handle.queue_id)
        handle.acknowledged.set_result(ack_fcnt)

    # -- downlinks -------------------------------------------------------------------------
    def _class_a_windows(self, device: Device, best: GatewayReception, rx_delay: int) -> tuple[TxWindow, TxWindow]:
        """RX1 on the uplink frequency at the uplink DR less RX1DROffset (EU868), RX2 one second
        later on the device's RX2 parameters."""
        rx1_start = best.received_at + max(rx_delay, 1)
        rx1_dr = self.region.rx1_data_rate(best.radio.dr, device.rx1_dr_offset)
        return (TxWindow("RX1", rx1_dr, best.radio.freq, rx1_start),
                TxWindow("RX2", device.rx2_data_rate, device.rx2_frequency, rx1_start + RX2_AFTER_RX1_S))

    @staticmethod
    def _frame_length(fopts: bytes, frm_payload: bytes | None) -> int:
        """PHYPayload octets: MHDR | FHDR | FOpts | [FPort | FRMPayload] | MIC."""
        port_and_payload = 0 if frm_payload is None else 1 + len(frm_payload)
        return 1 + FHDR_LENGTH + len(fopts) + port_and_payload + MIC_SIZE

    def _fits(self, item: QueuedDownlink, fopts: bytes, data_rate: int) -> bool:
        return len(item.payload) + len(fopts) <= self.region.data_rate(data_rate).max_frm_payload_size()

    def _answer_in_class_a(self, device: Device, best: GatewayReception, answers: list[MacCommand],
                           ack: bool) -> Coroutine[Any, Any, None] | None:
        """The answer built and its airtime booked now; returns its hand-over to the gateway."""
        mac = encode_mac_commands(answers)
        waiting = self._drop_unsendable(device, self.registry.queued(device.dev_eui))
        if not mac and not waiting and not ack:
            return None
        fopts, mac_in_payload = (mac, b"") if len(mac) <= MAX_FOPTS_LENGTH else (b"", mac)
        # An FPort 0 payload leaves no room for application data.
        candidates = [] if mac_in_payload else waiting
        for window in self._class_a_windows(device, best, device.rx1_delay):
            if window.start < self._now():
                continue  # processed too late for this window
            # The first queued downlink this window's data rate carries: one that needs a faster
            # data rate than this uplink allows waits for one, without holding up those behind it.
            carried = next((item for item in candidates if self._fits(item, fopts, window.data_rate)), None)
            length = self._frame_length(fopts, carried.payload if carried else (mac_in_payload or None))
            airtime = frame_time_on_air_s(length, self.region.data_rate(window.data_rate), uplink=False)
            if not self.airtime.is_free(best.gateway_id, window.frequency, airtime, window.start):
                continue
            more = len(waiting) > (1 if carried else 0)
            pdu = self._build_unicast(device, carried, fopts, mac_in_payload, ack=ack, more=more)
            return self._send_class_a(device, best, device.rx1_delay, window, pdu, airtime, carried)
        log.warning("downlink for %s not sent: no RX1/RX2 window free on gateway %s (duty cycle); kept queued",
                    format_eui(device.dev_eui), format_eui(best.gateway_id))
        return None

    def _build_unicast(self, device: Device, item: QueuedDownlink | None, fopts: bytes = b"",
                       mac_in_payload: bytes = b"", *, ack: bool = False, more: bool = False) -> bytes:
        keys = device.session_keys
        assert keys is not None and device.dev_addr is not None
        confirmed = item is not None and item.confirmed
        mtype = MType.CONFIRMED_DATA_DOWN if confirmed else MType.UNCONFIRMED_DATA_DOWN
        fport: int | None
        if item is not None:
            fport, payload = item.fport, item.payload
        else:
            fport, payload = (0, mac_in_payload) if mac_in_payload else (None, b"")
        fcnt = self.registry.take_downlink_fcnt(device.dev_eui)
        frame = build_data_frame(mtype, dev_addr=device.dev_addr, fcnt=fcnt, keys=keys, fport=fport, payload=payload,
                                 fctrl=DownlinkFCtrl(ack=ack, f_pending=more), fopts=fopts)
        return frame.to_bytes()

    def _take_diid(self) -> int:
        self._next_diid += 1
        return self._next_diid

    def _send_class_a(self, device: Device, best: GatewayReception, rx_delay: int, window: TxWindow,
                      pdu: bytes, airtime: float, item: QueuedDownlink | None = None) -> Coroutine[Any, Any, None]:
        """A class A ``dnmsg``: the uplink's ``xtime`` and ``rctx``, RxDelay, and only the chosen
        window's DR/frequency (the station then sends in RX2 at xtime + RxDelay + 1 s). Its airtime
        is booked at once; the returned coroutine hands it to the gateway."""
        diid = self._take_diid()
        rx1 = window.name == "RX1"
        dnmsg = DownlinkMessage(
            dev_eui=device.dev_eui, device_class=DeviceClass.A, diid=diid, pdu=pdu, rx_delay=rx_delay,
            rx1_dr=window.data_rate if rx1 else None, rx1_freq=window.frequency if rx1 else None,
            rx2_dr=None if rx1 else window.data_rate, rx2_freq=None if rx1 else window.frequency,
            xtime=best.radio.upinfo.xtime, rctx=best.radio.upinfo.rctx, priority=0, mux_time=self.clock.epoch())
        return self._hand_over_class_a(best.gateway_id, dnmsg, window, airtime, item,
                                       self._book(best.gateway_id, dnmsg, window, airtime, item))

    async def _hand_over_class_a(self, gateway_id: int, dnmsg: DownlinkMessage, window: TxWindow, airtime: float,
                                 item: QueuedDownlink | None,
                                 booked: tuple[Booking, asyncio.Future[DownlinkTransmitted]]) -> None:
        transmitted = await self._hand_over(gateway_id, dnmsg, window, item, *booked)
        if transmitted is not None:
            self._tasks.spawn(self._settle(item, transmitted, window.start + airtime - self._now()))

    def _now(self) -> float:
        return asyncio.get_running_loop().time()

    async def _send(self, gateway_id: int, dnmsg: DownlinkMessage, window: TxWindow, airtime: float,
                    item: QueuedDownlink | None) -> asyncio.Future[DownlinkTransmitted] | None:
        """Book the airtime, hand the ``dnmsg`` to the gateway, and return the future of its
        ``dntxed`` (None when the gateway could not take it)."""
        return await self._hand_over(gateway_id, dnmsg, window, item,
                                     *self._book(gateway_id, dnmsg, window, airtime, item))

    def _book(self, gateway_id: int, dnmsg: DownlinkMessage, window: TxWindow, airtime: float,
              item: QueuedDownlink | None) -> tuple[Booking, asyncio.Future[DownlinkTransmitted]]:
        """The airtime booked and the ``dntxed`` awaited: the part of a send that must not wait."""
        booking = self.airtime.book(gateway_id, window.frequency, airtime, window.start)
        future: asyncio.Future[DownlinkTransmitted] = asyncio.get_running_loop().create_future()
        self._dntxed[dnmsg.diid] = future
        if item is not None:
            self.registry.mark_in_flight(item.queue_id, dnmsg.diid)
        return booking, future

    async def _hand_over(self, gateway_id: int, dnmsg: DownlinkMessage, window: TxWindow, item: QueuedDownlink | None,
                         booking: Booking,
                         future: asyncio.Future[DownlinkTransmitted]) -> asyncio.Future[DownlinkTransmitted] | None:
        """The booked ``dnmsg`` to the gateway: the future of its ``dntxed``, or None (booking undone)."""
        try:
            await self.gateway_port.send_dnmsg(gateway_id, dnmsg.to_dict())
        except ConnectionError as error:
            self._undo_send(booking, dnmsg.diid, item)
            log.warning("dnmsg %d for %s not sent: gateway %s: %s", dnmsg.diid, format_eui(dnmsg.dev_eui),
                        format_eui(gateway_id), error)
            return None
        if log.isEnabledFor(logging.INFO):  # per frame: no EUI formatting when not logged
            log.info("dnmsg %d to gateway %s: %s %d Hz DR%d, %d octets, for %s", dnmsg.diid, format_eui(gateway_id),
                     window.name, window.frequency, window.data_rate, len(dnmsg.pdu), format_eui(dnmsg.dev_eui))
        return future

    def _undo_send(self, booking: Booking, diid: int, item: QueuedDownlink | None) -> None:
        self.airtime.release(booking)
        self._dntxed.pop(diid, None)
        if item is not None:
            self.registry.mark_in_flight(item.queue_id, None)

    async def _await_dntxed(self, future: asyncio.Future[DownlinkTransmitted],
                            until_end: float) -> DownlinkTransmitted | None:
        try:
            async with asyncio.timeout(max(until_end, 0.0) + DNTXED_TIMEOUT_S):
                return await asyncio.shield(future)
        except TimeoutError:
            for diid, pending in list(self._dntxed.items()):
                if pending is future:
                    del self._dntxed[diid]
                    log.warning("no dntxed for diid %d: the gateway did not report a transmission", diid)
            return None

    async def _settle(self, item: QueuedDownlink | None, future: asyncio.Future[DownlinkTransmitted],
                      until_end: float) -> DownlinkTransmitted | None:
        """Wait for the ``dntxed`` of a unicast frame: the carried queue item is then done;
        without one it waits for the next opportunity."""
        dntxed = await self._await_dntxed(future, until_end)
        if item is None:
            return dntxed
        handle = self._handles.get(item.queue_id)
        if dntxed is None:
            self.registry.mark_in_flight(item.queue_id, None)
            return None
        self.registry.remove_queued(item.queue_id)
        if handle is not None:
            del self._handles[item.queue_id]
            if not handle.transmitted.done():
                handle.transmitted.set_result(dntxed)
            if handle.confirmed:
                self._awaiting_ack[item.dev_eui] = handle
        return dntxed

    # -- class C ---------------------------------------------------------------------------
    def _kick_class_c(self, dev_eui: int) -> None:
        if dev_eui not in self._class_c_senders and self.registry.queued(dev_eui):
            self._class_c_senders[dev_eui] = self._tasks.spawn(self._class_c_sender(dev_eui))

    async def _transmit_class_c(self, gateway_id: int, dev_eui: int, frequency: int, data_rate: int,
                                build: Callable[[], bytes], length: int,
                                item: QueuedDownlink | None = None) -> DownlinkTransmitted | None:
        """Wait until ``gateway_id`` may send ``length`` octets on ``frequency`` (duty cycle,
        radio), then send a class C ``dnmsg`` with only RX2 parameters (the station sends it at
        once) and wait for its ``dntxed``. ``build`` makes the frame at send time, so that
        its counter is taken only then."""
        airtime = frame_time_on_air_s(length, self.region.data_rate(data_rate), uplink=False)
        if item is not None:  # reserved: the class A path must not pick it meanwhile
            self.registry.mark_in_flight(item.queue_id, RESERVED_DIID)
        start = self.airtime.earliest_start(gateway_id, frequency, airtime, self._now() + CLASS_C_LEAD_S)
        while start > self._now() + CLASS_C_LEAD_S:
            await asyncio.sleep(start - CLASS_C_LEAD_S - self._now())
            start = self.airtime.earliest_start(gateway_id, frequency, airtime, self._now() + CLASS_C_LEAD_S)
        window = TxWindow("RXC", data_rate, frequency, start)
        dnmsg = DownlinkMessage(dev_eui=dev_eui, device_class=DeviceClass.C, diid=self._take_diid(), pdu=build(),
                                rx_delay=0, rx2_dr=data_rate, rx2_freq=frequency, priority=0,
                                mux_time=self.clock.epoch())
        future = await self._send(gateway_id, dnmsg, window, airtime, item)
        if future is None:
            return None
        return await self._settle(item, future, start + airtime - self._now())

    async def _class_c_sender(self, dev_eui: int) -> None:
        attempts: dict[int, int] = {}
        try:
            while waiting := self.registry.queued(dev_eui):
                item = waiting[0]
                device = self.registry.get(dev_eui)
                if device.last_gateway is None:
                    log.info("class C downlink for %s waits for an uplink (no gateway known)", format_eui(dev_eui))
                    return
                if not self._drop_unsendable(device, [item]):
                    continue  # it no longer fits RX2: dropped, the next one's turn
                commands = self._pending_mac.pop(dev_eui, [])
                fopts = encode_mac_commands(commands)
                if not self._fits(item, fopts, device.rx2_data_rate):
                    # Room for the payload only: the MAC commands wait for the next frame.
                    self._pending_mac.setdefault(dev_eui, [])[:0] = commands
                    fopts = b""
                more = len(waiting) > 1
                dntxed = await self._transmit_class_c(
                    device.last_gateway, dev_eui, device.rx2_frequency, device.rx2_data_rate,
                    lambda: self._build_unicast(self.registry.get(dev_eui), item, fopts, more=more),
                    self._frame_length(fopts, item.payload), item)
                if dntxed is None:
                    attempts[item.queue_id] = attempts.get(item.queue_id, 0) + 1
                    if attempts[item.queue_id] >= CLASS_C_ATTEMPTS:
                        log.warning("downlink %d for %s dropped after %d attempts without dntxed", item.queue_id,
                                    format_eui(dev_eui), CLASS_C_ATTEMPTS)
                        self.registry.remove_queued(item.queue_id)
                    else:
                        await asyncio.sleep(DNTXED_TIMEOUT_S)
        finally:
            self._class_c_senders.pop(dev_eui, None)

    # -- multicast -------------------------------------------------------------------------
    async def _multicast_sender(self, name: str) -> None:
        """Send a group's frames in order through every chosen gateway. A multicast ``dnmsg``
        carries DevEui = MULTICAST_DEV_EUI_PREFIX | McAddr: any non-zero DevEui makes the station
        answer with ``dntxed``, which paces the next frame."""
        queue = self._multicast_queues[name]
        try:
            while queue:
                frame = queue.pop(0)
                group = self.registry.find_group(name)
                assert group is not None
                fcnt = self.registry.take_group_fcnt(name)
                frame.fcnt = fcnt
                pdu = build_data_frame(MType.UNCONFIRMED_DATA_DOWN, dev_addr=group.mc_addr, fcnt=fcnt,
                                       keys=group.session_keys, fport=frame.fport, payload=frame.payload).to_bytes()
                pseudo_eui = MULTICAST_DEV_EUI_PREFIX | group.mc_addr
                results = await asyncio.gather(*(
                    self._transmit_class_c(gateway, pseudo_eui, group.frequency, group.data_rate,
                                           lambda: pdu, len(pdu))
                    for gateway in frame.gateways))
                log.info("multicast %s FCnt %d sent through %d of %d gateway(s)", name, fcnt,
                         sum(r is not None for r in results), len(results))
                if not frame.transmitted.done():
                    frame.transmitted.set_result(dict(zip(frame.gateways, results)))
        finally:
            self._multicast_senders.pop(name, None)


"""The shared radio medium: transmissions, airtime, reach, collisions, loss and gateway duty cycle.

See the package docstring for the model and its rules.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import random
from collections.abc import Callable
from dataclasses import dataclass, field

from otaharness.protocols.lorawan.airtime import frame_time_on_air_s
from otaharness.protocols.lorawan.errors import LoRaWANError
from otaharness.protocols.lorawan.region import EU868, DataRate, Modulation, Region

from .duty_cycle import DutyCycleTracker
from .loss import DIRECTIONS, Direction, LossModel
from .propagation import PathLossModel, Position

log = logging.getLogger(__name__)

DEFAULT_TX_POWER_DBM = 14.0
# A frame survives an overlapping one on the same channel and SF only if it is this much stronger.
CAPTURE_THRESHOLD_DB = 6.0

Listening = Callable[[int, int, float, float], bool]  # (frequency Hz, DR index, start, end) -> bool


class RadioError(ValueError):
    """A transmission the medium cannot carry (bad parameters, unknown radio, regulations)."""


class DutyCycleExceeded(RadioError):
    """A gateway downlink that would break the duty-cycle limit of its sub-band."""


class TransmitterBusy(RadioError):
    """A gateway asked to send while its single TX chain is still sending."""


@dataclass(frozen=True)
class Transmission:
    """What a radio puts on the air: a PHYPayload on a frequency at a LoRa data rate."""

    frequency_hz: int
    data_rate: DataRate
    phy_payload: bytes
    power_dbm: float = DEFAULT_TX_POWER_DBM

    def __post_init__(self) -> None:
        if self.data_rate.modulation is not Modulation.LORA:
            raise RadioError(f"DR{self.data_rate.index} is {self.data_rate.modulation.value}; the medium carries LoRa only")
        if not isinstance(self.phy_payload, (bytes, bytearray)) or not self.phy_payload:
            raise RadioError("a transmission needs a non-empty PHYPayload")

    @property
    def spreading_factor(self) -> int:
        assert self.data_rate.spreading_factor is not None
        return self.data_rate.spreading_factor

    @property
    def bandwidth_hz(self) -> int:
        assert self.data_rate.bandwidth_hz is not None
        return self.data_rate.bandwidth_hz

    def channel(self) -> tuple[int, int, int]:
        """Frames interfere only on the same frequency, spreading factor and bandwidth."""
        return self.frequency_hz, self.spreading_factor, self.bandwidth_hz


@dataclass(frozen=True)
class AirFrame:
    """One transmission on the air: who sent it, when, and in which direction."""

    transmission: Transmission
    sender: str
    uplink: bool
    start: float  # loop time
    end: float

    @property
    def airtime(self) -> float:
        return self.end - self.start


@dataclass(frozen=True)
class Reception:
    """A frame as one receiver got it, delivered at the end of its airtime."""

    frame: AirFrame
    receiver: str
    rssi_dbm: float
    snr_db: float

    @property
    def phy_payload(self) -> bytes:
        return bytes(self.frame.transmission.phy_payload)

    @property
    def frequency_hz(self) -> int:
        return self.frame.transmission.frequency_hz

    @property
    def data_rate(self) -> DataRate:
        return self.frame.transmission.data_rate

    @property
    def sender(self) -> str:
        return self.frame.sender

    @property
    def start(self) -> float:
        return self.frame.start

    @property
    def end(self) -> float:
        return self.frame.end


class _Incoming:
    """A frame arriving at one receiver; ``lost`` names why it will not be delivered.

    One per receiver in reach of every frame (a multicast fragment reaches every device of a
    gateway): a plain slotted class, compared by identity, with the frame's channel and end
    copied in for the collision checks."""

    __slots__ = ("channel", "end", "frame", "lost", "receiver", "rssi_dbm", "snr_db")

    def __init__(self, frame: AirFrame, receiver: _Radio, rssi_dbm: float, snr_db: float,
                 channel: tuple[int, int, int], lost: str | None = None) -> None:
        self.frame = frame
        self.receiver = receiver
        self.rssi_dbm = rssi_dbm
        self.snr_db = snr_db
        self.lost = lost
        self.channel = channel
        self.end = frame.end


@dataclass(eq=False)
class _Radio:
    medium: RadioMedium
    name: str
    position: Position
    _incoming: list[_Incoming] = field(default_factory=list, repr=False)

    def move(self, position: Position) -> None:
        self.position = position
        self.medium._reach.clear()


@dataclass(eq=False)
class GatewayRadio(_Radio):
    """A gateway: receives uplinks, sends downlinks within its duty-cycle budget, one at a time."""

    on_uplink: Callable[[Reception], None] = lambda reception: None
    duty_cycle: DutyCycleTracker | None = None
    _sending_until: float = 0.0

    def transmit(self, transmission: Transmission) -> AirFrame:
        """Send a downlink now (loop time). Raises DutyCycleExceeded or TransmitterBusy."""
        return self.medium._transmit_downlink(self, transmission)

    def time_until_allowed(self, frequency_hz: int, airtime_s: float = 0.0) -> float:
        return self.medium.time_until_allowed(self.name, frequency_hz, airtime_s)


@dataclass(eq=False)
class DeviceRadio(_Radio):
    """An end device's radio: sends uplinks, gets downlinks it was listening for."""

    receiver: Callable[[Reception], None] = lambda reception: None
    listening: Listening = lambda frequency_hz, data_rate, start, end: False

    def transmit(self, transmission: Transmission) -> AirFrame:
        """Send an uplink now (loop time). The device's own duty cycle is the device's business."""
        return self.medium._emit(self, transmission, uplink=True)


Monitor = Callable[[AirFrame, list[Reception]], None]


class RadioMedium:
    """Shared air for gateways and devices on one event loop (virtual time in scenarios)."""

    def __init__(self, region: Region = EU868, rng: random.Random | None = None, *,
                 loop: asyncio.AbstractEventLoop | None = None, path_loss: PathLossModel = PathLossModel(),
                 capture_threshold_db: float = CAPTURE_THRESHOLD_DB) -> None:
        self.region = region
        self.rng = rng if rng is not None else random.Random(0)
        self._loop = loop
        self.path_loss = path_loss
        self.capture_threshold_db = capture_threshold_db
        self.gateways: dict[str, GatewayRadio] = {}
        self.devices: dict[str, DeviceRadio] = {}
        # Loss per direction, keyed (device, gateway or None): a model set for both directions
        # is the same instance in both tables, so its state (a burst) is shared.
        self._loss_up: dict[tuple[str, str | None], LossModel] = {}
        self._loss_down: dict[tuple[str, str | None], LossModel] = {}
        self._link_specific_loss = False  # any model for one (device, gateway) link: looked up first
        self._monitors: list[Monitor] = []
        self.counters: collections.Counter[str] = collections.Counter()
        # Who hears a sender, with what signal: a pure function of the positions, the radios
        # attached and the link parameters, so computed once per sender and parameters and
        # forgotten whenever a radio moves or a gateway attaches or detaches (a fleet is mostly
        # static; a gateway's multicast would otherwise compute every device's link budget per
        # frame). A device attaching or detaching (a reboot) only adds itself to or leaves the
        # gateways' entries, so a fleet rebooting does not recompute every link once per device.
        self._reach: dict[tuple[object, ...], tuple[list[tuple[_Radio, float, float]], int]] = {}

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        if self._loop is None:
            self._loop = asyncio.get_running_loop()
        return self._loop

    def now(self) -> float:
        return self.loop.time()

    # -- who is on the air -----------------------------------------------------------------------
    def attach_gateway(self, name: str, position: Position,
                       on_uplink: Callable[[Reception], None]) -> GatewayRadio:
        self._check_new_name(name)
        gateway = GatewayRadio(self, name, position, on_uplink=on_uplink, duty_cycle=DutyCycleTracker(self.region))
        self.gateways[name] = gateway
        self._reach.clear()
        return gateway

    def attach_device(self, name: str, position: Position, receiver: Callable[[Reception], None],
                      listening: Listening) -> DeviceRadio:
        self._check_new_name(name)
        device = DeviceRadio(self, name, position, receiver=receiver, listening=listening)
        self.devices[name] = device
        for key, (in_reach, out_of_range) in self._reach.items():
            _, sender_position, power_dbm, bandwidth_hz, spreading_factor, uplink, path_loss = key
            if uplink:
                continue  # a device sender's entry lists gateways only
            rssi, snr = path_loss.link_budget(power_dbm, sender_position, position, bandwidth_hz)
            if path_loss.demodulates(spreading_factor, snr):
                in_reach.append((device, rssi, snr))  # attached last: last in attachment order
            else:
                self._reach[key] = in_reach, out_of_range + 1
        return device

    def detach(self, name: str) -> None:
        """Remove a radio; frames on their way to it are dropped."""
        if self.gateways.pop(name, None) is not None:
            self._reach.clear()
        device = self.devices.pop(name, None)
        if device is None:
            return
        for key, (in_reach, out_of_range) in self._reach.items():
            if key[5]:
                continue
            kept = [entry for entry in in_reach if entry[0] is not device]
            if len(kept) == len(in_reach):
                self._reach[key] = in_reach, out_of_range - 1
            else:
                in_reach[:] = kept

    def _check_new_name(self, name: str) -> None:
        if name in self.gateways or name in self.devices:
            raise RadioError(f"a radio named {name!r} is already attached")

    def add_monitor(self, monitor: Monitor) -> None:
        """``monitor(frame, receptions)`` at the end of every frame's airtime (captures, logs)."""
        self._monitors.append(monitor)

    def remove_monitor(self, monitor: Monitor) -> None:
        if monitor in self._monitors:
            self._monitors.remove(monitor)

    # -- loss ----------------------------------------------------------------------------------
    def set_loss(self, device: str, model: LossModel | None, *, gateway: str | None = None,
                 direction: Direction = "both") -> None:
        """Loss on every link of ``device``, or only on its link to ``gateway``; in both
        directions, or only on its ``"uplink"`` or ``"downlink"`` frames.

        A link-specific model wins over the device-wide one (per direction). None removes the
        model in that direction.
        """
        if direction not in DIRECTIONS:
            raise ValueError(f"direction must be one of {', '.join(DIRECTIONS)}, got {direction!r}")
        key = (device, gateway)
        tables = {"both": (self._loss_up, self._loss_down), "uplink": (self._loss_up,),
                  "downlink": (self._loss_down,)}[direction]
        for table in tables:
            if model is None:
                table.pop(key, None)
            else:
                table[key] = model
        self._link_specific_loss = any(gateway_name is not None for table in (self._loss_up, self._loss_down)
                                       for _, gateway_name in table)

    # -- duty cycle ------------------------------------------------------------------------------
    def time_until_allowed(self, gateway: str, frequency_hz: int, airtime_s: float = 0.0) -> float:
        """Seconds until ``gateway`` may start a downlink on ``frequency_hz`` (0 = now).

        ``airtime_s`` is accepted for schedulers that plan a whole frame; the off-time rule
        (duty_cycle.py) makes the answer independent of it.
        """
        radio = self._gateway(gateway)
        assert radio.duty_cycle is not None
        try:
            return radio.duty_cycle.time_until_allowed(frequency_hz, self.now())
        except LoRaWANError as error:
            raise RadioError(str(error)) from None

    def _gateway(self, name: str) -> GatewayRadio:
        try:
            return self.gateways[name]
        except KeyError:
            raise RadioError(f"no gateway named {name!r} is attached") from None

    def _transmit_downlink(self, gateway: GatewayRadio, transmission: Transmission) -> AirFrame:
        now = self.now()
        assert gateway.duty_cycle is not None
        try:
            band = gateway.duty_cycle.sub_band(transmission.frequency_hz)
        except LoRaWANError as error:
            raise RadioError(f"gateway {gateway.name}: {error}") from None
        if gateway._sending_until > now:
            self.counters["refused_busy"] += 1
            raise TransmitterBusy(f"gateway {gateway.name} is still transmitting until t={gateway._sending_until:.3f}")
        wait = gateway.duty_cycle.time_until_allowed(transmission.frequency_hz, now)
        if wait > 0:
            self.counters["refused_duty_cycle"] += 1
            raise DutyCycleExceeded(
                f"gateway {gateway.name}: sub-band {band.name} ({band.duty_cycle:.1%} duty cycle) is free again "
                f"in {wait:.3f} s; downlink on {transmission.frequency_hz} Hz refused")
        frame = self._emit(gateway, transmission, uplink=False)
        gateway.duty_cycle.record(transmission.frequency_hz, frame.start, frame.airtime)
        gateway._sending_until = frame.end
        return frame

    # -- the air ---------------------------------------------------------------------------------
    def _emit(self, sender: _Radio, transmission: Transmission, *, uplink: bool) -> AirFrame:
        if self.gateways.get(sender.name) is not sender and self.devices.get(sender.name) is not sender:
            raise RadioError(f"radio {sender.name!r} is not attached to this medium")
        now = self.now()
        try:
            airtime = frame_time_on_air_s(len(transmission.phy_payload), transmission.data_rate, uplink=uplink)
        except LoRaWANError as error:
            raise RadioError(str(error)) from None
        frame = AirFrame(transmission, sender.name, uplink, now, now + airtime)
        self.counters["uplinks" if uplink else "downlinks"] += 1
        in_reach, out_of_range = self._in_reach(sender, transmission, uplink)
        if out_of_range:
            self.counters["out_of_range"] += out_of_range
        arrivals: list[_Incoming] = []
        channel = transmission.channel()
        table, rng, sender_name = (self._loss_up if uplink else self._loss_down), self.rng, sender.name
        link_specific = self._link_specific_loss
        for receiver, rssi, snr in in_reach:  # once per receiver in reach: lookups kept local
            arrival = _Incoming(frame, receiver, rssi, snr, channel)
            if table:
                device, gateway = (sender_name, receiver.name) if uplink else (receiver.name, sender_name)
                model = (link_specific and table.get((device, gateway))) or table.get((device, None))
                if model is not None and model.lost(rng):
                    arrival.lost = "lost_loss"
            if receiver._incoming:
                self._collide(arrival, now)
            receiver._incoming.append(arrival)
            arrivals.append(arrival)
        self.loop.call_at(frame.end, self._finish, frame, arrivals)
        return frame

    def _in_reach(self, sender: _Radio, transmission: Transmission,
                  uplink: bool) -> tuple[list[tuple[_Radio, float, float]], int]:
        """The receivers that can demodulate ``sender``'s transmission, in attachment order, with
        their (RSSI, SNR); and how many are out of range."""
        key = (sender.name, sender.position, transmission.power_dbm, transmission.bandwidth_hz,
               transmission.spreading_factor, uplink, self.path_loss)
        known = self._reach.get(key)
        if known is not None:
            return known
        in_reach: list[tuple[_Radio, float, float]] = []
        out_of_range = 0
        for receiver in (self.gateways if uplink else self.devices).values():
            rssi, snr = self.path_loss.link_budget(transmission.power_dbm, sender.position, receiver.position,
                                                   transmission.bandwidth_hz)
            if self.path_loss.demodulates(transmission.spreading_factor, snr):
                in_reach.append((receiver, rssi, snr))
            else:
                out_of_range += 1
        self._reach[key] = in_reach, out_of_range
        return in_reach, out_of_range

    def _collide(self, arrival: _Incoming, now: float) -> None:
        """Capture rule: of two overlapping frames on one channel and SF, one survives only if it
        arrives at least ``capture_threshold_db`` stronger; otherwise both are lost."""
        channel = arrival.channel
        for other in arrival.receiver._incoming:
            if other.end <= now or other.channel != channel:
                continue
            margin = arrival.rssi_dbm - other.rssi_dbm
            if margin < self.capture_threshold_db:
                arrival.lost = "lost_collision"
            if margin > -self.capture_threshold_db:
                other.lost = "lost_collision"

    def _finish(self, frame: AirFrame, arrivals: list[_Incoming]) -> None:
        # Once per receiver in reach of every frame: what does not change per arrival is read once.
        receptions: list[Reception] = []
        attached = self.gateways if frame.uplink else self.devices
        transmission = frame.transmission
        frequency_hz, data_rate_index = transmission.frequency_hz, transmission.data_rate.index
        not_listening = 0
        start, end, to_device = frame.start, frame.end, not frame.uplink
        new_reception, reception_fields = object.__new__, Reception
        for arrival in arrivals:
            receiver = arrival.receiver
            receiver._incoming.remove(arrival)
            name = receiver.name
            if attached.get(name) is not receiver:
                continue
            if arrival.lost:
                self.counters[arrival.lost] += 1
                continue
            # a downlink's receivers are devices, an uplink's gateways (_in_reach); no cast
            # helper here: this runs once per receiver of every frame
            if to_device and not receiver.listening(frequency_hz, data_rate_index, start, end):  # type: ignore[attr-defined]
                not_listening += 1
                continue
            # Reception(frame, ...) without the frozen dataclass's per-field object.__setattr__
            reception = new_reception(reception_fields)
            reception.__dict__.update(frame=frame, receiver=name, rssi_dbm=arrival.rssi_dbm, snr_db=arrival.snr_db)
            receptions.append(reception)
            deliver = receiver.receiver if to_device else receiver.on_uplink  # type: ignore[attr-defined]
            try:
                deliver(reception)
            except Exception:
                log.exception("radio %s failed to handle a frame from %s", receiver.name, frame.sender)
        if not_listening:
            self.counters["not_listening"] += not_listening
        if receptions:
            self.counters["delivered"] += len(receptions)
        for monitor in list(self._monitors):
            try:
                monitor(frame, receptions)
            except Exception:
                log.exception("radio monitor %r failed", monitor)

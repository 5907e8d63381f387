"""What an emulated LoRaWAN 1.0.x end device holds: configuration, session, MAC settings,
multicast groups, and the part that survives a reset (NVM)."""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from enum import Enum
from typing import Protocol

from otaharness.protocols.lorawan.keys import SessionKeys
from otaharness.protocols.lorawan.region import Region

MAX_CHANNELS = 16
MAX_MULTICAST_GROUPS = 4
FCNT_MAX = (1 << 32) - 1


class DeviceError(ValueError):
    """A request the emulated device cannot carry out (bad arguments, no session, ...)."""


class DeviceResetError(DeviceError):
    """An uplink or join was cut short by reboot() or power_cut()."""


class DevNonceMode(Enum):
    RANDOM = "random"  # LoRaWAN 1.0.0-1.0.3: a random value; the device avoids values it used before
    COUNTER = "counter"  # LoRaWAN 1.0.4: a counter from 0, kept in NVM


class DeviceClass(Enum):
    A = "A"
    C = "C"


class Clock(Protocol):
    """The harness clock (otaharness.runtime.clock): only GPS time is needed here."""

    def gps(self) -> float: ...


@dataclass(frozen=True)
class AbpActivation:
    dev_addr: int
    keys: SessionKeys


@dataclass
class DeviceConfig:
    """Identity and behaviour switches of one device.

    OTAA needs ``app_key`` (and ``app_eui``); ABP needs ``abp``. ``gen_app_key`` is the 1.0.x
    GenAppKey a TS005 McRootKey derives from (kept for the FUOTA packages).

    NVM policy (what reboot()/power_cut() keep, besides keys, EUIs and the DevNonce state that a
    device always keeps): ``keep_session`` keeps DevAddr, session keys and the MAC settings a
    network gave (LoRaMac-node's NvmDataMgmt does); ``keep_fcnts`` keeps FCntUp/FCntDown (without
    it an ABP device restarts at 0 and a network server rejects it as a replay — a fault worth
    testing); ``keep_multicast`` keeps multicast groups (keys, counters; sessions are RAM).
    """

    dev_eui: int
    app_eui: int = 0
    app_key: bytes | None = None
    gen_app_key: bytes | None = None
    abp: AbpActivation | None = None
    device_class: DeviceClass = DeviceClass.A
    data_rate: int = 5
    tx_power_index: int = 0
    adr: bool = False
    dev_nonce_mode: DevNonceMode = DevNonceMode.RANDOM
    keep_session: bool = True
    keep_fcnts: bool = True
    keep_multicast: bool = True
    confirmed_attempts: int = 8  # LoRaWAN 1.0.3 §18.4 suggests at most 8 transmissions
    join_attempts: int = 5
    clock_drift_ppm: float = 0.0
    clock_offset_s: float = 0.0
    battery: int = 255  # DevStatusAns: 255 = cannot measure
    rx_window_symbols: int = 8  # a window catches a preamble starting within this many symbols of its opening

    def __post_init__(self) -> None:
        if self.abp is None and self.app_key is None:
            raise DeviceError(f"device {self.dev_eui:016x} needs an AppKey (OTAA) or an ABP activation")
        if self.confirmed_attempts < 1 or self.join_attempts < 1:
            raise DeviceError("confirmed_attempts and join_attempts must be at least 1")


@dataclass
class Channel:
    frequency_hz: int
    min_dr: int
    max_dr: int
    enabled: bool = True
    rx1_frequency_hz: int | None = None  # DlChannelReq; None: the uplink frequency

    def allows(self, data_rate: int) -> bool:
        return self.enabled and self.min_dr <= data_rate <= self.max_dr


@dataclass
class MacSettings:
    """Radio parameters the network changes with MAC commands and the join-accept."""

    data_rate: int
    tx_power_index: int
    rx1_dr_offset: int
    rx1_delay_s: int
    rx2_frequency_hz: int
    rx2_data_rate: int
    channels: list[Channel | None]
    nb_trans: int = 1
    max_duty_cycle: int = 0  # DutyCycleReq: aggregate limit 1/2^n, 0 = none

    @classmethod
    def defaults(cls, region: Region, config: DeviceConfig) -> MacSettings:
        last_lora_dr = max(dr.index for dr in region.data_rates if dr.spreading_factor is not None)
        channels: list[Channel | None] = [Channel(f, 0, min(5, last_lora_dr)) for f in region.default_channels_hz]
        channels += [None] * (MAX_CHANNELS - len(channels))
        return cls(data_rate=config.data_rate, tx_power_index=config.tx_power_index, rx1_dr_offset=0,
                   rx1_delay_s=region.receive_delay1_s, rx2_frequency_hz=region.rx2_frequency_hz,
                   rx2_data_rate=region.rx2_data_rate, channels=channels)


@dataclass
class Session:
    dev_addr: int
    keys: SessionKeys
    fcnt_up: int = 0  # the FCnt of the next new uplink
    fcnt_down: int | None = None  # the last accepted downlink FCnt


@dataclass
class MulticastSession:
    """A class C multicast session (TS005 McClassCSessionReq), in device GPS seconds."""

    start_gps: float
    timeout_exponent: int
    frequency_hz: int
    data_rate: int

    @property
    def end_gps(self) -> float:
        return self.start_gps + (1 << self.timeout_exponent)


@dataclass
class MulticastGroup:
    group_id: int
    mc_addr: int
    keys: SessionKeys
    min_fcnt: int = 0
    max_fcnt: int = FCNT_MAX
    last_fcnt: int | None = None
    session: MulticastSession | None = None


@dataclass
class Nvm:
    """Non-volatile memory: survives reboot() and power_cut()."""

    dev_nonce_counter: int = 0
    used_dev_nonces: set[int] = field(default_factory=set)
    session: Session | None = None
    mac: MacSettings | None = None
    multicast: dict[int, MulticastGroup] = field(default_factory=dict)

    def snapshot(self) -> Nvm:
        return copy.deepcopy(self)

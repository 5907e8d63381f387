"""LoRaWAN 1.0.x MAC commands for class A/C devices (LoRaWAN 1.0.3 §5, Table 5).

A MAC command is ``CID(1) | payload``; several are concatenated in FOpts (at most
15 octets) or in an FPort 0 FRMPayload. Request and answer share a CID, so the
decoder needs the direction: ``uplink=True`` for commands sent by the end device.
Multi-octet fields are little-endian; frequencies are 24-bit in units of 100 Hz.
Receivers ignore RFU bits, so decoding drops them.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import ClassVar, Self

from ._wire import check_uint, need, to_le
from .errors import LoRaWANError, UnknownMacCommandError
from .region import frequency_from_wire, frequency_to_wire


class MacCommand:
    """Base of every MAC command: ``CID | payload`` of PAYLOAD_LENGTH octets."""

    CID: ClassVar[int]
    UPLINK: ClassVar[bool]  # True: sent by the end device
    PAYLOAD_LENGTH: ClassVar[int] = 0

    def payload(self) -> bytes:
        return b""

    @classmethod
    def from_payload(cls, payload: bytes) -> Self:
        return cls()

    def to_bytes(self) -> bytes:
        return bytes([self.CID]) + self.payload()


class _StatusAnswer(MacCommand):
    """An answer made of one status octet; STATUS_BITS names its flags from bit 0 up."""

    PAYLOAD_LENGTH = 1
    STATUS_BITS: ClassVar[tuple[str, ...]]

    def payload(self) -> bytes:
        return bytes([sum(bool(getattr(self, name)) << bit for bit, name in enumerate(self.STATUS_BITS))])

    @classmethod
    def from_payload(cls, payload: bytes) -> Self:
        return cls(**{name: bool(payload[0] >> bit & 1) for bit, name in enumerate(cls.STATUS_BITS)})

    @property
    def all_ok(self) -> bool:
        return all(getattr(self, name) for name in self.STATUS_BITS)


def _check_fields(command: object, widths: dict[str, int]) -> None:
    for name, bits in widths.items():
        check_uint(f"{type(command).__name__}.{name}", getattr(command, name), bits)


# --- 0x02 LinkCheck (§5.1) ---

@dataclass(frozen=True)
class LinkCheckReq(MacCommand):
    CID = 0x02
    UPLINK = True


@dataclass(frozen=True)
class LinkCheckAns(MacCommand):
    """Margin(1): dB above demodulation floor of the last LinkCheckReq (0..254); GwCnt(1)."""

    CID = 0x02
    UPLINK = False
    PAYLOAD_LENGTH = 2

    margin: int
    gw_cnt: int

    def __post_init__(self) -> None:
        _check_fields(self, {"margin": 8, "gw_cnt": 8})

    def payload(self) -> bytes:
        return bytes([self.margin, self.gw_cnt])

    @classmethod
    def from_payload(cls, payload: bytes) -> Self:
        return cls(margin=payload[0], gw_cnt=payload[1])


# --- 0x03 LinkADR (§5.2) ---

@dataclass(frozen=True)
class LinkADRReq(MacCommand):
    """DataRate_TXPower(1): 7:4 DataRate, 3:0 TXPower; ChMask(2, LE);
    Redundancy(1): 7 RFU, 6:4 ChMaskCntl, 3:0 NbTrans."""

    CID = 0x03
    UPLINK = False
    PAYLOAD_LENGTH = 4

    data_rate: int
    tx_power: int
    ch_mask: int
    ch_mask_cntl: int = 0
    nb_trans: int = 0

    def __post_init__(self) -> None:
        _check_fields(self, {"data_rate": 4, "tx_power": 4, "ch_mask": 16, "ch_mask_cntl": 3, "nb_trans": 4})

    def payload(self) -> bytes:
        return (bytes([self.data_rate << 4 | self.tx_power]) + to_le("ChMask", self.ch_mask, 2)
                + bytes([self.ch_mask_cntl << 4 | self.nb_trans]))

    @classmethod
    def from_payload(cls, payload: bytes) -> Self:
        return cls(data_rate=payload[0] >> 4, tx_power=payload[0] & 0x0F,
                   ch_mask=int.from_bytes(payload[1:3], "little"),
                   ch_mask_cntl=payload[3] >> 4 & 0b111, nb_trans=payload[3] & 0x0F)


@dataclass(frozen=True)
class LinkADRAns(_StatusAnswer):
    """Status: bit 2 Power ACK, bit 1 Data rate ACK, bit 0 Channel mask ACK."""

    CID = 0x03
    UPLINK = True
    STATUS_BITS = ("channel_mask_ack", "data_rate_ack", "power_ack")

    channel_mask_ack: bool = True
    data_rate_ack: bool = True
    power_ack: bool = True


# --- 0x04 DutyCycle (§5.3) ---

@dataclass(frozen=True)
class DutyCycleReq(MacCommand):
    """DutyCyclePL(1): 3:0 MaxDCycle; aggregated duty cycle limit 1/2^MaxDCycle (0: none)."""

    CID = 0x04
    UPLINK = False
    PAYLOAD_LENGTH = 1

    max_duty_cycle: int

    def __post_init__(self) -> None:
        _check_fields(self, {"max_duty_cycle": 4})

    def payload(self) -> bytes:
        return bytes([self.max_duty_cycle])

    @classmethod
    def from_payload(cls, payload: bytes) -> Self:
        return cls(max_duty_cycle=payload[0] & 0x0F)


@dataclass(frozen=True)
class DutyCycleAns(MacCommand):
    CID = 0x04
    UPLINK = True


# --- 0x05 RXParamSetup (§5.4) ---

@dataclass(frozen=True)
class RXParamSetupReq(MacCommand):
    """DLsettings(1): 7 RFU, 6:4 RX1DRoffset, 3:0 RX2DataRate; Frequency(3) of RX2."""

    CID = 0x05
    UPLINK = False
    PAYLOAD_LENGTH = 4

    rx1_dr_offset: int
    rx2_data_rate: int
    frequency_hz: int

    def __post_init__(self) -> None:
        _check_fields(self, {"rx1_dr_offset": 3, "rx2_data_rate": 4})
        frequency_to_wire(self.frequency_hz)

    def payload(self) -> bytes:
        return bytes([self.rx1_dr_offset << 4 | self.rx2_data_rate]) + frequency_to_wire(self.frequency_hz)

    @classmethod
    def from_payload(cls, payload: bytes) -> Self:
        return cls(rx1_dr_offset=payload[0] >> 4 & 0b111, rx2_data_rate=payload[0] & 0x0F,
                   frequency_hz=frequency_from_wire(payload[1:4]))


@dataclass(frozen=True)
class RXParamSetupAns(_StatusAnswer):
    """Status: bit 2 RX1DRoffset ACK, bit 1 RX2 Data rate ACK, bit 0 Channel ACK."""

    CID = 0x05
    UPLINK = True
    STATUS_BITS = ("channel_ack", "rx2_data_rate_ack", "rx1_dr_offset_ack")

    channel_ack: bool = True
    rx2_data_rate_ack: bool = True
    rx1_dr_offset_ack: bool = True


# --- 0x06 DevStatus (§5.5) ---

@dataclass(frozen=True)
class DevStatusReq(MacCommand):
    CID = 0x06
    UPLINK = False


BATTERY_EXTERNAL_POWER = 0
BATTERY_UNKNOWN = 255


@dataclass(frozen=True)
class DevStatusAns(MacCommand):
    """Battery(1): 0 external power, 1..254 level, 255 unknown;
    Margin(1): 7:6 RFU, 5:0 signed SNR margin in dB (-32..31)."""

    CID = 0x06
    UPLINK = True
    PAYLOAD_LENGTH = 2

    battery: int
    margin: int

    def __post_init__(self) -> None:
        _check_fields(self, {"battery": 8})
        if not -32 <= self.margin <= 31:
            raise LoRaWANError(f"DevStatusAns.margin must be in -32..31, got {self.margin!r}")

    def payload(self) -> bytes:
        return bytes([self.battery, self.margin & 0x3F])

    @classmethod
    def from_payload(cls, payload: bytes) -> Self:
        margin = payload[1] & 0x3F
        return cls(battery=payload[0], margin=margin - 64 if margin >= 32 else margin)


# --- 0x07 NewChannel (§5.6) ---

@dataclass(frozen=True)
class NewChannelReq(MacCommand):
    """ChIndex(1); Freq(3) (0 disables the channel); DrRange(1): 7:4 MaxDR, 3:0 MinDR."""

    CID = 0x07
    UPLINK = False
    PAYLOAD_LENGTH = 5

    ch_index: int
    frequency_hz: int
    max_dr: int
    min_dr: int

    def __post_init__(self) -> None:
        _check_fields(self, {"ch_index": 8, "max_dr": 4, "min_dr": 4})
        frequency_to_wire(self.frequency_hz)

    def payload(self) -> bytes:
        return bytes([self.ch_index]) + frequency_to_wire(self.frequency_hz) + bytes([self.max_dr << 4 | self.min_dr])

    @classmethod
    def from_payload(cls, payload: bytes) -> Self:
        return cls(ch_index=payload[0], frequency_hz=frequency_from_wire(payload[1:4]),
                   max_dr=payload[4] >> 4, min_dr=payload[4] & 0x0F)


@dataclass(frozen=True)
class NewChannelAns(_StatusAnswer):
    """Status: bit 1 Data rate range ok, bit 0 Channel frequency ok."""

    CID = 0x07
    UPLINK = True
    STATUS_BITS = ("channel_frequency_ok", "data_rate_range_ok")

    channel_frequency_ok: bool = True
    data_rate_range_ok: bool = True


# --- 0x08 RXTimingSetup (§5.7) ---

@dataclass(frozen=True)
class RXTimingSetupReq(MacCommand):
    """Settings(1): 3:0 Del, RX1 delay in seconds (0 means 1 s)."""

    CID = 0x08
    UPLINK = False
    PAYLOAD_LENGTH = 1

    delay: int

    def __post_init__(self) -> None:
        _check_fields(self, {"delay": 4})

    @property
    def rx1_delay_s(self) -> int:
        return max(self.delay, 1)

    def payload(self) -> bytes:
        return bytes([self.delay])

    @classmethod
    def from_payload(cls, payload: bytes) -> Self:
        return cls(delay=payload[0] & 0x0F)


@dataclass(frozen=True)
class RXTimingSetupAns(MacCommand):
    CID = 0x08
    UPLINK = True


# --- 0x09 TxParamSetup (§5.8, LoRaWAN 1.0.2+) ---

# MaxEIRP index → dBm (§5.8).
MAX_EIRP_DBM: tuple[int, ...] = (8, 10, 12, 13, 14, 16, 18, 20, 21, 24, 26, 27, 29, 30, 33, 36)


@dataclass(frozen=True)
class TxParamSetupReq(MacCommand):
    """EIRP_DwellTime(1): 7:6 RFU, 5 DownlinkDwellTime, 4 UplinkDwellTime (1 = 400 ms), 3:0 MaxEIRP."""

    CID = 0x09
    UPLINK = False
    PAYLOAD_LENGTH = 1

    downlink_dwell_time: bool
    uplink_dwell_time: bool
    max_eirp_index: int

    def __post_init__(self) -> None:
        _check_fields(self, {"max_eirp_index": 4})

    @property
    def max_eirp_dbm(self) -> int:
        return MAX_EIRP_DBM[self.max_eirp_index]

    def payload(self) -> bytes:
        return bytes([self.downlink_dwell_time << 5 | self.uplink_dwell_time << 4 | self.max_eirp_index])

    @classmethod
    def from_payload(cls, payload: bytes) -> Self:
        return cls(downlink_dwell_time=bool(payload[0] & 0x20), uplink_dwell_time=bool(payload[0] & 0x10),
                   max_eirp_index=payload[0] & 0x0F)


@dataclass(frozen=True)
class TxParamSetupAns(MacCommand):
    CID = 0x09
    UPLINK = True


# --- 0x0A DlChannel (§5.6, LoRaWAN 1.0.2+) ---

@dataclass(frozen=True)
class DlChannelReq(MacCommand):
    """ChIndex(1); Freq(3): RX1 downlink frequency of that uplink channel."""

    CID = 0x0A
    UPLINK = False
    PAYLOAD_LENGTH = 4

    ch_index: int
    frequency_hz: int

    def __post_init__(self) -> None:
        _check_fields(self, {"ch_index": 8})
        frequency_to_wire(self.frequency_hz)

    def payload(self) -> bytes:
        return bytes([self.ch_index]) + frequency_to_wire(self.frequency_hz)

    @classmethod
    def from_payload(cls, payload: bytes) -> Self:
        return cls(ch_index=payload[0], frequency_hz=frequency_from_wire(payload[1:4]))


@dataclass(frozen=True)
class DlChannelAns(_StatusAnswer):
    """Status: bit 1 Uplink frequency exists, bit 0 Channel frequency ok."""

    CID = 0x0A
    UPLINK = True
    STATUS_BITS = ("channel_frequency_ok", "uplink_frequency_exists")

    channel_frequency_ok: bool = True
    uplink_frequency_exists: bool = True


# --- 0x0D DeviceTime (§5.9, LoRaWAN 1.0.3) ---

@dataclass(frozen=True)
class DeviceTimeReq(MacCommand):
    CID = 0x0D
    UPLINK = True


@dataclass(frozen=True)
class DeviceTimeAns(MacCommand):
    """Seconds since the GPS epoch (4, LE, mod 2^32) | fractional second (1, units of 1/256 s),
    captured at the end of the uplink carrying the DeviceTimeReq."""

    CID = 0x0D
    UPLINK = False
    PAYLOAD_LENGTH = 5

    gps_seconds: int
    fraction_256: int = 0

    def __post_init__(self) -> None:
        _check_fields(self, {"gps_seconds": 32, "fraction_256": 8})

    @property
    def gps_time(self) -> float:
        return self.gps_seconds + self.fraction_256 / 256

    def payload(self) -> bytes:
        return to_le("GPS seconds", self.gps_seconds, 4) + bytes([self.fraction_256])

    @classmethod
    def from_payload(cls, payload: bytes) -> Self:
        return cls(gps_seconds=int.from_bytes(payload[0:4], "little"), fraction_256=payload[4])


def _by_cid(*commands: type[MacCommand]) -> dict[int, type[MacCommand]]:
    return {command.CID: command for command in commands}


UPLINK_COMMANDS = _by_cid(LinkCheckReq, LinkADRAns, DutyCycleAns, RXParamSetupAns, DevStatusAns, NewChannelAns,
                          RXTimingSetupAns, TxParamSetupAns, DlChannelAns, DeviceTimeReq)
DOWNLINK_COMMANDS = _by_cid(LinkCheckAns, LinkADRReq, DutyCycleReq, RXParamSetupReq, DevStatusReq, NewChannelReq,
                            RXTimingSetupReq, TxParamSetupReq, DlChannelReq, DeviceTimeAns)


def decode_mac_commands(data: bytes, *, uplink: bool) -> list[MacCommand]:
    """All MAC commands in ``data`` (FOpts or an FPort 0 payload), in order."""
    table = UPLINK_COMMANDS if uplink else DOWNLINK_COMMANDS
    direction = "uplink" if uplink else "downlink"
    data = bytes(data)
    commands: list[MacCommand] = []
    offset = 0
    while offset < len(data):
        cid = data[offset]
        command_type = table.get(cid)
        if command_type is None:
            raise UnknownMacCommandError(f"CID 0x{cid:02x} at offset {offset} is not a known {direction} MAC command")
        payload = data[offset + 1:offset + 1 + command_type.PAYLOAD_LENGTH]
        need(f"{command_type.__name__} payload", payload, command_type.PAYLOAD_LENGTH)
        commands.append(command_type.from_payload(payload))
        offset += 1 + command_type.PAYLOAD_LENGTH
    return commands


def encode_mac_commands(commands: Iterable[MacCommand]) -> bytes:
    """Concatenate commands; FOpts' 15-octet limit is checked where the frame is built."""
    return b"".join(command.to_bytes() for command in commands)


"""Regional parameters (LoRa Alliance RP002-1.0.x), as data: a :class:`Region` plus EU868.

Only what a class A/C device and a FUOTA server need: data rates, payload
limits, RX1/RX2 rules, default channels, duty-cycle sub-bands, TX power steps,
and the 24-bit frequency encoding used by MAC commands, CFList and TS005.
Other regions are further :class:`Region` instances.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum

from ._wire import check_uint, need
from .errors import LoRaWANError

FRAME_OVERHEAD_WITH_FPORT = 8  # FHDR without FOpts (7) + FPort (1): N = M - 8


class Modulation(Enum):
    LORA = "LoRa"
    FSK = "FSK"


@dataclass(frozen=True)
class DataRate:
    """One DR row: modulation, SF/bandwidth (LoRa), bit rate, and maximum MACPayload M.

    ``max_mac_payload_repeater`` is M for repeater-compatible operation;
    ``max_mac_payload`` is M without a repeater (the larger LoRaMac-node value).
    """

    index: int
    modulation: Modulation
    bit_rate: int
    max_mac_payload_repeater: int
    max_mac_payload: int
    spreading_factor: int | None = None
    bandwidth_hz: int | None = None

    def max_mac_payload_size(self, *, repeater_compatible: bool = True) -> int:
        """M: the largest MACPayload (FHDR | FPort | FRMPayload)."""
        return self.max_mac_payload_repeater if repeater_compatible else self.max_mac_payload

    def max_frm_payload_size(self, *, repeater_compatible: bool = True) -> int:
        """N: the largest FRMPayload with empty FOpts."""
        return self.max_mac_payload_size(repeater_compatible=repeater_compatible) - FRAME_OVERHEAD_WITH_FPORT


@dataclass(frozen=True)
class SubBand:
    """A duty-cycle sub-band [low_hz, high_hz) and its duty-cycle limit as a fraction."""

    name: str
    low_hz: int
    high_hz: int
    duty_cycle: float

    def contains(self, frequency_hz: int) -> bool:
        return self.low_hz <= frequency_hz < self.high_hz

    def off_time_s(self, time_on_air_s: float) -> float:
        """Silence needed after a transmission of ``time_on_air_s`` to respect the duty cycle."""
        return time_on_air_s / self.duty_cycle - time_on_air_s


@dataclass(frozen=True)
class Region:
    name: str
    frequency_range_hz: tuple[int, int]
    default_channels_hz: tuple[int, ...]
    data_rates: tuple[DataRate, ...]
    # rx1_dr_table[uplink DR][RX1DROffset] = RX1 downlink DR
    rx1_dr_table: tuple[tuple[int, ...], ...]
    rx2_frequency_hz: int
    rx2_data_rate: int
    sub_bands: tuple[SubBand, ...]
    max_eirp_dbm: float
    tx_power_step_db: float
    max_tx_power_index: int
    receive_delay1_s: int = 1
    receive_delay2_s: int = 2
    join_accept_delay1_s: int = 5
    join_accept_delay2_s: int = 6
    max_fcnt_gap: int = 16384
    # sub_band answers by frequency, filled as asked (duty-cycle checks ask per frame and booking)
    _sub_band_of: dict[int, SubBand | None] = field(default_factory=dict, init=False, repr=False, compare=False)

    def data_rate(self, index: int) -> DataRate:
        if not 0 <= index < len(self.data_rates):
            raise LoRaWANError(f"{self.name} has no data rate DR{index}")
        return self.data_rates[index]

    def lora_data_rate_index(self, spreading_factor: int, bandwidth_hz: int) -> int:
        for data_rate in self.data_rates:
            if (data_rate.spreading_factor, data_rate.bandwidth_hz) == (spreading_factor, bandwidth_hz):
                return data_rate.index
        raise LoRaWANError(f"{self.name} has no data rate SF{spreading_factor}/{bandwidth_hz} Hz")

    def rx1_data_rate(self, uplink_data_rate: int, rx1_dr_offset: int) -> int:
        self.data_rate(uplink_data_rate)
        row = self.rx1_dr_table[uplink_data_rate]
        if not 0 <= rx1_dr_offset < len(row):
            raise LoRaWANError(f"{self.name} RX1DROffset {rx1_dr_offset} is not in 0..{len(row) - 1}")
        return row[rx1_dr_offset]

    def sub_band(self, frequency_hz: int) -> SubBand:
        try:
            found = self._sub_band_of[frequency_hz]
        except (KeyError, TypeError):  # TypeError: an unhashable frequency, refused below
            found = next((sub_band for sub_band in self.sub_bands if sub_band.contains(frequency_hz)), None)
            if isinstance(frequency_hz, int):
                self._sub_band_of[frequency_hz] = found
        if found is None:
            raise LoRaWANError(f"{frequency_hz} Hz is in no {self.name} duty-cycle sub-band")
        return found

    def tx_power_dbm(self, tx_power_index: int) -> float:
        """EIRP of a LinkADRReq TXPower index: MaxEIRP - index * step."""
        if not 0 <= tx_power_index <= self.max_tx_power_index:
            raise LoRaWANError(f"{self.name} TXPower index {tx_power_index} is not in 0..{self.max_tx_power_index}")
        return self.max_eirp_dbm - tx_power_index * self.tx_power_step_db


def _lora(index: int, spreading_factor: int, bandwidth_hz: int, bit_rate: int, repeater: int, plain: int) -> DataRate:
    return DataRate(index=index, modulation=Modulation.LORA, bit_rate=bit_rate, max_mac_payload_repeater=repeater,
                    max_mac_payload=plain, spreading_factor=spreading_factor, bandwidth_hz=bandwidth_hz)


def _rx1_offset_table(data_rate_count: int, offsets: int) -> tuple[tuple[int, ...], ...]:
    # EU868 rule (RP002 EU863-870 "Receive windows"): RX1 DR = max(uplink DR - offset, 0).
    return tuple(tuple(max(dr - offset, 0) for offset in range(offsets)) for dr in range(data_rate_count))


MHZ = 1_000_000
KHZ = 1_000

# RP002 EU863-870: data rates, maximum payload size (M), default channels, RX2,
# TX power (MaxEIRP 16 dBm, 2 dB steps, TXPower 0..7). Duty-cycle sub-bands as
# in LoRaMac-node RegionEU868.c (ETSI EN 300 220 / ERC REC 70-03 band g); the two
# sub-bands below 868 MHz have no numbered g-label there.
EU868 = Region(
    name="EU868",
    frequency_range_hz=(863 * MHZ, 870 * MHZ),
    default_channels_hz=(868_100 * KHZ, 868_300 * KHZ, 868_500 * KHZ),
    data_rates=(
        _lora(0, 12, 125 * KHZ, 250, 59, 59),
        _lora(1, 11, 125 * KHZ, 440, 59, 59),
        _lora(2, 10, 125 * KHZ, 980, 59, 59),
        _lora(3, 9, 125 * KHZ, 1760, 123, 123),
        _lora(4, 8, 125 * KHZ, 3125, 230, 250),
        _lora(5, 7, 125 * KHZ, 5470, 230, 250),
        _lora(6, 7, 250 * KHZ, 11000, 230, 250),
        DataRate(index=7, modulation=Modulation.FSK, bit_rate=50000, max_mac_payload_repeater=230,
                 max_mac_payload=250),
    ),
    rx1_dr_table=_rx1_offset_table(data_rate_count=8, offsets=6),
    rx2_frequency_hz=869_525 * KHZ,
    rx2_data_rate=0,
    sub_bands=(
        SubBand("g (863.0-865.0)", 863_000 * KHZ, 865_000 * KHZ, 0.001),
        SubBand("g (865.0-868.0)", 865_000 * KHZ, 868_000 * KHZ, 0.01),
        SubBand("g1", 868_000 * KHZ, 868_600 * KHZ, 0.01),
        SubBand("g2", 868_700 * KHZ, 869_200 * KHZ, 0.001),
        SubBand("g3", 869_400 * KHZ, 869_650 * KHZ, 0.10),
        SubBand("g4", 869_700 * KHZ, 870_000 * KHZ, 0.01),
    ),
    max_eirp_dbm=16.0,
    tx_power_step_db=2.0,
    max_tx_power_index=7,
)


# --- Frequency fields: 24-bit little-endian, units of 100 Hz (LoRaWAN 1.0.3 §5.4, §5.6) ---

FREQUENCY_UNIT_HZ = 100


def frequency_to_wire(frequency_hz: int) -> bytes:
    check_uint("frequency (Hz)", frequency_hz, 32)
    if frequency_hz % FREQUENCY_UNIT_HZ:
        raise LoRaWANError(f"frequency {frequency_hz} Hz is not a multiple of {FREQUENCY_UNIT_HZ} Hz")
    units = frequency_hz // FREQUENCY_UNIT_HZ
    check_uint("frequency (100 Hz units)", units, 24)
    return units.to_bytes(3, "little")


def frequency_from_wire(data: bytes) -> int:
    need("frequency field", data, 3)
    return int.from_bytes(data[:3], "little") * FREQUENCY_UNIT_HZ


# --- CFList of dynamic-channel regions (RP002 EU863-870 "Join-Accept CFList") ---

CF_LIST_FREQUENCY_COUNT = 5
CF_LIST_TYPE_FREQUENCIES = 0


def cf_list_from_frequencies(frequencies_hz: tuple[int, ...]) -> bytes:
    """Up to 5 extra channel frequencies (0 = unused) then CFListType 0: 16 octets."""
    if len(frequencies_hz) > CF_LIST_FREQUENCY_COUNT:
        raise LoRaWANError(f"a CFList holds at most {CF_LIST_FREQUENCY_COUNT} frequencies, got {len(frequencies_hz)}")
    padded = tuple(frequencies_hz) + (0,) * (CF_LIST_FREQUENCY_COUNT - len(frequencies_hz))
    return b"".join(frequency_to_wire(f) for f in padded) + bytes([CF_LIST_TYPE_FREQUENCIES])


def frequencies_from_cf_list(cf_list: bytes) -> tuple[int, ...]:
    """The non-zero channel frequencies of a CFList of type 0."""
    need("CFList", cf_list, 16)
    if cf_list[15] != CF_LIST_TYPE_FREQUENCIES:
        raise LoRaWANError(f"CFListType {cf_list[15]} is not a list of frequencies")
    frequencies = (frequency_from_wire(cf_list[i:i + 3]) for i in range(0, 15, 3))
    return tuple(f for f in frequencies if f)

"""LoRa time on air (Semtech AN1200.13, LoRa Modem Designer's Guide).

T_sym = 2^SF / BW; T_preamble = (n_preamble + 4.25) * T_sym;
n_payload = 8 + max(ceil((8*PL - 4*SF + 28 + 16*CRC - 20*IH) / (4*(SF - 2*DE))) * (CR + 4), 0).
LoRaWAN frames use an explicit header and CR 4/5; uplinks carry a PHY CRC,
downlinks do not (LoRaWAN 1.0.3 §3.2), so their airtime differs.
"""

from __future__ import annotations

from ._wire import check_uint
from .errors import LoRaWANError
from .region import DataRate, Modulation

LORAWAN_PREAMBLE_SYMBOLS = 8
LORAWAN_CODING_RATE = 1  # 4/5
# DE (low data rate optimisation) is mandated when a symbol lasts at least 16 ms.
LOW_DATA_RATE_SYMBOL_S = 0.016


def lora_symbol_time_s(spreading_factor: int, bandwidth_hz: int) -> float:
    if not 6 <= spreading_factor <= 12:
        raise LoRaWANError(f"spreading factor must be 6..12, got {spreading_factor!r}")
    if bandwidth_hz <= 0:
        raise LoRaWANError(f"bandwidth must be positive, got {bandwidth_hz!r}")
    return (1 << spreading_factor) / bandwidth_hz


def lora_payload_symbols(
    payload_length: int,
    *,
    spreading_factor: int,
    crc: bool,
    low_data_rate_optimization: bool,
    coding_rate: int = LORAWAN_CODING_RATE,
    explicit_header: bool = True,
) -> int:
    """n_payload: symbols after the preamble (header included)."""
    check_uint("payload length", payload_length, 8)
    if not 1 <= coding_rate <= 4:
        raise LoRaWANError(f"coding rate index must be 1..4 (4/5..4/8), got {coding_rate!r}")
    numerator = 8 * payload_length - 4 * spreading_factor + 28 + 16 * crc - 20 * (not explicit_header)
    denominator = 4 * (spreading_factor - 2 * low_data_rate_optimization)
    blocks = -(-numerator // denominator)  # ceiling division on integers
    return 8 + max(blocks * (coding_rate + 4), 0)


def lora_time_on_air_s(
    payload_length: int,
    *,
    spreading_factor: int,
    bandwidth_hz: int,
    crc: bool,
    coding_rate: int = LORAWAN_CODING_RATE,
    preamble_symbols: int = LORAWAN_PREAMBLE_SYMBOLS,
    explicit_header: bool = True,
    low_data_rate_optimization: bool | None = None,
) -> float:
    """Seconds on air of a LoRa packet of ``payload_length`` octets.

    ``low_data_rate_optimization`` None: on when T_sym >= 16 ms (SF11/SF12 at 125 kHz).
    """
    symbol_s = lora_symbol_time_s(spreading_factor, bandwidth_hz)
    if low_data_rate_optimization is None:
        low_data_rate_optimization = symbol_s >= LOW_DATA_RATE_SYMBOL_S
    payload_symbols = lora_payload_symbols(
        payload_length, spreading_factor=spreading_factor, crc=crc, coding_rate=coding_rate,
        explicit_header=explicit_header, low_data_rate_optimization=low_data_rate_optimization)
    return (preamble_symbols + 4.25 + payload_symbols) * symbol_s


def frame_time_on_air_s(phy_payload_length: int, data_rate: DataRate, *, uplink: bool) -> float:
    """Time on air of a LoRaWAN PHYPayload at ``data_rate``: CRC on uplink only."""
    if data_rate.modulation is not Modulation.LORA or data_rate.spreading_factor is None \
            or data_rate.bandwidth_hz is None:
        raise LoRaWANError(f"DR{data_rate.index} is {data_rate.modulation.value}, not LoRa")
    return lora_time_on_air_s(phy_payload_length, spreading_factor=data_rate.spreading_factor,
                              bandwidth_hz=data_rate.bandwidth_hz, crc=uplink)

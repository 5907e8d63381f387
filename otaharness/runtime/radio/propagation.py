"""A simple log-distance path-loss model and the LoRa demodulation floor.

RSSI = TX power − PL(d), PL(d) = PL(1 m) + 10·n·log10(d / 1 m) (log-distance model, Rappaport
§4.9). PL(1 m) = 31.2 dB is free space at 868 MHz: 20·log10(4π·f/c). The noise floor is
−174 dBm/Hz + 10·log10(BW) + NF; the SNR a frame arrives with is RSSI − noise floor, and it is
demodulated when the SNR reaches the spreading factor's limit (Semtech SX1276 datasheet,
table 13: −7.5 dB at SF7 down to −20 dB at SF12).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

Position = tuple[float, float]  # metres on a plane

# SX1276 datasheet table 13, "LoRa demodulator SNR".
DEMODULATION_SNR_DB = {6: -5.0, 7: -7.5, 8: -10.0, 9: -12.5, 10: -15.0, 11: -17.5, 12: -20.0}


@dataclass(frozen=True)
class PathLossModel:
    reference_loss_db: float = 31.2  # free space at 1 m, 868 MHz
    exponent: float = 2.7  # suburban
    noise_figure_db: float = 6.0
    min_distance_m: float = 1.0

    def path_loss_db(self, a: Position, b: Position) -> float:
        distance = max(math.dist(a, b), self.min_distance_m)
        return self.reference_loss_db + 10 * self.exponent * math.log10(distance)

    def noise_floor_dbm(self, bandwidth_hz: int) -> float:
        return -174.0 + 10 * math.log10(bandwidth_hz) + self.noise_figure_db

    def link_budget(self, power_dbm: float, a: Position, b: Position, bandwidth_hz: int) -> tuple[float, float]:
        """(RSSI dBm, SNR dB) of a signal sent at ``power_dbm`` from ``a`` and received at ``b``."""
        rssi = power_dbm - self.path_loss_db(a, b)
        return rssi, rssi - self.noise_floor_dbm(bandwidth_hz)

    @staticmethod
    def demodulates(spreading_factor: int, snr_db: float) -> bool:
        return snr_db >= DEMODULATION_SNR_DB[spreading_factor]

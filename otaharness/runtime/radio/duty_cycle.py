"""Duty-cycle bookkeeping per transmitter and regional sub-band.

Rule (the one LoRaMac-node applies per band, RegionEU868.c): after a transmission of airtime T
starting at t in a sub-band with duty cycle d, that transmitter may use the sub-band again from
t + T/d (T on air plus T·(1/d − 1) off). Sub-bands are independent. An optional aggregate duty
cycle (a device's DutyCycleReq, LoRaWAN 1.0.3 §5.3: 1/2^MaxDCycle over all channels) blocks
every sub-band until t + T/aggregate.
"""

from __future__ import annotations

from otaharness.protocols.lorawan.region import Region, SubBand


class DutyCycleTracker:
    """When each sub-band of one transmitter is free again."""

    def __init__(self, region: Region) -> None:
        self.region = region
        self._free_at: dict[str, float] = {}
        self._aggregate_free_at = 0.0
        self.aggregate_duty_cycle: float | None = None

    def sub_band(self, frequency_hz: int) -> SubBand:
        return self.region.sub_band(frequency_hz)

    def time_until_allowed(self, frequency_hz: int, now: float) -> float:
        free_at = max(self._free_at.get(self.sub_band(frequency_hz).name, now), self._aggregate_free_at)
        return max(0.0, free_at - now)

    def record(self, frequency_hz: int, start: float, airtime_s: float) -> None:
        band = self.sub_band(frequency_hz)
        self._free_at[band.name] = max(self._free_at.get(band.name, 0.0), start + airtime_s / band.duty_cycle)
        if self.aggregate_duty_cycle is not None:
            self._aggregate_free_at = max(self._aggregate_free_at, start + airtime_s / self.aggregate_duty_cycle)

    def reset(self) -> None:
        self._free_at.clear()
        self._aggregate_free_at = 0.0

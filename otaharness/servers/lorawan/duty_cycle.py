"""Per-gateway transmit budget kept by the network server: duty cycle and radio occupancy.

The station refuses (or silently drops after its class C back-off) a transmission its duty cycle
does not allow, so the server books every frame it hands to a gateway and asks only for
transmissions that fit; otherwise it waits (class C, multicast) or gives the window up (class A).

Duty cycle: after a frame of airtime T at limit d the band is blocked until start + T/d — the
station's own rule (``update_DC`` in basicstation ``src/s2e.c``: txtime + airtime × rate). The
station pools the EU868 sub-bands of equal limit into one budget (``freq2band``: 10 %, 1 %, 0.1 %),
so a booking here blocks every sub-band of the same limit too; limits come from
:data:`otaharness.protocols.lorawan.EU868`. A small guard is added because the server's idea of
a gateway's transmit time is an estimate (uplink arrival + RX delay).

Radio occupancy: one concentrator sends one frame at a time; frames closer than
``MIN_GAP_S`` (the station's TX_MIN_GAP, 10 ms) would displace each other.
All times are loop-clock seconds.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

from otaharness.protocols.lorawan import EU868, LoRaWANError, Region

DUTY_CYCLE_GUARD_S = 0.2
MIN_GAP_S = 0.010
_HISTORY_S = 3600.0  # bookings older than this (end time) are forgotten


@dataclass(frozen=True)
class Booking:
    gateway: int
    frequency: int
    start: float
    airtime: float

    @property
    def end(self) -> float:
        return self.start + self.airtime


class GatewayAirtime:
    def __init__(self, region: Region = EU868, guard_s: float = DUTY_CYCLE_GUARD_S) -> None:
        self.region = region
        self.guard_s = guard_s
        self._bookings: dict[int, list[Booking]] = defaultdict(list)

    def _band_limit(self, frequency: int) -> float:
        try:
            return self.region.sub_band(frequency).duty_cycle
        except LoRaWANError:  # between sub-bands: the station applies its strictest band (0.1 %)
            return min(sub_band.duty_cycle for sub_band in self.region.sub_bands)

    def band_free_at(self, gateway: int, frequency: int) -> float:
        """When the duty-cycle budget of ``frequency``'s band opens again on ``gateway``."""
        limit = self._band_limit(frequency)
        return max((b.start + b.airtime / limit + self.guard_s for b in self._bookings[gateway]
                    if self._band_limit(b.frequency) == limit), default=float("-inf"))

    def earliest_start(self, gateway: int, frequency: int, airtime: float, not_before: float) -> float:
        """The first start ≥ ``not_before`` that the band's duty cycle and the radio allow."""
        start = max(not_before, self.band_free_at(gateway, frequency))
        for booking in sorted(self._bookings[gateway], key=lambda b: b.start):
            if start + airtime + MIN_GAP_S > booking.start and booking.end + MIN_GAP_S > start:
                start = booking.end + MIN_GAP_S
        return start

    def is_free(self, gateway: int, frequency: int, airtime: float, start: float) -> bool:
        return self.earliest_start(gateway, frequency, airtime, start) <= start

    def book(self, gateway: int, frequency: int, airtime: float, start: float) -> Booking:
        bookings = self._bookings[gateway]
        bookings[:] = [b for b in bookings if b.end > start - _HISTORY_S]
        booking = Booking(gateway, frequency, start, airtime)
        bookings.append(booking)
        return booking

    def release(self, booking: Booking) -> None:
        """Forget a booking whose frame never reached the gateway."""
        bookings = self._bookings[booking.gateway]
        if booking in bookings:
            bookings.remove(booking)

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

Bookings whose frame ended more than an hour before a new booking's start are forgotten. A check
costs the same however long the history: each gateway keeps its bookings ordered by start (the
radio check bisects to the few that can reach the asked start, none can reach further back than
the longest airtime booked) and, per duty-cycle limit, ordered by the end of their blocking (the
band opens after the last one).
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from dataclasses import dataclass, field

from otaharness.protocols.lorawan import EU868, LoRaWANError, Region

DUTY_CYCLE_GUARD_S = 0.2
MIN_GAP_S = 0.010
_HISTORY_S = 3600.0  # bookings older than this (end time) are forgotten
# Skipping bookings by a bound on their end only ever skips ones a second short of mattering,
# far beyond any rounding of loop-clock seconds.
_BOUND_SLACK_S = 1.0


@dataclass(frozen=True)
class Booking:
    gateway: int
    frequency: int
    start: float
    airtime: float

    @property
    def end(self) -> float:
        return self.start + self.airtime


@dataclass
class _Ordered:
    """Bookings ordered by a key (equal keys in booking order), the keys alongside for bisecting."""

    keys: list[float] = field(default_factory=list)
    bookings: list[Booking] = field(default_factory=list)

    def add(self, key: float, booking: Booking) -> None:
        index = bisect_right(self.keys, key)
        self.keys.insert(index, key)
        self.bookings.insert(index, booking)

    def remove(self, key: float, booking: Booking) -> bool:
        index = bisect_left(self.keys, key)
        while index < len(self.keys) and self.keys[index] == key:
            if self.bookings[index] == booking:
                del self.keys[index], self.bookings[index]
                return True
            index += 1
        return False


@dataclass
class _GatewayLedger:
    by_start: _Ordered = field(default_factory=_Ordered)
    # per duty-cycle limit: bookings by the time their band opens again (start + airtime / limit + guard)
    by_band_open: dict[float, _Ordered] = field(default_factory=dict)
    longest_airtime: float = 0.0  # of any booking ever made here: how far back a booking can reach


class GatewayAirtime:
    def __init__(self, region: Region = EU868, guard_s: float = DUTY_CYCLE_GUARD_S) -> None:
        self.region = region
        self.guard_s = guard_s
        self._ledgers: dict[int, _GatewayLedger] = {}

    def _band_limit(self, frequency: int) -> float:
        try:
            return self.region.sub_band(frequency).duty_cycle
        except LoRaWANError:  # between sub-bands: the station applies its strictest band (0.1 %)
            return min(sub_band.duty_cycle for sub_band in self.region.sub_bands)

    def _band_open(self, booking: Booking, limit: float) -> float:
        return booking.start + booking.airtime / limit + self.guard_s

    def band_free_at(self, gateway: int, frequency: int) -> float:
        """When the duty-cycle budget of ``frequency``'s band opens again on ``gateway``."""
        ledger = self._ledgers.get(gateway)
        band = ledger.by_band_open.get(self._band_limit(frequency)) if ledger else None
        return band.keys[-1] if band and band.keys else float("-inf")

    def earliest_start(self, gateway: int, frequency: int, airtime: float, not_before: float) -> float:
        """The first start ≥ ``not_before`` that the band's duty cycle and the radio allow."""
        start = max(not_before, self.band_free_at(gateway, frequency))
        ledger = self._ledgers.get(gateway)
        if ledger is None:
            return start
        timeline = ledger.by_start
        # A booking starting before this ends before ``start`` (even with the gap): it cannot move it.
        first = bisect_left(timeline.keys, start - MIN_GAP_S - ledger.longest_airtime - _BOUND_SLACK_S)
        for booking in timeline.bookings[first:]:
            if start + airtime + MIN_GAP_S <= booking.start:
                break  # this one and all later-starting ones leave room before them
            start = max(start, booking.end + MIN_GAP_S)
        return start

    def is_free(self, gateway: int, frequency: int, airtime: float, start: float) -> bool:
        return self.earliest_start(gateway, frequency, airtime, start) <= start

    def book(self, gateway: int, frequency: int, airtime: float, start: float) -> Booking:
        ledger = self._ledgers.setdefault(gateway, _GatewayLedger())
        self._forget_ended_before(ledger, start - _HISTORY_S)
        booking = Booking(gateway, frequency, start, airtime)
        limit = self._band_limit(frequency)
        ledger.by_start.add(start, booking)
        ledger.by_band_open.setdefault(limit, _Ordered()).add(self._band_open(booking, limit), booking)
        ledger.longest_airtime = max(ledger.longest_airtime, airtime)
        return booking

    def _forget_ended_before(self, ledger: _GatewayLedger, horizon: float) -> None:
        """Forget the bookings that ended by ``horizon``: only ones that started by then can have."""
        timeline = ledger.by_start
        started = bisect_right(timeline.keys, horizon)
        if not started:
            return
        kept = [booking for booking in timeline.bookings[:started] if booking.end > horizon]
        for booking in timeline.bookings[:started]:
            if booking.end <= horizon:
                limit = self._band_limit(booking.frequency)
                ledger.by_band_open[limit].remove(self._band_open(booking, limit), booking)
        timeline.bookings[:started] = kept
        timeline.keys[:started] = [booking.start for booking in kept]

    def release(self, booking: Booking) -> None:
        """Forget a booking whose frame never reached the gateway."""
        ledger = self._ledgers.get(booking.gateway)
        if ledger is not None and ledger.by_start.remove(booking.start, booking):
            limit = self._band_limit(booking.frequency)
            ledger.by_band_open[limit].remove(self._band_open(booking, limit), booking)

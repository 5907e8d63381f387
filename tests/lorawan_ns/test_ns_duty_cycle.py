"""The server-side transmit budget of a gateway: EU868 duty cycle pooled as the station pools it,
and one frame at a time on the radio."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from otaharness.protocols.lorawan import EU868, LoRaWANError
from otaharness.servers.lorawan.duty_cycle import (
    DUTY_CYCLE_GUARD_S,
    MIN_GAP_S,
    GatewayAirtime,
)

GATEWAY, OTHER = 0xA1, 0xA2


def test_band_is_blocked_for_airtime_over_its_limit() -> None:
    airtime = GatewayAirtime()
    airtime.book(GATEWAY, 869_525_000, 0.5, start=100.0)  # 10 % sub-band
    assert airtime.band_free_at(GATEWAY, 869_525_000) == pytest.approx(100.0 + 0.5 / 0.10 + DUTY_CYCLE_GUARD_S)
    assert not airtime.is_free(GATEWAY, 869_525_000, 0.1, 104.0)
    assert airtime.is_free(GATEWAY, 869_525_000, 0.1, 105.0 + DUTY_CYCLE_GUARD_S)
    assert airtime.is_free(OTHER, 869_525_000, 0.1, 100.6)  # budgets are per gateway


def test_sub_bands_of_equal_limit_share_one_budget_like_the_station() -> None:
    airtime = GatewayAirtime()
    airtime.book(GATEWAY, 868_100_000, 0.05, start=0.0)  # 1 %: blocked 5 s
    assert not airtime.is_free(GATEWAY, 869_800_000, 0.05, 2.0)  # 869.7-870.0 is 1 % too (freq2band)
    assert airtime.is_free(GATEWAY, 869_525_000, 0.05, 2.0)  # the 10 % band is separate
    assert airtime.earliest_start(GATEWAY, 868_500_000, 0.05, 1.0) == pytest.approx(5.0 + DUTY_CYCLE_GUARD_S)


def test_frames_on_one_radio_do_not_overlap() -> None:
    airtime = GatewayAirtime()
    airtime.book(GATEWAY, 868_100_000, 1.0, start=10.0)
    # RX2's band is free, but the radio is sending until 11.0.
    assert airtime.earliest_start(GATEWAY, 869_525_000, 0.2, 10.5) == pytest.approx(11.0 + MIN_GAP_S)
    assert airtime.is_free(GATEWAY, 869_525_000, 0.2, 9.0)  # ends before the booked frame starts
    assert not airtime.is_free(GATEWAY, 869_525_000, 0.995, 9.0)


def test_released_booking_frees_the_band() -> None:
    airtime = GatewayAirtime()
    booking = airtime.book(GATEWAY, 869_525_000, 2.0, start=0.0)
    airtime.release(booking)
    assert airtime.is_free(GATEWAY, 869_525_000, 2.0, 0.0)


def test_frequency_between_sub_bands_gets_the_strictest_limit() -> None:
    airtime = GatewayAirtime()
    airtime.book(GATEWAY, 868_650_000, 0.01, start=0.0)  # 868.6-868.7 MHz: in no EU868 sub-band
    assert airtime.band_free_at(GATEWAY, 868_650_000) == pytest.approx(0.01 / 0.001 + DUTY_CYCLE_GUARD_S)


# --- The bookkeeping against a straightforward reading of the same rules ----------------------

class ReferenceAirtime:
    """The rules read literally: every booking kept in booking order and rescanned per check;
    bookings that ended an hour before a new booking's start forgotten."""

    def __init__(self) -> None:
        self.bookings: dict[int, list[tuple[int, float, float]]] = {}

    @staticmethod
    def limit(frequency: int) -> float:
        try:
            return EU868.sub_band(frequency).duty_cycle
        except LoRaWANError:
            return min(sub_band.duty_cycle for sub_band in EU868.sub_bands)

    def band_free_at(self, gateway: int, frequency: int) -> float:
        limit = self.limit(frequency)
        return max((start + airtime / limit + DUTY_CYCLE_GUARD_S
                    for booked_frequency, start, airtime in self.bookings.get(gateway, [])
                    if self.limit(booked_frequency) == limit), default=float("-inf"))

    def earliest_start(self, gateway: int, frequency: int, airtime: float, not_before: float) -> float:
        start = max(not_before, self.band_free_at(gateway, frequency))
        for _, booked_start, booked_airtime in sorted(self.bookings.get(gateway, []), key=lambda b: b[1]):
            booked_end = booked_start + booked_airtime
            if start + airtime + MIN_GAP_S > booked_start and booked_end + MIN_GAP_S > start:
                start = booked_end + MIN_GAP_S
        return start

    def book(self, gateway: int, frequency: int, airtime: float, start: float) -> None:
        kept = [b for b in self.bookings.get(gateway, []) if b[1] + b[2] > start - 3600.0]
        self.bookings[gateway] = kept + [(frequency, start, airtime)]

    def release(self, gateway: int, frequency: int, airtime: float, start: float) -> None:
        if (frequency, start, airtime) in self.bookings.get(gateway, []):
            self.bookings[gateway].remove((frequency, start, airtime))


# EU868 sub-bands of each limit, their edges, and the gaps between them (strictest limit).
FREQUENCIES = [863_500_000, 867_100_000, 868_100_000, 868_500_000, 868_600_000, 868_650_000, 868_700_000,
               869_100_000, 869_300_000, 869_525_000, 869_700_000, 869_800_000]
# Times near each other (overlaps, the 10 ms gap), far apart (the hour of history), and out of order.
times = st.one_of(st.integers(0, 40).map(lambda t: t * 0.005), st.floats(0.0, 12_000.0), st.sampled_from(
    [3600.0, 3600.01, 3601.0, 7200.0, 7205.5]))
airtimes = st.one_of(st.sampled_from([0.0, 0.005, 0.01, 0.0566, 1.48, 2.79]), st.floats(0.0, 8.0))
operations = st.lists(st.tuples(
    st.sampled_from(["book", "book", "book", "release", "check"]), st.sampled_from([GATEWAY, OTHER]),
    st.sampled_from(FREQUENCIES), airtimes, times, st.integers(0, 1 << 16)), min_size=1, max_size=60)


@settings(max_examples=300, deadline=None)
@given(operations)
def test_bookkeeping_decides_as_the_rules_read_literally(steps) -> None:
    airtime, reference = GatewayAirtime(), ReferenceAirtime()
    booked = []
    for operation, gateway, frequency, length, start, pick in steps:
        if operation == "book":
            booked.append(airtime.book(gateway, frequency, length, start))
            reference.book(gateway, frequency, length, start)
        elif operation == "release" and booked:
            booking = booked[pick % len(booked)]
            airtime.release(booking)
            reference.release(booking.gateway, booking.frequency, booking.airtime, booking.start)
        for asked_gateway in (GATEWAY, OTHER):
            for asked_frequency in (frequency, 869_525_000, 868_100_000, 868_650_000):
                assert airtime.band_free_at(asked_gateway, asked_frequency) == \
                    reference.band_free_at(asked_gateway, asked_frequency)
                for not_before in (start, start + length, start - 0.5, 0.0):
                    expected = reference.earliest_start(asked_gateway, asked_frequency, length, not_before)
                    assert airtime.earliest_start(asked_gateway, asked_frequency, length, not_before) == expected
                    assert airtime.is_free(asked_gateway, asked_frequency, length, not_before) == \
                        (expected <= not_before)

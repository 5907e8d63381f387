"""The server-side transmit budget of a gateway: EU868 duty cycle pooled as the station pools it,
and one frame at a time on the radio."""

from __future__ import annotations

import pytest

from otaharness.servers.lorawan.duty_cycle import DUTY_CYCLE_GUARD_S, MIN_GAP_S, GatewayAirtime

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

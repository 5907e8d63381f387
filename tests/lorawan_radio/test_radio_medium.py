"""The radio medium: airtime, reach, collisions and capture, gateway duty cycle, loss models."""

from __future__ import annotations

import asyncio
import math
import random

import pytest
from lorawan_radio_world import RX2_FREQUENCY, run_virtual, uplink

from otaharness.runtime.radio import (
    DutyCycleExceeded,
    FixedLoss,
    GilbertElliott,
    RadioError,
    RadioMedium,
    Reception,
    Transmission,
    TransmitterBusy,
)
from otaharness.protocols.lorawan import EU868

CH1 = 868_100_000


def _medium_with_gateway(received: list[tuple[float, Reception]], rng: random.Random | None = None) -> RadioMedium:
    medium = RadioMedium(EU868, rng or random.Random(7))
    medium.attach_gateway("gw", (0.0, 0.0), lambda r: received.append((medium.now(), r)))
    return medium


def _quiet_device(medium: RadioMedium, name: str, position: tuple[float, float]):
    return medium.attach_device(name, position, receiver=lambda r: None, listening=lambda *a: False)


def test_uplink_arrives_at_the_end_of_its_airtime_with_link_budget() -> None:
    # Fact sheet §6: SF12, PL 13, uplink (CRC on) = 1155.072 ms on air.
    async def main(clock):
        received: list[tuple[float, Reception]] = []
        medium = _medium_with_gateway(received)
        device = _quiet_device(medium, "d", (1000.0, 0.0))
        await asyncio.sleep(10)
        frame = device.transmit(uplink(CH1, 0, bytes(13)))
        await asyncio.sleep(1.0)
        assert received == []  # still on the air
        await asyncio.sleep(1.0)
        return frame, received

    frame, received = run_virtual(main)
    assert frame.airtime == pytest.approx(1.155072, abs=1e-9)
    [(delivered_at, reception)] = received
    assert delivered_at == pytest.approx(10 + 1.155072, abs=1e-9)
    assert (reception.start, reception.end) == (frame.start, frame.end)
    # 14 dBm − (31.2 + 27·log10(1000)) = −98.2 dBm; noise floor −174 + 10·log10(125e3) + 6.
    assert reception.rssi_dbm == pytest.approx(-98.2)
    assert reception.snr_db == pytest.approx(-98.2 - (-174 + 10 * math.log10(125e3) + 6))


def test_downlink_airtime_has_no_crc() -> None:
    # Fact sheet §6: SF12, PL 64, downlink = 2793.472 ms.
    async def main(clock):
        medium = RadioMedium(EU868, random.Random(1))
        gateway = medium.attach_gateway("gw", (0.0, 0.0), lambda r: None)
        return gateway.transmit(Transmission(RX2_FREQUENCY, EU868.data_rate(0), bytes(64), power_dbm=27))

    assert run_virtual(main).airtime == pytest.approx(2.793472, abs=1e-9)


def test_out_of_range_devices_reach_no_one() -> None:
    async def main(clock):
        received: list[tuple[float, Reception]] = []
        medium = _medium_with_gateway(received)
        far_sf7 = _quiet_device(medium, "far", (20_000.0, 0.0))
        far_sf7.transmit(uplink(CH1, 5, bytes(20)))  # SF7 reaches ~9 km with this model
        await asyncio.sleep(2)
        far_sf7.transmit(uplink(CH1, 0, bytes(20)))  # SF12 reaches ~27 km
        await asyncio.sleep(3)
        return medium, received

    medium, received = run_virtual(main)
    assert [r.data_rate.index for _, r in received] == [0]
    assert medium.counters["out_of_range"] == 1


def test_overlapping_uplinks_on_one_channel_and_sf_collide_unless_one_is_6_db_stronger() -> None:
    async def main(clock):
        received: list[tuple[float, Reception]] = []
        medium = _medium_with_gateway(received)
        a = _quiet_device(medium, "a", (1000.0, 0.0))
        b = _quiet_device(medium, "b", (0.0, 1000.0))  # same distance: same RSSI
        near = _quiet_device(medium, "near", (100.0, 0.0))  # 27 dB stronger
        a.transmit(uplink(CH1, 5, b"A" * 20))
        await asyncio.sleep(0.01)
        b.transmit(uplink(CH1, 5, b"B" * 20))
        await asyncio.sleep(5)
        phase1 = [r.sender for _, r in received]
        a.transmit(uplink(CH1, 5, b"A" * 20))
        await asyncio.sleep(0.01)
        near.transmit(uplink(CH1, 5, b"N" * 20))
        await asyncio.sleep(5)
        phase2 = [r.sender for _, r in received][len(phase1):]
        a.transmit(uplink(CH1, 5, b"A" * 20))
        b.transmit(uplink(CH1, 4, b"B" * 20))  # another SF: no collision
        await asyncio.sleep(5)
        phase3 = sorted(r.sender for _, r in received[len(phase1) + len(phase2):])
        return medium, phase1, phase2, phase3

    medium, phase1, phase2, phase3 = run_virtual(main)
    assert phase1 == []
    assert phase2 == ["near"]
    assert phase3 == ["a", "b"]
    assert medium.counters["lost_collision"] == 3


def test_gateway_duty_cycle_refuses_and_tells_when() -> None:
    async def main(clock):
        medium = RadioMedium(EU868, random.Random(1))
        gateway = medium.attach_gateway("gw", (0.0, 0.0), lambda r: None)
        tx = Transmission(CH1, EU868.data_rate(5), bytes(30))
        frame = gateway.transmit(tx)
        await asyncio.sleep(1.0)
        wait = medium.time_until_allowed("gw", CH1, frame.airtime)
        with pytest.raises(DutyCycleExceeded, match="g1"):
            gateway.transmit(tx)
        other_band = medium.time_until_allowed("gw", RX2_FREQUENCY, 0.1)
        gateway.transmit(Transmission(RX2_FREQUENCY, EU868.data_rate(5), bytes(30)))  # other sub-band: fine
        await asyncio.sleep(wait - 0.001)
        with pytest.raises(DutyCycleExceeded):
            gateway.transmit(tx)
        await asyncio.sleep(0.001)
        gateway.transmit(tx)
        return medium, frame, wait, other_band

    medium, frame, wait, other_band = run_virtual(main)
    # 1 % band: free again airtime / 0.01 after the start; asked 1 s after the start.
    assert wait == pytest.approx(frame.airtime / 0.01 - 1.0)
    assert other_band == 0.0
    assert medium.counters["refused_duty_cycle"] == 2
    assert medium.counters["downlinks"] == 3


def test_gateway_sends_one_downlink_at_a_time_and_rejects_frequencies_outside_the_band() -> None:
    async def main(clock):
        medium = RadioMedium(EU868, random.Random(1))
        gateway = medium.attach_gateway("gw", (0.0, 0.0), lambda r: None)
        gateway.transmit(Transmission(RX2_FREQUENCY, EU868.data_rate(0), bytes(30)))
        with pytest.raises(TransmitterBusy):
            gateway.transmit(Transmission(CH1, EU868.data_rate(5), bytes(30)))
        with pytest.raises(RadioError, match="sub-band"):
            gateway.transmit(Transmission(915_000_000, EU868.data_rate(5), bytes(30)))

    run_virtual(main)


def _loss_pattern(model, frames: int = 10_000, seed: int = 2024) -> list[bool]:
    """Send ``frames`` uplinks through the medium with ``model`` on the link; True = lost."""
    async def main(clock):
        received: list[tuple[float, Reception]] = []
        medium = _medium_with_gateway(received, random.Random(seed))
        device = _quiet_device(medium, "d", (200.0, 0.0))
        medium.set_loss("d", model)
        outcome = []
        for i in range(frames):
            before = len(received)
            frame = device.transmit(uplink(CH1, 5, i.to_bytes(4, "little")))
            await asyncio.sleep(frame.airtime + 0.001)
            outcome.append(len(received) == before)
        return outcome

    return run_virtual(main)


def test_fixed_loss_rate_over_10000_frames_is_within_binomial_bounds() -> None:
    rate, n = 0.1, 10_000
    lost = sum(_loss_pattern(FixedLoss(rate)))
    sd = math.sqrt(n * rate * (1 - rate))  # 30 frames
    assert abs(lost - n * rate) < 5 * sd


def test_gilbert_elliott_loss_is_bursty_at_its_stationary_rate() -> None:
    model = GilbertElliott(p_good_to_bad=0.05, p_bad_to_good=0.25)
    pattern = _loss_pattern(model)
    n, rate = len(pattern), model.stationary_loss_rate
    assert rate == pytest.approx(0.05 / 0.30)
    # Variance of a two-state Markov chain's count: n·π(1−π)·(1+λ)/(1−λ), λ = 1 − p_gb − p_bg.
    lam = 1 - 0.05 - 0.25
    sd = math.sqrt(n * rate * (1 - rate) * (1 + lam) / (1 - lam))
    assert abs(sum(pattern) - n * rate) < 5 * sd
    bursts, length = [], 0
    for lost in pattern + [False]:
        if lost:
            length += 1
        elif length:
            bursts.append(length)
            length = 0
    mean_burst = sum(bursts) / len(bursts)
    # Bursts are geometric with mean 1/p_bg = 4 (sd ≈ 3.5): the mean of ~400 bursts is within ±0.9.
    assert abs(mean_burst - 4.0) < 5 * math.sqrt(0.75 / 0.25 ** 2 / len(bursts))
    # Independent loss at the same rate would give bursts of 1/(1−π) = 1.2 frames.
    assert mean_burst > 2.5


def test_link_specific_loss_wins_over_the_device_model() -> None:
    async def main(clock):
        received: list[tuple[float, Reception]] = []
        medium = _medium_with_gateway(received)
        device = _quiet_device(medium, "d", (200.0, 0.0))
        medium.set_loss("d", FixedLoss(1.0))
        medium.set_loss("d", FixedLoss(0.0), gateway="gw")
        device.transmit(uplink(CH1, 5, bytes(10)))
        await asyncio.sleep(1)
        medium.set_loss("d", None, gateway="gw")
        device.transmit(uplink(CH1, 5, bytes(10)))
        await asyncio.sleep(1)
        return medium, received

    medium, received = run_virtual(main)
    assert len(received) == 1
    assert medium.counters["lost_loss"] == 1


def test_loss_in_one_direction_spares_the_other() -> None:
    """A device that loses every downlink still gets its uplinks through, and the reverse."""
    async def main(clock):
        received: list[tuple[float, Reception]] = []
        heard: list[Reception] = []
        medium = _medium_with_gateway(received)
        gateway = medium.gateways["gw"]
        device = medium.attach_device("d", (200.0, 0.0), receiver=heard.append, listening=lambda *a: True)
        outcome = []
        for direction in ("downlink", "uplink"):
            medium.set_loss("d", None)
            medium.set_loss("d", FixedLoss(1.0), direction=direction)
            device.transmit(uplink(CH1, 5, bytes(10)))
            await asyncio.sleep(1)
            gateway.transmit(Transmission(RX2_FREQUENCY, EU868.data_rate(5), bytes(30), power_dbm=27))
            await asyncio.sleep(1)
            outcome.append((direction, len(received), len(heard)))
            received.clear()
            heard.clear()
        return outcome

    assert run_virtual(main) == [("downlink", 1, 0), ("uplink", 0, 1)]
    with pytest.raises(ValueError, match="direction"):
        RadioMedium(EU868).set_loss("d", FixedLoss(1.0), direction="sideways")


def test_loss_models_reject_impossible_probabilities() -> None:
    with pytest.raises(ValueError, match="probability"):
        FixedLoss(1.5)
    with pytest.raises(ValueError, match="p_bad_to_good"):
        GilbertElliott(0.1, -0.1)

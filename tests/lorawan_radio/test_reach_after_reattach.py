"""The medium's reach cache follows devices attaching and detaching (a fleet rebooting) without
being rebuilt: who hears a gateway, in which order and how many are out of range, is what a
medium set up from scratch with the same radios computes."""

from __future__ import annotations

import asyncio
import random

from lorawan_radio_world import RX2_FREQUENCY, run_virtual

from otaharness.protocols.lorawan import EU868
from otaharness.runtime.radio import RadioMedium, Reception, Transmission

POSITIONS = {"near": (500.0, 0.0), "far": (90_000.0, 0.0), "mid": (2_000.0, 0.0)}


def _downlink() -> Transmission:
    return Transmission(RX2_FREQUENCY, EU868.data_rate(5), bytes(20))


async def _heard(medium: RadioMedium, heard: list[str]) -> tuple[list[str], int]:
    heard.clear()
    before = medium.counters["out_of_range"]
    medium.gateways["gw"].transmit(_downlink())
    await asyncio.sleep(20)  # past the airtime and the gateway's duty-cycle rest
    return list(heard), medium.counters["out_of_range"] - before


def _attach(medium: RadioMedium, name: str, heard: list[str]) -> None:
    def receive(reception: Reception) -> None:
        heard.append(reception.receiver)
    medium.attach_device(name, POSITIONS[name], receiver=receive, listening=lambda *args: True)


def test_reach_after_devices_detach_and_attach_again_matches_a_fresh_medium() -> None:
    async def main(clock: object) -> tuple[list[tuple[list[str], int]], list[tuple[list[str], int]]]:
        heard: list[str] = []
        medium = RadioMedium(EU868, random.Random(1))
        medium.attach_gateway("gw", (0.0, 0.0), lambda reception: None)
        for name in ("near", "far"):
            _attach(medium, name, heard)
        seen = [await _heard(medium, heard)]  # fills the cache
        medium.detach("near")
        seen.append(await _heard(medium, heard))
        _attach(medium, "mid", heard)
        _attach(medium, "near", heard)  # back, now last in attachment order
        seen.append(await _heard(medium, heard))
        medium.detach("far")
        seen.append(await _heard(medium, heard))

        fresh_results = []
        for names in (("near", "far"), ("far",), ("far", "mid", "near"), ("mid", "near")):
            fresh = RadioMedium(EU868, random.Random(1))
            fresh.attach_gateway("gw", (0.0, 0.0), lambda reception: None)
            for name in names:
                _attach(fresh, name, heard)
            fresh_results.append(await _heard(fresh, heard))
        return seen, fresh_results

    seen, fresh = run_virtual(main)
    assert seen == fresh
    assert seen == [(["near"], 1), ([], 1), (["mid", "near"], 1), (["mid", "near"], 0)]

"""The application API keeps the last ``MAX_EVENTS`` uplinks: older ones fall off the front while
sequence numbers keep counting, so a poller's ``since`` stays valid."""

from __future__ import annotations

from pathlib import Path

import pytest
from lorawan_e2e_world import World, run_world

from otaharness.servers.lorawan import app_api

DEV_EUI = 0x0004A30B001C0002


def test_uplink_events_are_a_bounded_window_with_running_sequence_numbers(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(app_api, "MAX_EVENTS", 3)

    async def main(world: World) -> None:
        await world.station()
        device = world.device("window", DEV_EUI)
        assert await device.join()
        assert world.api is not None
        for number in range(5):
            await device.send(2 if number != 3 else 9, f"up{number}".encode())
        assert len(world.api.events) == 3
        assert [(e.seq, e.payload) for e in world.api.uplinks(2)] == [(2, b"up2"), (4, b"up4")]
        assert [e.seq for e in world.api.uplinks(since=4)] == [4]
        assert [e.seq for e in world.api.uplinks(9, since=0)] == [3]
        assert world.api.uplinks(since=5) == []

    run_world(tmp_path, main)

"""End to end on virtual time: device → radio medium → station emulator → LNS websocket →
network server, and back (dnmsg → station → medium → device, dntxed)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from otaharness.protocols.lorawan import EU868

from lorawan_e2e_world import World, run_world


def test_join_uplink_and_class_a_downlink(tmp_path: Path) -> None:
    async def main(world: World) -> None:
        await world.station()
        device = world.device("dev1", 0x0004A30B001C0001)
        received: list[tuple[int, bytes, bool]] = []
        device.on_downlink = lambda fport, payload, multicast: received.append((fport, payload, multicast))
        assert await device.join()
        assert world.ns is not None and world.api is not None
        assert world.ns.device(0x0004A30B001C0001).dev_addr == device.session.dev_addr
        await device.send(2, b"hello")
        events = world.api.uplinks(2)
        assert [(e.dev_eui, e.payload, e.meta.fcnt) for e in events] == [(0x0004A30B001C0001, b"hello", 0)]
        handle = world.ns.enqueue_downlink(0x0004A30B001C0001, 3, b"down")
        await device.send(2, b"again")
        assert received == [(3, b"down", False)]
        dntxed = await asyncio.wait_for(handle.transmitted, 5)
        assert dntxed.dev_eui == 0x0004A30B001C0001 and dntxed.freq in EU868.default_channels_hz  # RX1

    run_world(tmp_path, main)

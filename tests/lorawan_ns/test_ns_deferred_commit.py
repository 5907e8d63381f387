"""The network server commits an uplink's frame counter late (issue #18), but before anything the
uplink caused leaves it: a crash forgets only uplinks nobody outside heard of, so the replay of
one that was forwarded, answered or acknowledged is still refused after a restart.

A crash is the registry's files copied as they are on disk while the server runs (what a killed
process leaves), and a new server started on the copy."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import pytest
from aiohttp.test_utils import make_mocked_request
from lorawan_ns_world import (
    GATEWAY_1,
    EndDevice,
    World,
    radio,
    run_world,
    station_message,
)

from otaharness.protocols.lorawan import SessionKeys
from otaharness.servers.lorawan.app_api import ApplicationApi
from otaharness.servers.lorawan.registry import DEFERRED_UPDATES_KEPT

DEV_EUI = 0x0000_0000_1100_0007
DEV_ADDR = 0x2601_1B07
KEYS = SessionKeys(nwk_s_key=bytes(range(16)), app_s_key=bytes(range(16, 32)))
NS_LOG = "otaharness.servers.lorawan.server"
FORWARDED_FPORT, IGNORED_FPORT = 2, 1  # an application handler only on the first


def crashed_copy(world: World, directory: Path) -> World:
    """A server started on the registry's files as a crash now would leave them."""
    directory.mkdir()
    for source in world.tmp_path.glob("ns.sqlite*"):
        if not source.name.endswith("-shm"):  # the shared-memory index is rebuilt on open
            shutil.copy(source, directory / source.name)
    return World(directory, world.clock)


async def fcnt_up_after_a_crash(world: World, directory: Path) -> int | None:
    """The device's frame counter as a server started on a crash's files now would know it."""
    restarted = crashed_copy(world, directory)
    try:
        return restarted.server.device(DEV_EUI).fcnt_up
    finally:
        await restarted.server.close()


def setup(world: World) -> tuple[EndDevice, list[int]]:
    world.server.add_abp_device(DEV_EUI, DEV_ADDR, KEYS.nwk_s_key, KEYS.app_s_key)
    forwarded: list[int] = []
    world.server.on_uplink(FORWARDED_FPORT, lambda eui, port, payload, meta: forwarded.append(meta.fcnt))
    return EndDevice(DEV_EUI, dev_addr=DEV_ADDR, keys=KEYS), forwarded


def test_a_crash_forgets_only_uplinks_nobody_outside_heard_of(tmp_path: Path,
                                                              caplog: pytest.LogCaptureFixture) -> None:
    async def main(world: World) -> None:
        device, forwarded = setup(world)
        silent = device.uplink(IGNORED_FPORT, b"a")  # FCnt 0: no handler, nothing queued
        await world.receive(silent)
        heard = device.uplink(FORWARDED_FPORT, b"b")  # FCnt 1: forwarded to the application
        await world.receive(heard)
        assert forwarded == [1]
        await world.receive(device.uplink(IGNORED_FPORT, b"c"))  # FCnt 2: silent again
        assert world.server.device(DEV_EUI).fcnt_up == 2

        restarted = crashed_copy(world, tmp_path / "crash-1")
        try:
            assert restarted.server.device(DEV_EUI).fcnt_up == 1  # FCnt 2 was heard by nobody outside
            with caplog.at_level(logging.WARNING, NS_LOG):
                await restarted.receive(heard)
                await restarted.receive(silent)
            assert "FCnt 1 replayed" in caplog.text and "FCnt 0 went back" in caplog.text
        finally:
            await restarted.server.close()

        world.server.enqueue_downlink(DEV_EUI, 5, b"answer")
        answered = device.uplink(IGNORED_FPORT, b"d")  # FCnt 3: answered in RX1
        await world.receive(answered)
        assert world.port.sent, "the queued downlink went out"
        restarted = crashed_copy(world, tmp_path / "crash-2")
        try:
            assert restarted.server.device(DEV_EUI).fcnt_up == 3  # the downlink's NFCntDown committed it
            caplog.clear()
            with caplog.at_level(logging.WARNING, NS_LOG):
                await restarted.receive(answered)
            assert "FCnt 3 replayed" in caplog.text
        finally:
            await restarted.server.close()

    run_world(tmp_path, main)


def test_silent_uplinks_are_committed_in_groups_and_on_close(tmp_path: Path) -> None:
    async def main(world: World) -> None:
        device, _ = setup(world)
        for _ in range(DEFERRED_UPDATES_KEPT + 1):
            await world.receive(device.uplink(IGNORED_FPORT, b"x"))
        # the group commit came with the DEFERRED_UPDATES_KEPT-th uplink (FCnt one less)
        assert await fcnt_up_after_a_crash(world, tmp_path / "crash") == DEFERRED_UPDATES_KEPT - 1
        server = await world.restart()  # an orderly stop commits the rest
        assert server.device(DEV_EUI).fcnt_up == DEFERRED_UPDATES_KEPT

    run_world(tmp_path, main)


def test_an_acknowledgement_is_committed_before_the_application_learns_of_it(tmp_path: Path) -> None:
    async def main(world: World) -> None:
        device, _ = setup(world)
        handle = world.server.enqueue_downlink(DEV_EUI, 5, b"ack me", confirmed=True)
        await world.receive(device.uplink(IGNORED_FPORT, b"a"))  # FCnt 0, answered in RX1
        await world.run_for(3)
        assert handle.transmitted.done()
        device.take_downlink(world.port.sent[-1].message.pdu)
        await world.receive(device.uplink(IGNORED_FPORT, b"", ack=True))  # FCnt 1: no forward, no downlink
        assert handle.acknowledged.result() == 1
        assert await fcnt_up_after_a_crash(world, tmp_path / "crash") == 1

    run_world(tmp_path, main)


def test_a_frame_counter_read_through_the_application_api_is_committed(tmp_path: Path) -> None:
    """GET /api/devices/{eui} tells a client the device's fCntUp: from then on somebody outside
    has heard of the uplink (here one without FPort, which no application handler sees)."""
    async def main(world: World) -> None:
        device, _ = setup(world)
        api = ApplicationApi(world.server, list)
        await world.receive(device.uplink(None))  # FCnt 0: no FPort, nothing forwarded or answered
        assert await fcnt_up_after_a_crash(world, tmp_path / "before-read") is None  # nobody heard of it
        response = await api.get_device(make_mocked_request(
            "GET", f"/api/devices/{DEV_EUI:016X}", match_info={"eui": f"{DEV_EUI:016X}"}))
        assert json.loads(response.body)["fCntUp"] == 0
        assert await fcnt_up_after_a_crash(world, tmp_path / "after-read") == 0

    run_world(tmp_path, main)


def test_an_uplink_in_its_de_duplication_window_when_the_server_closes_is_dropped_quietly(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """Closing in the window: the uplink is dropped as by a crash (nobody outside heard of it),
    not processed after the close against a closed registry (a traceback in the log)."""
    async def main(world: World) -> None:
        device, forwarded = setup(world)
        await world.receive(device.uplink(FORWARDED_FPORT, b"a"))  # FCnt 0, processed
        late = device.uplink(FORWARDED_FPORT, b"b")  # FCnt 1: closed within its window
        await world.server.handle_uplink(GATEWAY_1, station_message(late, radio()))
        with caplog.at_level(logging.WARNING):
            await world.restart()
            await world.run_for(1.0)
        assert not [record for record in caplog.records if record.levelno >= logging.ERROR], caplog.text
        assert forwarded == [0]
        assert world.server.device(DEV_EUI).fcnt_up == 0
        await world.receive(late)  # the restarted server takes it as its first hearing
        assert world.server.device(DEV_EUI).fcnt_up == 1

    run_world(tmp_path, main)

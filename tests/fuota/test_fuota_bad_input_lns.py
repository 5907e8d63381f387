"""Bad answers from a device reach the FUOTA server through the real network path — device radio →
Basics Station emulator → LNS websocket (``updf``) → network server → FUOTA server — and are
logged and ignored; the campaign still upgrades the device. (test_fuota_stop_restart covers the
same input on the in-process radio link.)"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable
from pathlib import Path

from fuota_world import HW_VERSION, NEW_VERSION, OLD_VERSION, SIGNING_KEY, image

from otaharness.emulators.lorawan_device import AbpActivation, DeviceConfig
from otaharness.emulators.lorawan_device.fuota import FuotaAgent
from otaharness.emulators.lorawan_field import LoRaWANField
from otaharness.protocols.fuota import firmware_management as ts006
from otaharness.protocols.fuota import fragmentation as ts004
from otaharness.protocols.fuota import multicast_setup as ts005
from otaharness.protocols.lorawan import SessionKeys
from otaharness.runtime.clock import VirtualClock, VirtualEventLoop
from otaharness.servers.basics_station.registry import StationRecord
from otaharness.servers.basics_station.server import BasicsStationServer
from otaharness.servers.fuota import CampaignConfig, CampaignDevice, DeviceStatus, FuotaServer
from otaharness.servers.lorawan import NetworkServer

GATEWAY_EUI = 0x0016C001FF10A235
DEV_EUI = 0x70B3D57ED0050101
DEV_ADDR = 0x26010101
GEN_APP_KEY = bytes(range(16))
KEYS = SessionKeys(nwk_s_key=bytes([1]) * 16, app_s_key=bytes([2]) * 16)


async def until(predicate: Callable[[], bool], timeout: float) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        assert loop.time() < deadline, "condition not reached in time"
        await asyncio.sleep(1.0)


async def campaign_with_bad_answers(tmp_path: Path, clock: VirtualClock) -> None:
    stations = BasicsStationServer(tmp_path / "server", clock)
    await stations.start()
    network = NetworkServer(tmp_path / "ns.sqlite", clock, random.Random(1), stations.lns)
    stations.lns.attach_network_server(network)
    await network.start()
    fuota = FuotaServer(network, tmp_path / "fuota.sqlite", clock, random.Random(2))
    urls = stations.endpoints()
    field = LoRaWANField(tmp_path / "field", clock, random.Random(3), tc_uri=urls["lns"], cups_uri=urls["cups"])
    agent = None
    try:
        stations.registry.put(StationRecord(GATEWAY_EUI, cups_uri=urls["cups"], tc_uri=urls["lns"]))
        await field.add_station("gw1", GATEWAY_EUI, (0.0, 0.0))
        await until(field.connected, 120)
        network.add_abp_device(DEV_EUI, DEV_ADDR, KEYS.nwk_s_key, KEYS.app_s_key)
        device = field.add_device("a", DeviceConfig(dev_eui=DEV_EUI, abp=AbpActivation(DEV_ADDR, KEYS),
                                                    gen_app_key=GEN_APP_KEY), (800.0, 0.0), random.Random(4))
        agent = FuotaAgent(device, SIGNING_KEY.public_key(), OLD_VERSION, HW_VERSION, flash_capacity=64 * 1024,
                           rng=random.Random(5), poll_interval_s=20.0)
        agent.start()
        config = CampaignConfig(name="bad input", devices=[CampaignDevice(DEV_EUI, GEN_APP_KEY.hex())],
                                firmware_version=NEW_VERSION, session_start_delay_s=60.0, unicast_timeout_s=60.0,
                                verification_timeout_s=200.0)
        campaign = fuota.create_campaign(config, image())
        fuota.start_campaign(campaign)
        for frame in (
            (ts005.FPORT, b"\x02"),  # McGroupSetupAns without its status octet
            (ts004.FPORT, b"\x7f\x00"),  # unknown CID
            (ts004.FPORT, ts004.FragSessionSetupAns(frag_index=2).to_bytes()),  # another session
            (ts005.FPORT, ts005.McGroupSetupAns(mc_group_id=3).to_bytes()),  # another group
            (ts006.FPORT, ts006.DevUpgradeImageAns(  # cut short
                up_image_status=ts006.UpImageStatus.VALID, next_firmware_version=NEW_VERSION).to_bytes()[:3]),
        ):
            await device.send(*frame)
        run = fuota.runs[campaign]
        await until(lambda: run.task is not None and run.task.done(), 30000)
        reasons = [e.detail["reason"] for e in fuota.store.events(campaign, "rejected")]
        assert len(reasons) == 5, reasons
        assert any("needs 1 payload octets" in r for r in reasons)
        assert any("unknown uplink CID 0x7f" in r for r in reasons)
        assert any("FragIndex 2" in r for r in reasons)
        assert any("McGroupID 3" in r for r in reasons)
        # they really went through the station: the LNS saw them as updf on FPorts 200/201/203
        texts = [text for session in stations.lns.history for text in session.texts if '"updf"' in text]
        assert sum('"FPort": 200' in t or '"FPort":200' in t for t in texts) >= 2
        assert run.devices[DEV_EUI].status is DeviceStatus.PASSED
        assert agent.firmware_version == NEW_VERSION
    finally:
        if agent is not None:
            await agent.stop()
        await fuota.close()
        await field.close()
        await network.close()
        await stations.stop()


def test_bad_answers_through_the_lns_are_logged_and_ignored(tmp_path: Path) -> None:
    clock = VirtualClock()
    loop = VirtualEventLoop(clock)
    asyncio.set_event_loop(loop)
    try:
        async def drive() -> None:  # the clock moves while the campaign task waits
            task = asyncio.ensure_future(campaign_with_bad_answers(tmp_path, clock))
            await clock.run_until(task.done, timeout=86400)
            task.result()

        loop.run_until_complete(drive())
    finally:
        loop.close()
        asyncio.set_event_loop(None)

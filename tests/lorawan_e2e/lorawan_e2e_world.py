"""An end-to-end LoRaWAN world on a virtual-time loop: the Basics Station back end (CUPS + LNS)
with the network server attached, stations with radios and devices on one medium."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from otaharness.emulators.lorawan_device import DeviceClass, DeviceConfig, LoRaWANDevice
from otaharness.emulators.lorawan_field import LoRaWANField
from otaharness.runtime.clock import VirtualClock, VirtualEventLoop
from otaharness.runtime.lora_capture import LoraCapture
from otaharness.servers.basics_station.registry import StationRecord
from otaharness.servers.basics_station.server import BasicsStationServer
from otaharness.servers.lorawan import NetworkServer
from otaharness.servers.lorawan.app_api import ApplicationApi

APP_KEY = bytes.fromhex("2b7e151628aed2a6abf7158809cf4f3c")
JOIN_EUI = 0x70B3D57ED0000001
GATEWAY_EUI = 0x0016C001FF10A235


class World:
    def __init__(self, tmp_path: Path, clock: VirtualClock, seed: int = 3, capture: bool = False) -> None:
        self.tmp_path = tmp_path
        self.clock = clock
        self.seed = seed
        self.server = BasicsStationServer(tmp_path / "server", clock)
        self.ns: NetworkServer | None = None
        self.api: ApplicationApi | None = None
        self.capture = LoraCapture(tmp_path / "radio.pcap", clock) if capture else None
        self.field: LoRaWANField | None = None

    async def start(self) -> None:
        await self.server.start()
        self.ns = NetworkServer(self.tmp_path / "ns.sqlite", self.clock, random.Random(self.seed), self.server.lns)
        self.server.lns.attach_network_server(self.ns)
        self.api = ApplicationApi(self.ns, lambda: list(self.server.lns.sessions))
        await self.ns.start()
        urls = self.server.endpoints()
        self.field = LoRaWANField(self.tmp_path / "field", self.clock, random.Random(self.seed + 1),
                                  tc_uri=urls["lns"], cups_uri=urls["cups"], capture=self.capture)

    def rng(self, name: str) -> random.Random:
        return random.Random(f"{self.seed}:{name}")

    async def station(self, name: str = "gw1", eui: int = GATEWAY_EUI, position: tuple[float, float] = (0.0, 0.0)):
        assert self.field is not None
        urls = self.server.endpoints()
        self.server.registry.put(StationRecord(eui, cups_uri=urls["cups"], tc_uri=urls["lns"]))
        station = await self.field.add_station(name, eui, position)
        await self.until(self.field.connected, 120)
        return station

    def device(self, name: str, dev_eui: int, position: tuple[float, float] = (800.0, 0.0), *,
               device_class: str = "A", **config: Any) -> LoRaWANDevice:
        assert self.field is not None and self.ns is not None
        self.ns.add_otaa_device(dev_eui, JOIN_EUI, APP_KEY, device_class)
        settings = DeviceConfig(dev_eui=dev_eui, app_eui=JOIN_EUI, app_key=APP_KEY,
                                device_class=DeviceClass(device_class), **config)
        return self.field.add_device(name, settings, position, self.rng(name))

    async def until(self, predicate: Callable[[], bool], timeout: float = 600.0, poll_s: float = 0.05) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not predicate():
            assert loop.time() < deadline, "condition not reached in time"
            await asyncio.sleep(poll_s)

    async def close(self) -> None:
        if self.field is not None:
            await self.field.close()
        if self.ns is not None:
            await self.ns.close()
        await self.server.stop()
        if self.capture is not None:
            self.capture.close()


def run_world(tmp_path: Path, main: Callable[[World], Awaitable[Any]], **options: Any) -> Any:
    clock = VirtualClock()
    loop = VirtualEventLoop(clock)
    asyncio.set_event_loop(loop)

    async def scenario() -> Any:
        world = World(tmp_path, clock, **options)
        await world.start()
        try:
            result = await main(world)
        finally:
            await world.close()
        await asyncio.sleep(0)
        leftover = [task for task in asyncio.all_tasks() if task not in (asyncio.current_task(), driver)]
        assert not leftover, f"tasks left behind: {leftover}"
        return result

    driver: asyncio.Task[Any] | None = None

    async def drive() -> Any:
        nonlocal driver
        driver = asyncio.current_task()
        task = asyncio.ensure_future(scenario())
        await clock.run_until(task.done, timeout=86400)
        return task.result()

    try:
        return loop.run_until_complete(drive())
    finally:
        loop.run_until_complete(loop.shutdown_default_executor())
        loop.close()
        asyncio.set_event_loop(None)

"""A LoRaWAN field: Basics Stations with radios and end devices sharing one radio medium.

Used by ``otaharness emulate lorawan`` (:mod:`otaharness.emulators.lorawan_cli`), the lorawan steps, the
end-to-end tests and the multicast benchmark, so that all of them put the same pieces together::

    field = LoRaWANField(home_dir, clock, rng, tc_uri="ws://lns:6038", dial=runtime.link,
                         address_of=runtime.address_of, capture=LoraCapture(path, clock))
    await field.add_station("gw1", 0x0000_0000_0000_00A1, (0.0, 0.0))
    device = field.add_device("dev1", DeviceConfig(...), (800.0, 0.0), rng)
    await field.until_connected()
    await device.join()
    await field.close()

It never imports the runtime: addresses, dialling and the clock come in as arguments.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from pathlib import Path

from otaharness.emulators.basics_station import BasicsStation, StationHome, StationSettings
from otaharness.emulators.basics_station.radio import StationRadio
from otaharness.emulators.lorawan_device import DeviceConfig, LoRaWANDevice
from otaharness.runtime.radio import RadioMedium
from otaharness.runtime.radio.propagation import Position
from otaharness.protocols.lorawan import EU868, Region
from otaharness.runtime.clock import Clock
from otaharness.runtime.lora_capture import LoraCapture

Dial = Callable[[str], Awaitable[tuple[str, int]]]


class LoRaWANField:
    def __init__(self, home_dir: Path, clock: Clock, rng: random.Random, *, tc_uri: str | None,
                 cups_uri: str | None = None, region: Region = EU868, dial: Dial | None = None,
                 address_of: Callable[[str], str] | None = None, capture: LoraCapture | None = None) -> None:
        self.home_dir = Path(home_dir)
        self.clock = clock
        self.tc_uri = tc_uri
        self.cups_uri = cups_uri
        self.dial = dial
        self.address_of = address_of
        self.capture = capture
        self.medium = RadioMedium(region, rng)
        if capture is not None:
            capture.attach(self.medium)
        self.stations: dict[str, BasicsStation] = {}
        self.radios: dict[str, StationRadio] = {}
        self.devices: dict[str, LoRaWANDevice] = {}

    async def add_station(self, name: str, eui: int, position: Position, *, package: str | None = None,
                          **settings: float | str) -> BasicsStation:
        home = StationHome(self.home_dir / name).provision(cups_uri=self.cups_uri, tc_uri=self.tc_uri,
                                                           version=package)
        station = BasicsStation(StationSettings(eui, **settings), home, self.clock,  # type: ignore[arg-type]
                                bind_address=self.address_of(name) if self.address_of else None,
                                dial=self.dial, name=name)
        self.radios[name] = StationRadio(station, self.medium, position)
        self.stations[name] = station
        await station.start()
        return station

    def add_device(self, name: str, config: DeviceConfig, position: Position, rng: random.Random) -> LoRaWANDevice:
        device = LoRaWANDevice(name, config, self.medium, position, clock=self.clock, rng=rng,
                               on_session=self.capture.add_session if self.capture else None)
        self.devices[name] = device
        return device

    def connected(self) -> bool:
        """Every station has its router_config (uplinks are forwarded from then on)."""
        return all(station.tc_connected and station.router_config is not None for station in self.stations.values())

    async def until_connected(self, poll_s: float = 0.05) -> None:
        while not self.connected():
            await asyncio.sleep(poll_s)

    async def close(self, drain_s: float = 3.0) -> None:
        """Stop the stations and take every radio off the air; then wait ``drain_s`` so that
        frames still on the air end (the medium's timers), which costs nothing on virtual time."""
        for name, station in self.stations.items():
            await station.wait_restart()
            await station.stop()
            self.radios[name].detach()
        for name in self.devices:
            self.medium.detach(name)
        await asyncio.sleep(drain_s)

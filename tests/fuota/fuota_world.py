"""A FUOTA world on virtual time: network server + FUOTA server, gateways and emulated devices
with their FUOTA agents on one radio medium."""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from otaharness.emulators.lorawan_device import AbpActivation, DeviceConfig, LoRaWANDevice
from otaharness.emulators.lorawan_device.fuota import SPECIFICATION, FuotaAgent, FuotaProfile, build_image
from otaharness.runtime.radio import FixedLoss, RadioMedium
from otaharness.protocols.lorawan import SessionKeys
from otaharness.runtime.clock import VirtualClock, VirtualEventLoop
from otaharness.servers.fuota import CampaignConfig, CampaignDevice, CampaignState, FuotaServer, Stage
from otaharness.servers.fuota.radio_link import RadioGatewayPort
from otaharness.servers.lorawan import NetworkServer

GATEWAY = 0x00000000000000A1
OLD_VERSION = 0x01000000
NEW_VERSION = 0x01010000
HW_VERSION = 0x00AB0001
SIGNING_KEY = Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
OTHER_KEY = Ed25519PrivateKey.from_private_bytes(bytes(range(1, 33)))


def image(size: int = 1500, *, version: int = NEW_VERSION, hw: int = HW_VERSION,
          key: Ed25519PrivateKey = SIGNING_KEY) -> bytes:
    body = random.Random(size).randbytes(size)
    return build_image(body, fw_version=version, hw_version=hw, signing_key=key)


@dataclass
class FuotaWorld:
    tmp_path: Path
    clock: VirtualClock
    seed: int = 3
    medium: RadioMedium = field(init=False)
    port: RadioGatewayPort = field(init=False)
    network: NetworkServer = field(init=False)
    fuota: FuotaServer = field(init=False)
    agents: dict[str, FuotaAgent] = field(default_factory=dict)
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.medium = RadioMedium(rng=random.Random(self.seed))
        self.port = RadioGatewayPort(self.medium)
        self.port.add_gateway(GATEWAY, (0.0, 0.0))
        self.network = NetworkServer(self.tmp_path / "ns.sqlite", self.clock, random.Random(self.seed), self.port)
        self.port.server = self.network
        self.fuota = FuotaServer(self.network, self.tmp_path / "fuota.sqlite", self.clock, random.Random(self.seed))

    def add_device(self, name: str, *, profile: FuotaProfile = SPECIFICATION, hw_version: int = HW_VERSION,
                   flash_capacity: int = 64 * 1024, poll_interval_s: float = 20.0, position: tuple[float, float] = (800.0, 0.0),
                   **config: Any) -> FuotaAgent:
        index = len(self.agents) + 1
        dev_eui = 0x70B3D57ED0050000 + index
        keys = SessionKeys(nwk_s_key=bytes([index]) * 16, app_s_key=bytes([index + 100]) * 16)
        dev_addr = 0x26010000 + index
        self.network.add_abp_device(dev_eui, dev_addr, keys.nwk_s_key, keys.app_s_key)
        device = LoRaWANDevice(name, DeviceConfig(dev_eui=dev_eui, abp=AbpActivation(dev_addr, keys),
                                                  gen_app_key=bytes([index + 50]) * 16, **config),
                               self.medium, position, clock=self.clock, rng=random.Random(self.seed * 100 + index))
        agent = FuotaAgent(device, SIGNING_KEY.public_key(), OLD_VERSION, hw_version, flash_capacity=flash_capacity,
                           profile=profile, rng=random.Random(index), poll_interval_s=poll_interval_s)
        self.agents[name] = agent
        agent.start()
        return agent

    def campaign_device(self, name: str) -> CampaignDevice:
        agent = self.agents[name]
        config = agent.device.config
        assert config.gen_app_key is not None
        return CampaignDevice(config.dev_eui, config.gen_app_key.hex(), agent.profile.name)

    def config(self, **overrides: Any) -> CampaignConfig:
        values: dict[str, Any] = dict(name="test", devices=[self.campaign_device(n) for n in self.agents],
                                      firmware_version=NEW_VERSION, session_start_delay_s=60.0,
                                      unicast_timeout_s=60.0, unicast_attempts=3, verification_timeout_s=200.0)
        values.update(overrides)
        return CampaignConfig(**values)

    def dev_eui(self, name: str) -> int:
        return self.agents[name].device.config.dev_eui

    def device_state(self, campaign: int, name: str) -> Any:
        return self.fuota.runs[campaign].devices[self.dev_eui(name)]

    def stage(self, campaign: int) -> Stage:
        return self.fuota.runs[campaign].stage

    async def until(self, predicate: Callable[[], bool], timeout: float = 20000.0) -> None:
        assert await self.clock.run_until(predicate, timeout=timeout), "condition not reached in time"

    async def finish(self, campaign: int, timeout: float = 30000.0) -> None:
        run = self.fuota.runs[campaign]
        await self.until(lambda: all(t is None or t.done() for t in (run.task, run.cleanup_task)), timeout)

    def requests(self, campaign: int, dev_eui: int | None = None) -> list[str]:
        return [e.detail["command"] for e in self.fuota.store.events(campaign, "request")
                if dev_eui is None or e.dev_eui == dev_eui]

    def lossy_during_fragments(self, campaign: int, name: str, rate: float, rounds: tuple[int, ...] = (1,)) -> None:
        """``name`` loses ``rate`` of the frames while stage 5 of the given rounds runs."""
        async def watch() -> None:
            run = self.fuota.runs[campaign]
            while run.state is CampaignState.RUNNING:
                lossy = run.stage is Stage.DL_FRAGMENT and run.round in rounds
                self.medium.set_loss(name, FixedLoss(rate) if lossy else None)
                await asyncio.sleep(1.0)
        self._tasks.append(asyncio.ensure_future(watch()))

    async def restart_fuota(self) -> FuotaServer:
        await self.fuota.close()
        self.fuota = FuotaServer(self.network, self.tmp_path / "fuota.sqlite", self.clock, random.Random(self.seed + 1))
        await self.fuota.start()
        return self.fuota

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        for agent in self.agents.values():
            await agent.stop()
        await self.fuota.close()
        await self.network.close()


def run_world(tmp_path: Path, main: Callable[[FuotaWorld], Awaitable[Any]], **options: Any) -> Any:
    logging.getLogger("emulators").setLevel(logging.WARNING)
    clock = VirtualClock()
    loop = VirtualEventLoop(clock)
    asyncio.set_event_loop(loop)

    async def scenario() -> Any:
        world = FuotaWorld(tmp_path, clock, **options)
        try:
            return await main(world)
        finally:
            await world.close()

    try:
        return loop.run_until_complete(scenario())
    finally:
        loop.close()
        asyncio.set_event_loop(None)

"""A whole FUOTA firmware campaign on the virtual clock: N class A devices behind G gateways.

Run from the repository root: python -m benchmarks.bench_fuota_campaign [--devices 1000]
[--gateways 10] [--image-kib 256] [--loss 0.1] [--data-rate 5] [--redundancy 0.3]

One process: radio medium, G gateways on a grid 30 km apart (out of each other's reach, so their
simultaneous multicast copies do not collide at a device), N devices within 2.5 km of one gateway
each, the network server wired to the medium (otaharness.servers.fuota.radio_link), the FUOTA
server and a FuotaAgent per device (specification profile, poll every 300 s, quiet in the class C
session). Every link loses --loss of the frames in both directions (FixedLoss). The campaign runs
stages 1, 3-7 with FEC on at the given data rate on 869.525 MHz (10 % duty cycle), then every
device must report the new version (DevVersionAns) for the run to count.

Printed: simulated campaign time, wall time, their ratio, peak resident memory (VmHWM) and the
per-stage simulated durations.
"""

from __future__ import annotations

import argparse
import collections
import asyncio
import json
import logging
import math
import random
import tempfile
import time
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from emulators.lorawan_device import AbpActivation, DeviceConfig, LoRaWANDevice
from emulators.lorawan_device.fuota import FuotaAgent, build_image
from emulators.radio import FixedLoss, RadioMedium
from otaharness.protocols.lorawan import SessionKeys
from otaharness.runtime.clock import VirtualClock, VirtualEventLoop
from otaharness.servers.fuota import CampaignConfig, CampaignDevice, FuotaServer
from otaharness.servers.fuota.radio_link import RadioGatewayPort
from otaharness.servers.fuota.report import summary
from otaharness.servers.lorawan import NetworkServer

GATEWAY_SPACING_M = 30_000.0
DEVICE_RADIUS_M = 2_500.0
OLD, NEW, HW = 0x0100, 0x0200, 0x42


def peak_rss_bytes() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


async def campaign(clock: VirtualClock, args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    rng = random.Random(7)
    medium = RadioMedium(rng=random.Random(1))
    port = RadioGatewayPort(medium)
    side = math.ceil(math.sqrt(args.gateways))
    gateways = [(0xA000 + g, ((g % side) * GATEWAY_SPACING_M, (g // side) * GATEWAY_SPACING_M))
                for g in range(args.gateways)]
    for gateway_id, position in gateways:
        port.add_gateway(gateway_id, position)
    network = NetworkServer(workdir / "ns.sqlite", clock, random.Random(2), port)
    port.server = network
    fuota = FuotaServer(network, workdir / "fuota.sqlite", clock, random.Random(3))
    signing_key = Ed25519PrivateKey.generate()
    agents = []
    for index in range(args.devices):
        _, (gx, gy) = gateways[index % len(gateways)]
        angle, radius = rng.uniform(0, 2 * math.pi), DEVICE_RADIUS_M * math.sqrt(rng.random())
        dev_eui, dev_addr = 0x70B3D57ED0000000 + index, 0x26000000 + index
        keys = SessionKeys(nwk_s_key=rng.randbytes(16), app_s_key=rng.randbytes(16))
        network.add_abp_device(dev_eui, dev_addr, keys.nwk_s_key, keys.app_s_key)
        name = f"dev{index}"
        device = LoRaWANDevice(name, DeviceConfig(dev_eui=dev_eui, abp=AbpActivation(dev_addr, keys),
                                                  gen_app_key=rng.randbytes(16)),
                               medium, (gx + radius * math.cos(angle), gy + radius * math.sin(angle)),
                               clock=clock, rng=random.Random(index))
        medium.set_loss(name, FixedLoss(args.loss) if args.loss else None)
        agent = FuotaAgent(device, signing_key.public_key(), OLD, HW, flash_capacity=(args.image_kib + 16) * 1024,
                           rng=random.Random(index), poll_interval_s=300.0)
        agent.start()
        agents.append(agent)
    image = build_image(random.Random(5).randbytes(args.image_kib * 1024), fw_version=NEW, hw_version=HW,
                        signing_key=signing_key)
    config = CampaignConfig(
        name="bench", firmware_version=NEW, redundancy=args.redundancy, data_rate=args.data_rate,
        devices=[CampaignDevice(a.device.config.dev_eui, (a.device.config.gen_app_key or b"").hex()) for a in agents],
        unicast_timeout_s=900.0, unicast_attempts=4, verification_timeout_s=600.0,
        max_rounds=1)
    campaign_id = fuota.create_campaign(config, image)
    started_virtual = clock.monotonic()
    fuota.start_campaign(campaign_id)
    run = fuota.runs[campaign_id]
    assert run.task is not None
    await clock.run_until(run.task.done, timeout=7 * 86400)
    simulated = clock.monotonic() - started_virtual
    status = fuota.status(campaign_id)
    report = summary(fuota.store, campaign_id)
    for agent in agents:
        await agent.stop()
    await fuota.close()
    await network.close()
    return {"simulated_s": simulated, "status": status, "report": report, "medium": dict(medium.counters),
            "upgraded": sum(agent.firmware_version == NEW for agent in agents)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, default=1000)
    parser.add_argument("--gateways", type=int, default=10)
    parser.add_argument("--image-kib", type=int, default=256)
    parser.add_argument("--loss", type=float, default=0.1)
    parser.add_argument("--data-rate", type=int, default=5)
    parser.add_argument("--redundancy", type=float, default=0.3)
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)
    clock = VirtualClock(real_time_limit=6 * 3600.0)  # one run_until spans the whole campaign
    loop = VirtualEventLoop(clock)
    asyncio.set_event_loop(loop)
    wall = time.perf_counter()
    # SQLite files in memory-backed /dev/shm when there is one: the run measures the simulation, not fsync
    with tempfile.TemporaryDirectory(dir="/dev/shm" if Path("/dev/shm").is_dir() else None) as workdir:
        result = loop.run_until_complete(campaign(clock, args, Path(workdir)))
    wall = time.perf_counter() - wall
    loop.close()
    status = result["status"]
    stages: dict[str, float] = {}
    for stage in result["report"]["stages"]:
        stages[stage["name"]] = stages.get(stage["name"], 0.0) + stage["end"] - stage["start"]
    print(json.dumps({
        "devices": args.devices, "gateways": args.gateways, "data_rate": args.data_rate, "image_kib": args.image_kib,
        "loss": args.loss, "redundancy": args.redundancy, "fragments": status["fragments_total"],
        "passed": status["devices"]["passed"], "failed": status["devices"]["failed"], "upgraded": result["upgraded"],
        "simulated_s": round(result["simulated_s"], 1), "wall_s": round(wall, 1),
        "simulated_per_wall": round(result["simulated_s"] / wall, 1),
        "peak_rss_mib": round(peak_rss_bytes() / 2**20, 1),
        "failure_reasons": dict(collections.Counter(d["reason"] for d in status["device_states"] if d["reason"])),
        "stage_seconds": {name: round(seconds, 1) for name, seconds in stages.items()},
        "medium": result["medium"]}, indent=1))


if __name__ == "__main__":
    main()

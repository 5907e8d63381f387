"""A fleet of class C devices receiving one FUOTA multicast session: wall time and memory per device
from 100 to 10,000 devices in one process (issue 19: cost linear in devices).

Run from the repository root: python -m benchmarks.bench_multicast_fleet
[--devices 100,300,1000,3000,10000] [--image-kib 16] [--loss 0.1] [--data-rate 5] [--redundancy 0.5]
[--output benchmarks/results/multicast_fleet.json]

Per fleet size, in a fresh process on the virtual clock: the radio medium, one gateway per 1,000
devices (30 km apart, as in bench_fuota_campaign), the network server wired to the medium
(otaharness.servers.fuota.radio_link), and N class C devices within 2.5 km of one gateway each,
each with its FuotaAgent (specification profile). Every device is put in the state the class A
stages of a campaign leave (FuotaAgent.provision: McGroupSetupReq with its own encrypted McKey,
McClassCSessionReq, FragSessionSetupReq) without sending them over the air, which is what
bench_fuota_campaign measures; this benchmark measures the session itself. The network server
then sends the image's DataFragments as class C multicast frames through every gateway, at the
gateways' duty cycle; every link loses --loss of the frames. Every device decodes every frame it
hears (PHYPayload, FCnt, MIC, decryption, TS004 parse, FEC push), with the work that is the same
pure function of the same octets and keys shared as in a campaign (see bench_fuota_campaign),
and must rebuild the image.

Timed: the session, from the first fragment queued to the last transmitted and received, in
wall, CPU and simulated seconds; setting the fleet up is reported apart. Memory: the process's
peak resident set, and per device (peak less the resident set before the fleet was made).
Baseline, in the same process after the session: the codec baseline of bench_fuota_campaign (the
same fragment stream received by N devices without network, radio or clock).

The series is written to --output as a JSON list of {"devices", "wall_s", "peak_rss_mib", ...}
(one entry per size; the fleet-scaling plot in docs reads it).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import random
import tempfile
from functools import partial
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from otaharness.emulators.lorawan_device import (
    AbpActivation,
    DeviceClass,
    DeviceConfig,
    LoRaWANDevice,
)
from otaharness.emulators.lorawan_device.device import forget_shared_multicast_work
from otaharness.emulators.lorawan_device.fuota import FuotaAgent
from otaharness.emulators.lorawan_device.fuota.agent import forget_shared_parses

from benchmarks.bench_fuota_campaign import (
    codec_receptions,
    fragment_stream,
    peak_rss_mib,
)
from benchmarks.measure import (
    Figures,
    Stopwatch,
    on_virtual_clock,
    rss_bytes,
    run_sizes,
    run_until_done,
)
from otaharness.protocols.fuota import fragmentation as ts004
from otaharness.protocols.fuota import multicast_setup as ts005
from otaharness.protocols.fuota.fec import DecoderState, clear_caches, encode_block
from otaharness.protocols.lorawan import SessionKeys, derive_mc_session_keys
from otaharness.protocols.lorawan import keys as lorawan_keys
from otaharness.runtime.clock import VirtualClock
from otaharness.runtime.radio import FixedLoss, RadioMedium
from otaharness.servers.fuota import CampaignConfig, CampaignDevice
from otaharness.servers.fuota.radio_link import RadioGatewayPort
from otaharness.servers.lorawan import NetworkServer

DEVICES_PER_GATEWAY = 1000
GATEWAY_SPACING_M = 30_000.0
DEVICE_RADIUS_M = 2_500.0
SESSION_START_S = 60.0  # after the fleet is set up, by the devices' and the server's clocks
MC_GROUP_ID = 0
MC_ADDR = 0x01F0_0001
HW_VERSION = 0x42
GPS_MODULO = 1 << 32
DEFAULT_OUTPUT = Path(__file__).parent / "results" / "multicast_fleet.json"


async def session(clock: VirtualClock, workdir: Path, *, devices: int, image_kib: int, loss: float,
                  data_rate: int, redundancy: float) -> Figures:
    rng = random.Random(7)
    rss_before = rss_bytes()
    medium = RadioMedium(rng=random.Random(1))
    port = RadioGatewayPort(medium)
    gateways = max(1, math.ceil(devices / DEVICES_PER_GATEWAY))
    side = math.ceil(math.sqrt(gateways))
    sites = [(0xA000 + g, ((g % side) * GATEWAY_SPACING_M, (g // side) * GATEWAY_SPACING_M))
             for g in range(gateways)]
    for gateway_id, position in sites:
        port.add_gateway(gateway_id, position)
    network = NetworkServer(workdir / "ns.sqlite", clock, random.Random(2), port)
    port.server = network
    image = random.Random(5).randbytes(image_kib * 1024)
    mc_key = random.Random(3).randbytes(16)
    verify_key = Ed25519PrivateKey.generate().public_key()  # no image is checked in this benchmark
    agents: list[FuotaAgent] = []
    try:
        with Stopwatch() as setting_up:
            gen_app_keys = [rng.randbytes(16) for _ in range(devices)]
            config = CampaignConfig(name="fleet", firmware_version=0x0200, redundancy=redundancy, data_rate=data_rate,
                                    devices=[CampaignDevice(0x70B3D57ED0000000 + index, key.hex())
                                             for index, key in enumerate(gen_app_keys)])
            frag_size = config.fragment_size()
            nb_frag = -(-len(image) // frag_size)
            block = encode_block(image, frag_size, config.coded_fragments(nb_frag))
            fragments = ts004.data_fragments(block, config.frag_index)
            group_keys = derive_mc_session_keys(mc_key, MC_ADDR)
            network.create_multicast_group(MC_ADDR, group_keys.nwk_s_key, group_keys.app_s_key, config.frequency,
                                           data_rate, name="fleet")
            session_gps = int(clock.gps() + SESSION_START_S)
            session_request = ts005.McClassCSessionReq(
                mc_group_id=MC_GROUP_ID, session_time=session_gps % GPS_MODULO,
                time_out=config.timeout_exponent(len(fragments)), dl_frequency=config.frequency // 100, dr=data_rate)
            frag_request = ts004.FragSessionSetupReq.for_block(block, frag_index=config.frag_index,
                                                               mc_group_bit_mask=1 << MC_GROUP_ID,
                                                               block_ack_delay=config.block_ack_delay,
                                                               descriptor=config.firmware_version.to_bytes(4, "little"))
            for index, gen_app_key in enumerate(gen_app_keys):
                _, (gx, gy) = sites[index % len(sites)]
                angle, radius = rng.uniform(0, 2 * math.pi), DEVICE_RADIUS_M * math.sqrt(rng.random())
                keys = SessionKeys(nwk_s_key=rng.randbytes(16), app_s_key=rng.randbytes(16))
                name = f"dev{index}"
                device = LoRaWANDevice(name, DeviceConfig(dev_eui=0x70B3D57ED0000000 + index,
                                                          abp=AbpActivation(0x26000000 + index, keys),
                                                          gen_app_key=gen_app_key, device_class=DeviceClass.C),
                                       medium, (gx + radius * math.cos(angle), gy + radius * math.sin(angle)),
                                       clock=clock, rng=random.Random(index))
                medium.set_loss(name, FixedLoss(loss) if loss else None)
                agent = FuotaAgent(device, verify_key, 0x0100, HW_VERSION,
                                   flash_capacity=(image_kib + 16) * 1024, rng=random.Random(index))
                ke_key = lorawan_keys.derive_mc_ke_key(lorawan_keys.mc_root_key_from_gen_app_key(gen_app_key))
                agent.provision(
                    ts005.McGroupSetupReq(mc_group_id=MC_GROUP_ID, mc_addr=MC_ADDR,
                                          mc_key_encrypted=lorawan_keys.encrypt_mc_key(ke_key, mc_key),
                                          min_mc_fcount=0, max_mc_fcount=GPS_MODULO - 1),
                    session_request, frag_request)
                agents.append(agent)
        fleet_rss = rss_bytes() - rss_before
        gateway_ids = [gateway_id for gateway_id, _ in sites]
        await run_until_done(clock, _sleep_until(clock, session_gps + 1.0), timeout=SESSION_START_S + 10)
        with Stopwatch(clock) as running:
            sent = [network.enqueue_multicast("fleet", ts004.FPORT, fragment.to_bytes(), gateways=gateway_ids)
                    for fragment in fragments]
            await run_until_done(clock, sent[-1].transmitted, timeout=float(1 << session_request.time_out))
            await run_until_done(clock, asyncio.sleep(5.0))  # the last frame's airtime, then its reception
        complete = sum(agent.fragment_state(config.frag_index) is DecoderState.COMPLETE
                       and agent.flash.data == image for agent in agents)
        if complete != devices:
            raise AssertionError(f"{complete} of {devices} devices rebuilt the image")
    finally:
        await network.close()
    del agents

    frames = fragment_stream(config, image, mc_key, MC_ADDR)
    forget_shared_multicast_work()
    forget_shared_parses()
    clear_caches()
    with Stopwatch() as baseline:
        rebuilt = codec_receptions(devices, frames, mc_key, MC_ADDR, image, frag_size, loss, random.Random(11))
    if rebuilt != devices:
        raise AssertionError(f"the codec baseline rebuilt the image on {rebuilt} of {devices} devices")
    peak_rss = peak_rss_mib() * 2**20
    receptions = medium.counters["delivered"]
    return {
        "devices": devices, "gateways": gateways, "image_kib": image_kib, "loss": loss, "data_rate": data_rate,
        "fragments": len(fragments), "complete": complete,
        "setup_s": round(setting_up.seconds, 2),
        "wall_s": round(running.seconds, 2), "cpu_s": round(running.cpu_seconds, 2),
        "simulated_s": round(running.virtual_seconds, 1),
        "wall_ms_per_device": round(1000 * running.seconds / devices, 3),
        "receptions": receptions, "receptions_per_s": round(receptions / running.seconds),
        "peak_rss_mib": round(peak_rss / 2**20, 1),
        "fleet_rss_kib_per_device": round(fleet_rss / 1024 / devices, 1),
        "peak_rss_kib_per_device": round((peak_rss - rss_before) / 1024 / devices, 1),
        "baseline_s": round(baseline.seconds, 2), "baseline_cpu_s": round(baseline.cpu_seconds, 2),
        "session_per_codec": round(running.seconds / baseline.seconds, 2),
        "session_per_codec_cpu": round(running.cpu_seconds / baseline.cpu_seconds, 2),
    }


async def _sleep_until(clock: VirtualClock, gps: float) -> None:
    await asyncio.sleep(max(gps - clock.gps(), 0.0))


def measure(devices: int, image_kib: int, loss: float, data_rate: int, redundancy: float) -> Figures:
    if Path("/dev/shm").is_dir():  # SQLite in memory: the run measures the simulation, not fsync
        tempfile.tempdir = "/dev/shm"
    return on_virtual_clock(partial(session, devices=devices, image_kib=image_kib, loss=loss, data_rate=data_rate,
                                    redundancy=redundancy), real_time_limit=6 * 3600.0)


def describe(result: Figures) -> str:
    return (f"{result['devices']:>6} devices, {result['gateways']} gateway(s), {result['image_kib']} KiB "
            f"({result['fragments']} fragments): session {result['simulated_s']:.0f} simulated s in "
            f"{result['wall_s']:.1f} wall s ({result['wall_ms_per_device']:.2f} ms per device, CPU "
            f"{result['cpu_s']:.1f} s), {result['receptions_per_s']} receptions/s, peak RSS "
            f"{result['peak_rss_mib']:.0f} MiB ({result['peak_rss_kib_per_device']:.0f} KiB per device), "
            f"set-up {result['setup_s']:.1f} s; codec baseline {result['baseline_s']:.1f} s, session = "
            f"{result['session_per_codec']:.2f} x codec ({result['session_per_codec_cpu']:.2f} x in CPU s)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", default="100,300,1000,3000,10000",
                        help="fleet sizes, comma-separated (each in its own process)")
    parser.add_argument("--image-kib", type=int, default=16)
    parser.add_argument("--loss", type=float, default=0.1)
    parser.add_argument("--data-rate", type=int, default=5)
    # 0.5: with 75 uncoded fragments, 10 % loss leaves a device short of 0.3 × 75 coded ones now and then
    parser.add_argument("--redundancy", type=float, default=0.5)
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT, help="where the JSON series goes")
    arguments = parser.parse_args()
    sizes = [int(size) for size in arguments.devices.split(",")]
    results = run_sizes("bench_multicast_fleet", measure,
                        [(size, arguments.image_kib, arguments.loss, arguments.data_rate, arguments.redundancy)
                         for size in sizes], describe)
    arguments.output.parent.mkdir(parents=True, exist_ok=True)
    arguments.output.write_text(json.dumps(results, indent=1) + "\n")
    print(f"series written to {arguments.output}")


if __name__ == "__main__":
    main()

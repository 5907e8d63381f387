"""A whole FUOTA firmware campaign on the virtual clock: N class A devices behind G gateways.

Run from the repository root: python -m benchmarks.bench_fuota_campaign [--devices 1000]
[--gateways 10] [--image-kib 256] [--loss 0.1] [--data-rate 5] [--redundancy 0.3] [--seed 0]

In a fresh process on the virtual clock: radio medium, G gateways on a grid 30 km apart (out of
each other's reach, so their simultaneous multicast copies do not collide at a device), N devices
within 2.5 km of one gateway each, the network server wired to the medium
(otaharness.servers.fuota.radio_link), the FUOTA server and a FuotaAgent per device (specification
profile, poll every 300 s, quiet in the class C session). Every link loses --loss of the frames in
both directions (FixedLoss). The campaign runs stages 1, 3-7 with FEC on at the given data rate on
869.525 MHz (10 % duty cycle); SQLite files live in /dev/shm when there is one (the run measures
the simulation, not fsync). Every device that passed must run the new version. Every random
generator of the run (placement, keys, losses, the servers', each device's and agent's) is seeded
from --seed: the same seed gives the same run; seed 0 is the run this benchmark has always made.
Timed: from the campaign's start to its end, in simulated and in wall seconds (setting up the
devices is reported apart), and in CPU seconds of the process (cpu_s, simulated_per_cpu,
baseline_cpu_s, campaign_per_codec_cpu: on a machine shared with other work, wall time measures
the load as much as the run). Peak memory: the process's peak resident set (ru_maxrss).

Baseline, in the same process after the campaign (codec baseline): the campaign's fragment
stream -- the same image, fragment size, coded fragments and multicast keys, the FCnts 0.. of the
group's first round -- rebuilt with the codecs and received by N devices without the network,
radio, clock or campaign logic. Each device loses --loss of the frames (seeded, independently) and
does per received frame what the device does on reception: PHYPayload decode, FCnt
reconstruction, MIC check, FRMPayload decryption, TS004 command parse, FEC decoder push; every
device must rebuild the image. As in the devices, the MIC check, the decryption and the parse of
one multicast frame are done once and shared by every device that received it (same octets, same
keys: otaharness.emulators.lorawan_device.device.shared_multicast_payload, fuota.agent.shared_downlink_commands);
decode, FCnt and the decoder are each device's own. The ratio "campaign wall time / codec baseline" (wall_s /
baseline_s) is the cost of the whole campaign (unicast stages, network server, radio, agents,
SQLite) in units of the devices' own reception and decoding of the fragments. This codec work,
rather than a bare multicast stream over the same radio path, is the baseline because it is the
part of the campaign no harness can avoid and it does not depend on the event loop's scheduling.
"""

from __future__ import annotations

import argparse
import collections
import logging
import math
import random
import resource
import tempfile
from functools import partial
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from otaharness.emulators.lorawan_device import (
    AbpActivation,
    DeviceConfig,
    LoRaWANDevice,
)
from otaharness.emulators.lorawan_device.device import (
    forget_shared_multicast_work,
    shared_multicast_payload,
)
from otaharness.emulators.lorawan_device.fuota import FuotaAgent, build_image
from otaharness.emulators.lorawan_device.fuota.agent import (
    forget_shared_parses,
    shared_downlink_commands,
)

from benchmarks.measure import (
    Figures,
    Stopwatch,
    on_virtual_clock,
    run_sizes,
    run_until_done,
)
from otaharness.protocols.fuota import fragmentation as ts004
from otaharness.protocols.fuota.fec import (
    DecoderState,
    FragmentDecoder,
    clear_caches,
    encode_block,
)
from otaharness.protocols.lorawan import (
    DataFrame,
    MType,
    SessionKeys,
    build_data_frame,
    decode_phy_payload,
    derive_mc_session_keys,
    reconstruct_fcnt,
)
from otaharness.runtime.clock import VirtualClock
from otaharness.runtime.radio import FixedLoss, RadioMedium
from otaharness.servers.fuota import CampaignConfig, CampaignDevice, FuotaServer
from otaharness.servers.fuota.radio_link import RadioGatewayPort
from otaharness.servers.fuota.report import campaign_report
from otaharness.servers.lorawan import NetworkServer

GATEWAY_SPACING_M = 30_000.0
DEVICE_RADIUS_M = 2_500.0
OLD, NEW, HW = 0x0100, 0x0200, 0x42
CAMPAIGN_TIMEOUT_S = 7 * 86400.0


def peak_rss_mib() -> float:
    """This process's peak resident set (Linux reports ru_maxrss in KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def seeded(seed: int, stream: int) -> random.Random:
    """The generator of one ``stream`` of the run: seed 0 keeps the streams' historic seeds (so
    figures stay comparable with earlier runs); another seed gives every stream a new one."""
    return random.Random(stream if seed == 0 else f"{seed}:{stream}")


def fragment_stream(config: CampaignConfig, image: bytes, mc_key: bytes, mc_addr: int) -> list[bytes]:
    """The campaign's DataFragment frames as the gateways send them (first round: FCnt 0, 1, ...)."""
    frag_size = config.fragment_size()
    block = encode_block(image, frag_size, config.coded_fragments(-(-len(image) // frag_size)))
    keys = derive_mc_session_keys(mc_key, mc_addr)
    return [build_data_frame(MType.UNCONFIRMED_DATA_DOWN, dev_addr=mc_addr, fcnt=fcnt, keys=keys,
                             fport=ts004.FPORT, payload=ts004.FRAGMENTATION.encode([fragment])).to_bytes()
            for fcnt, fragment in enumerate(ts004.data_fragments(block, config.frag_index))]


def codec_receptions(devices: int, frames: list[bytes], mc_key: bytes, mc_addr: int, image: bytes,
                     frag_size: int, loss: float, rng: random.Random) -> int:
    """The baseline: each device receives the stream minus its losses and rebuilds the image;
    returns how many did."""
    keys = derive_mc_session_keys(mc_key, mc_addr)
    nb_frag = -(-len(image) // frag_size)
    rebuilt = 0
    for _ in range(devices):
        decoder = FragmentDecoder(nb_frag, frag_size, nb_frag * frag_size - len(image))
        last_fcnt: int | None = None
        for phy_payload in frames:
            if rng.random() < loss:
                continue
            frame = decode_phy_payload(phy_payload)
            assert isinstance(frame, DataFrame) and frame.dev_addr == mc_addr
            fcnt = reconstruct_fcnt(frame.fcnt16, 0 if last_fcnt is None else last_fcnt + 1)
            plaintext = shared_multicast_payload(frame, phy_payload, keys, fcnt)  # None: the MIC failed
            if plaintext is None:
                continue
            last_fcnt = fcnt
            for command in shared_downlink_commands(ts004.FRAGMENTATION, plaintext):
                assert isinstance(command, ts004.DataFragment)
                decoder.push(command.n, command.payload)  # pushed after completion too, as the agent does
        rebuilt += decoder.state is DecoderState.COMPLETE and decoder.block() == image
    return rebuilt


async def campaign(clock: VirtualClock, workdir: Path, *, devices: int, gateways: int, image_kib: int,
                   loss: float, data_rate: int, redundancy: float, seed: int) -> Figures:
    rng = seeded(seed, 7)
    medium = RadioMedium(rng=seeded(seed, 1))
    port = RadioGatewayPort(medium)
    side = math.ceil(math.sqrt(gateways))
    sites = [(0xA000 + g, ((g % side) * GATEWAY_SPACING_M, (g // side) * GATEWAY_SPACING_M))
             for g in range(gateways)]
    for gateway_id, position in sites:
        port.add_gateway(gateway_id, position)
    network = NetworkServer(workdir / "ns.sqlite", clock, seeded(seed, 2), port)
    port.server = network
    fuota = FuotaServer(network, workdir / "fuota.sqlite", clock, seeded(seed, 3))
    signing_key = Ed25519PrivateKey.generate()
    agents: list[FuotaAgent] = []
    try:
        with Stopwatch() as setting_up:
            for index in range(devices):
                _, (gx, gy) = sites[index % len(sites)]
                angle, radius = rng.uniform(0, 2 * math.pi), DEVICE_RADIUS_M * math.sqrt(rng.random())
                dev_eui, dev_addr = 0x70B3D57ED0000000 + index, 0x26000000 + index
                keys = SessionKeys(nwk_s_key=rng.randbytes(16), app_s_key=rng.randbytes(16))
                network.add_abp_device(dev_eui, dev_addr, keys.nwk_s_key, keys.app_s_key)
                name = f"dev{index}"
                device = LoRaWANDevice(name, DeviceConfig(dev_eui=dev_eui, abp=AbpActivation(dev_addr, keys),
                                                          gen_app_key=rng.randbytes(16)),
                                       medium, (gx + radius * math.cos(angle), gy + radius * math.sin(angle)),
                                       clock=clock, rng=seeded(seed, index))
                medium.set_loss(name, FixedLoss(loss) if loss else None)
                agent = FuotaAgent(device, signing_key.public_key(), OLD, HW,
                                   flash_capacity=(image_kib + 16) * 1024, rng=seeded(seed, index),
                                   poll_interval_s=300.0)
                agent.start()
                agents.append(agent)
        image = build_image(seeded(seed, 5).randbytes(image_kib * 1024), fw_version=NEW, hw_version=HW,
                            signing_key=signing_key)
        config = CampaignConfig(
            name="bench", firmware_version=NEW, redundancy=redundancy, data_rate=data_rate,
            devices=[CampaignDevice(a.device.config.dev_eui, (a.device.config.gen_app_key or b"").hex())
                     for a in agents],
            unicast_timeout_s=900.0, unicast_attempts=4, verification_timeout_s=600.0, max_rounds=1)
        campaign_id = fuota.create_campaign(config, image)
        with Stopwatch(clock) as running:
            fuota.start_campaign(campaign_id)
            run = fuota.runs[campaign_id]
            assert run.task is not None
            await run_until_done(clock, run.task, timeout=CAMPAIGN_TIMEOUT_S)
        status = fuota.status(campaign_id)
        upgraded = sum(agent.firmware_version == NEW for agent in agents)
        if upgraded < status["devices"]["passed"]:
            raise AssertionError(f"{status['devices']['passed']} devices passed but {upgraded} run the new version")
        stages: dict[str, float] = {}
        for stage in campaign_report(fuota.store, campaign_id)["stages"]:
            stages[stage["name"]] = stages.get(stage["name"], 0.0) + stage["end"] - stage["start"]
        mc_key, mc_addr = bytes.fromhex(run.progress["mc_key"]), int(run.progress["mc_addr"])
    finally:
        for agent in agents:
            await agent.stop()
        await fuota.close()
        await network.close()

    frames = fragment_stream(config, image, mc_key, mc_addr)
    forget_shared_multicast_work()  # the baseline starts cold: nothing left from the campaign
    forget_shared_parses()
    clear_caches()
    with Stopwatch() as baseline:
        rebuilt = codec_receptions(devices, frames, mc_key, mc_addr, image, config.fragment_size(), loss,
                                   seeded(seed, 11))
    if rebuilt != devices:
        raise AssertionError(f"the codec baseline rebuilt the image on {rebuilt} of {devices} devices")
    return {
        "devices": devices, "gateways": gateways, "data_rate": data_rate, "image_kib": image_kib, "loss": loss,
        "redundancy": redundancy, "seed": seed, "fragments": status["fragments_total"], "passed": status["devices"]["passed"],
        "failed": status["devices"]["failed"], "upgraded": upgraded,
        "setup_s": round(setting_up.seconds, 1),
        "simulated_s": round(running.virtual_seconds, 1), "wall_s": round(running.seconds, 2),
        "simulated_per_wall": round(running.virtual_seconds / running.seconds, 1),
        "peak_rss_mib": round(peak_rss_mib(), 1),
        "baseline_s": round(baseline.seconds, 2),
        "baseline_receptions_per_s": round(devices * len(frames) * (1 - loss) / baseline.seconds),
        "campaign_per_codec": round(running.seconds / baseline.seconds, 2),
        # the same in CPU seconds of this process: what a busy shared machine does not distort
        "cpu_s": round(running.cpu_seconds, 2), "baseline_cpu_s": round(baseline.cpu_seconds, 2),
        "simulated_per_cpu": round(running.virtual_seconds / running.cpu_seconds, 1),
        "baseline_receptions_per_cpu_s": round(devices * len(frames) * (1 - loss) / baseline.cpu_seconds),
        "campaign_per_codec_cpu": round(running.cpu_seconds / baseline.cpu_seconds, 2),
        "failure_reasons": dict(collections.Counter(d["reason"] for d in status["device_states"] if d["reason"])),
        "stage_seconds": {name: round(seconds, 1) for name, seconds in stages.items()},
        "medium": dict(medium.counters)}


def measure(devices: int, gateways: int, image_kib: int, loss: float, data_rate: int, redundancy: float,
            seed: int) -> Figures:
    logging.basicConfig(level=logging.ERROR)
    if Path("/dev/shm").is_dir():  # this fresh process's temporary directories (SQLite) in memory
        tempfile.tempdir = "/dev/shm"
    # one run_until spans the whole campaign: a long real-time limit
    return on_virtual_clock(partial(campaign, devices=devices, gateways=gateways, image_kib=image_kib, loss=loss,
                                    data_rate=data_rate, redundancy=redundancy, seed=seed), real_time_limit=6 * 3600.0)


def describe(result: Figures) -> str:
    return (f"{result['devices']} devices, {result['gateways']} gateways, {result['image_kib']} KiB at "
            f"DR{result['data_rate']}, {result['loss']:.0%} loss: {result['fragments']} fragments, "
            f"{result['passed']} passed, {result['upgraded']} upgraded  campaign {result['simulated_s']:.0f} "
            f"simulated s in {result['wall_s']:.1f} wall s ({result['simulated_per_wall']:.0f} x), "
            f"set-up {result['setup_s']:.1f} s, peak RSS {result['peak_rss_mib']:.0f} MiB  codec baseline "
            f"{result['baseline_s']:.1f} s ({result['baseline_receptions_per_s']} receptions/s), "
            f"campaign = {result['campaign_per_codec']:.1f} x codec; in CPU s: campaign {result['cpu_s']:.1f} "
            f"({result['simulated_per_cpu']:.0f} x), codec {result['baseline_cpu_s']:.1f} "
            f"({result['baseline_receptions_per_cpu_s']} receptions/s), campaign = "
            f"{result['campaign_per_codec_cpu']:.1f} x codec")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, default=1000)
    parser.add_argument("--gateways", type=int, default=10)
    parser.add_argument("--image-kib", type=int, default=256)
    parser.add_argument("--loss", type=float, default=0.1)
    parser.add_argument("--data-rate", type=int, default=5)
    parser.add_argument("--redundancy", type=float, default=0.3)
    parser.add_argument("--seed", type=int, default=0, help="seeds every random generator of the run "
                        "(0: the run this benchmark has always made)")
    arguments = parser.parse_args()
    run_sizes("bench_fuota_campaign", measure,
              [(arguments.devices, arguments.gateways, arguments.image_kib, arguments.loss, arguments.data_rate,
                arguments.redundancy, arguments.seed)], describe)


if __name__ == "__main__":
    main()

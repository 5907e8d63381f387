"""1,000 class C devices receiving a multicast stream, end to end on the virtual clock.

Run from the repository root:
python -m benchmarks.bench_lorawan_multicast [--devices N] [--frames F] [--payload P] [--dr D]

The network server queues F multicast frames for one group; each goes as a class C ``dnmsg``
over the LNS websocket to the Basics Station emulator, which sends it on the radio medium and
confirms it with ``dntxed`` (which paces the next frame, together with the gateway's duty cycle
on the group's sub-band). Every device (class C, in a multicast session on the group's
frequency/DR) decodes each frame and checks MIC and counter. Reported: multicast frames per wall
second, device receptions per wall second, and simulated seconds per wall second.

Baseline, in the same process after the run (codec baseline): the same F frames, rebuilt byte
for byte with the codec from the FCnts the network server used, decoded by N devices without
the network, radio or clock -- per device and frame what a device does on reception (PHYPayload
decode, FCnt reconstruction, MIC check, FRMPayload decryption). The ratio "receptions on the
network / codec receptions" (wall_s / baseline_s) is the cost of the whole path (NS, LNS,
station, medium, devices) in units of the receiving devices' own frame decoding.
"""

from __future__ import annotations

import argparse
import asyncio
import random
from functools import partial
from pathlib import Path

from benchmarks.measure import Figures, Stopwatch, on_virtual_clock, run_sizes, run_until_done
from otaharness.emulators.lorawan_device import AbpActivation, DeviceClass, DeviceConfig
from otaharness.emulators.lorawan_field import LoRaWANField
from otaharness.protocols.lorawan import (EU868, DataFrame, MType, SessionKeys, build_data_frame,
                                          decode_phy_payload, derive_mc_session_keys, reconstruct_fcnt)
from otaharness.runtime.clock import VirtualClock
from otaharness.servers.basics_station.registry import StationRecord
from otaharness.servers.basics_station.server import BasicsStationServer
from otaharness.servers.lorawan import NetworkServer

GATEWAY_EUI = 0x0016C001FF10BE01
MC_ADDR = 0x01BE0001
FPORT = 201


def frame_payload(index: int, payload_size: int) -> bytes:
    return index.to_bytes(4, "big") * (payload_size // 4)


def codec_receptions(devices: int, phy_payloads: list[bytes], keys: SessionKeys) -> int:
    """The baseline: each device decodes each frame as on reception, without the network."""
    received = 0
    for _ in range(devices):
        last_fcnt: int | None = None
        for phy_payload in phy_payloads:
            frame = decode_phy_payload(phy_payload)
            assert isinstance(frame, DataFrame) and frame.dev_addr == MC_ADDR
            fcnt = reconstruct_fcnt(frame.fcnt16, 0 if last_fcnt is None else last_fcnt + 1)
            if frame.mic_is_valid(keys.nwk_s_key, fcnt) and frame.decrypt_payload(keys, fcnt):
                last_fcnt = fcnt
                received += 1
    return received


async def scenario(clock: VirtualClock, directory: Path, *, devices: int, frames: int, payload_size: int,
                   data_rate: int) -> Figures:
    server = BasicsStationServer(directory / "server", clock)
    await server.start()
    network_server = NetworkServer(directory / "ns.sqlite", clock, random.Random(1), server.lns)
    server.lns.attach_network_server(network_server)
    urls = server.endpoints()
    server.registry.put(StationRecord(GATEWAY_EUI, tc_uri=urls["lns"]))
    field = LoRaWANField(directory / "field", clock, random.Random(2), tc_uri=urls["lns"])
    mc_keys = derive_mc_session_keys(bytes(range(16)), MC_ADDR)
    received = 0

    def count(fport: int, payload: bytes, multicast: bool) -> None:
        nonlocal received
        received += multicast

    try:
        await field.add_station("gw", GATEWAY_EUI, (0.0, 0.0))
        while not field.connected():
            await asyncio.sleep(0.05)
        rng = random.Random(3)
        for index in range(devices):
            unicast = SessionKeys(nwk_s_key=rng.randbytes(16), app_s_key=rng.randbytes(16))
            config = DeviceConfig(dev_eui=0x0100 + index, abp=AbpActivation(0x26000000 + index, unicast),
                                  device_class=DeviceClass.C)
            position = (rng.uniform(-3000, 3000), rng.uniform(-3000, 3000))
            device = field.add_device(f"d{index}", config, position, random.Random(index))
            device.on_downlink = count
            device.add_multicast_group(0, MC_ADDR, mc_keys)
            device.start_multicast_session(0, start_gps=device.clock.gps(), timeout_exponent=20,
                                           frequency_hz=EU868.rx2_frequency_hz, data_rate=data_rate)
        network_server.create_multicast_group(MC_ADDR, mc_keys.nwk_s_key, mc_keys.app_s_key,
                                              EU868.rx2_frequency_hz, data_rate, name="stream")
        with Stopwatch(clock) as network:
            queued = [network_server.enqueue_multicast("stream", FPORT, frame_payload(index, payload_size),
                                                       [GATEWAY_EUI]) for index in range(frames)]
            await asyncio.gather(*(frame.transmitted for frame in queued))
            await asyncio.sleep(5)  # the last frame's airtime

        fcnts = [frame.fcnt for frame in queued]  # set by the network server as it sent each
        assert None not in fcnts, "a frame was not sent"
        phy_payloads = [build_data_frame(MType.UNCONFIRMED_DATA_DOWN, dev_addr=MC_ADDR, fcnt=int(fcnt or 0),
                                         keys=mc_keys, fport=FPORT, payload=frame_payload(index, payload_size)
                                         ).to_bytes() for index, fcnt in enumerate(fcnts)]
        with Stopwatch() as baseline:
            codec_received = codec_receptions(devices, phy_payloads, mc_keys)
        if codec_received != devices * frames:
            raise AssertionError(f"the codec baseline decoded {codec_received} of {devices * frames}")
        wall = network.seconds
        return {"devices": devices, "frames": frames, "payload_octets": payload_size, "data_rate": data_rate,
                "receptions": received, "expected_receptions": devices * frames,
                "wall_s": round(wall, 3), "simulated_s": round(network.virtual_seconds, 1),
                "frames_per_wall_s": round(frames / wall, 2), "receptions_per_wall_s": round(received / wall, 1),
                "simulated_s_per_wall_s": round(network.virtual_seconds / wall, 1),
                "baseline_s": round(baseline.seconds, 3),
                "baseline_receptions_per_s": round(codec_received / baseline.seconds, 1),
                "network_per_codec": round(wall / baseline.seconds, 2),
                "radio": dict(field.medium.counters)}
    finally:
        await field.close()
        await network_server.close()
        await server.stop()


async def scenario_on_clock(clock: VirtualClock, directory: Path, **sizes: int) -> Figures:
    return await run_until_done(clock, scenario(clock, directory, **sizes), timeout=30 * 86400)


def measure(devices: int, frames: int, payload_size: int, data_rate: int) -> Figures:
    return on_virtual_clock(partial(scenario_on_clock, devices=devices, frames=frames,
                                    payload_size=payload_size, data_rate=data_rate), real_time_limit=60.0)


def describe(result: Figures) -> str:
    return (f"{result['devices']} devices, {result['frames']} frames of {result['payload_octets']} octets at "
            f"DR{result['data_rate']}: {result['wall_s']:.1f} s, {result['frames_per_wall_s']:.1f} frames/s, "
            f"{result['receptions_per_wall_s']:.0f} receptions/s ({result['receptions']} of "
            f"{result['expected_receptions']}), {result['simulated_s_per_wall_s']:.1f} simulated s per wall s  "
            f"codec baseline {result['baseline_receptions_per_s']:.0f} receptions/s, "
            f"network = {result['network_per_codec']:.1f} x codec")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, default=1000)
    parser.add_argument("--frames", type=int, default=100)
    parser.add_argument("--payload", type=int, default=48, help="octets per frame (a TS004 fragment at DR0-2)")
    parser.add_argument("--dr", type=int, default=5, help="the group's data rate on 869.525 MHz")
    arguments = parser.parse_args()
    run_sizes("bench_lorawan_multicast", measure,
              [(arguments.devices, arguments.frames, arguments.payload, arguments.dr)], describe)


if __name__ == "__main__":
    main()

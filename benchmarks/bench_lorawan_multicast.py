"""1,000 class C devices receiving a multicast stream, end to end on the virtual clock.

Run from the repository root: python -m benchmarks.bench_lorawan_multicast [--devices N] [--frames F]

The network server queues F multicast frames for one group; each goes as a class C ``dnmsg``
over the LNS websocket to the Basics Station emulator, which sends it on the radio medium and
confirms it with ``dntxed`` (which paces the next frame, together with the gateway's duty cycle
on the group's sub-band). Every device (class C, in a multicast session on the group's
frequency/DR) decodes each frame and checks MIC and counter. Reported: multicast frames per wall
second, device receptions per wall second, and simulated seconds per wall second.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import tempfile
import time
from pathlib import Path

from emulators.lorawan_device import AbpActivation, DeviceClass, DeviceConfig
from emulators.lorawan_field import LoRaWANField
from otaharness.protocols.lorawan import EU868, SessionKeys, derive_mc_session_keys
from otaharness.runtime.clock import VirtualClock, VirtualEventLoop
from otaharness.servers.basics_station.registry import StationRecord
from otaharness.servers.basics_station.server import BasicsStationServer
from otaharness.servers.lorawan import NetworkServer

GATEWAY_EUI = 0x0016C001FF10BE01
MC_ADDR = 0x01BE0001


async def scenario(directory: Path, clock: VirtualClock, devices: int, frames: int, payload_size: int,
                   data_rate: int) -> dict[str, float]:
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
        simulated_start, wall_start = clock.monotonic(), time.perf_counter()
        queued = [network_server.enqueue_multicast("stream", 201, index.to_bytes(4, "big") * (payload_size // 4),
                                                   [GATEWAY_EUI]) for index in range(frames)]
        await asyncio.gather(*(frame.transmitted for frame in queued))
        await asyncio.sleep(5)  # the last frame's airtime
        wall = time.perf_counter() - wall_start
        simulated = clock.monotonic() - simulated_start
        return {"devices": devices, "frames": frames, "payload_octets": payload_size, "data_rate": data_rate,
                "receptions": received, "expected_receptions": devices * frames,
                "wall_s": round(wall, 3), "simulated_s": round(simulated, 1),
                "frames_per_wall_s": round(frames / wall, 2), "receptions_per_wall_s": round(received / wall, 1),
                "simulated_s_per_wall_s": round(simulated / wall, 1),
                "radio": dict(field.medium.counters)}
    finally:
        await field.close()
        await network_server.close()
        await server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, default=1000)
    parser.add_argument("--frames", type=int, default=100)
    parser.add_argument("--payload", type=int, default=48, help="octets per frame (a TS004 fragment at DR0-2)")
    parser.add_argument("--dr", type=int, default=5, help="the group's data rate on 869.525 MHz")
    arguments = parser.parse_args()
    clock = VirtualClock()
    loop = VirtualEventLoop(clock)
    asyncio.set_event_loop(loop)

    async def drive() -> dict[str, float]:
        with tempfile.TemporaryDirectory() as directory:
            task = asyncio.ensure_future(scenario(Path(directory), clock, arguments.devices, arguments.frames,
                                                  arguments.payload, arguments.dr))
            await clock.run_until(task.done, timeout=30 * 86400)
            return task.result()

    try:
        result = loop.run_until_complete(drive())
    finally:
        loop.close()
        asyncio.set_event_loop(None)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()

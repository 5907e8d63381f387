"""Fleet throughput of the OLT firmware flow: N devices behind M gateways each take one installation.

Run from the repository root:
python -m benchmarks.bench_olt [--fleets 100/5 1000/20] [--image-size 16384] [--chunk-size 1024]

Per fleet, in a fresh process on the virtual clock: a mosquitto broker, the OLT back end (aiohttp
REST API, SQLite with synchronous=FULL, MQTT instructions), one tenant with the seed's light
switch type (all three slots), M gateway emulators (each its own REST client with device-scoped
credentials and its own MQTT client) with N/M field devices each. One firmware with one blob is
hosted; then, timed, the tenant POSTs one installation per device (up to 50 requests at a time)
and every gateway downloads the blob once per installation, verifies its hashes, pushes it into
the device's firmware slot by the field procedure (Begin, chunks, Commit) and PATCHes
downloading → downloaded → installing (with progress) → succeeded. Timed in real seconds: the N
POSTs, and from the first POST to the last `succeeded`; the rate is N over the latter. Every
installation is checked `succeeded` in the database and every device's slot to hold the image
before a result is printed.

Baseline, in the same process against the same REST API with the same tenant token and the same
50 requests at a time, just before the installations: one bare authenticated
`GET /v1/devices/{id}` per device. The ratio "installation cycle / bare GETs" (total_s /
baseline_s) is the cost of one firmware installation in units of one plain API request.
"""

from __future__ import annotations

import argparse
import asyncio
import json
from functools import partial
from pathlib import Path
from typing import Any

import aiohttp

from benchmarks.measure import Figures, Stopwatch, gather_limited, on_virtual_clock, run_sizes
from otaharness.emulators.olt_gateway import FieldDevice, OltApiClient, OltGateway
from otaharness.fixtures import fixture_path
from otaharness.runtime.broker import MosquittoBroker
from otaharness.runtime.clock import VirtualClock
from otaharness.runtime.mqtt import MqttClient
from otaharness.servers.olt.backend import Principal
from otaharness.servers.olt.http_api import TOKEN_PATH
from otaharness.servers.olt.server import OltServer

REQUESTS_AT_A_TIME = 50


def _type_document(name: str) -> dict[str, Any]:
    return json.loads(fixture_path("olt", name).read_text())


async def _tenant_token(session: aiohttp.ClientSession, url: str, client_id: str, secret: str) -> str:
    form = {"grant_type": "client_credentials", "client_id": client_id, "client_secret": secret}
    async with session.post(url + TOKEN_PATH, data=form) as response:
        response.raise_for_status()
        return (await response.json())["access_token"]


async def fleet_run(clock: VirtualClock, workdir: Path, *, devices: int, gateways: int,
                    image_size: int, chunk_size: int) -> Figures:
    broker = MosquittoBroker()
    await broker.start()
    clock.add_quiet_probe(broker.flush)
    backend_mqtt = MqttClient("olt-backend", broker.host, broker.port)
    await backend_mqtt.connect()
    server = OltServer(workdir / "olt.sqlite3", clock, mqtt=backend_mqtt)
    await server.start()
    emulators: list[OltGateway] = []
    session = aiohttp.ClientSession()
    try:
        # The fleet is registered through the backend directly: setup is not what is measured.
        backend = server.backend
        tenant = backend.create_tenant("bench")
        who = Principal(tenant.tenant_id)
        switch = backend.create_device_type(who, _type_document("osram_switch_all_slots_type.json"))
        gateway_type = backend.create_device_type(who, _type_document("gateway_type.json"))
        field_devices: list[FieldDevice] = []
        for g in range(gateways):
            gateway = backend.create_device(who, {"info": {"name": f"gw{g}",
                                                           "deviceTypeId": gateway_type["id"]}})
            credentials = backend.create_device_credentials(who, gateway["id"])
            behind = []
            for d in range(g, devices, gateways):
                device = backend.create_device(who, {"info": {
                    "name": f"lamp{d}", "deviceTypeId": switch["id"], "connectedBy": gateway["id"]}})
                behind.append(FieldDevice(device["id"]))
            field_devices += behind
            emulators.append(OltGateway(
                gateway["id"],
                OltApiClient(server.url, credentials["clientId"], credentials["clientSecret"]),
                MqttClient(f"olt-gateway-{g}", broker.host, broker.port), clock,
                devices=behind, chunk_size=chunk_size))
        await asyncio.gather(*(emulator.start() for emulator in emulators))

        headers = {"Authorization": "Bearer " + await _tenant_token(
            session, server.url, tenant.client_id, tenant.client_secret)}
        image = bytes(index * 7 % 251 for index in range(image_size))
        async with session.post(server.url + "/v1/firmwares", headers=headers,
                                json={"name": "lamp app", "version": "2.0.0", "kind": "firmware"}) as response:
            firmware_id = (await response.json())["data"]["id"]
        async with session.put(server.url + f"/v1/firmwares/{firmware_id}/blob", headers=headers,
                               data=image) as response:
            response.raise_for_status()

        async def bare_get(device: FieldDevice) -> None:
            async with session.get(server.url + f"/v1/devices/{device.device_id}",
                                   headers=headers) as response:
                assert response.status == 200, await response.text()
                await response.read()

        async def install(device: FieldDevice) -> None:
            async with session.post(
                    server.url + f"/v1/devices/{device.device_id}/firmware-installations",
                    headers=headers, json={"firmwareId": firmware_id, "slot": "firmware"}) as response:
                assert response.status == 201, await response.text()

        def all_finished() -> bool:
            return sum(len(emulator.results) for emulator in emulators) >= devices

        with Stopwatch() as baseline:
            await gather_limited(REQUESTS_AT_A_TIME, (bare_get(device) for device in field_devices))

        with Stopwatch(clock) as total:
            with Stopwatch() as posts:
                await gather_limited(REQUESTS_AT_A_TIME, (install(device) for device in field_devices))
            assert await clock.run_until(all_finished, timeout=3600), "not every installation finished"

        succeeded = server.store.db.execute(
            "SELECT COUNT(*) FROM installations WHERE status = 'succeeded'").fetchone()[0]
        written = sum(device.slots.get("firmware") is not None
                      and device.slots["firmware"].data == image for device in field_devices)
        if succeeded != devices or written != devices:
            raise AssertionError(f"{succeeded} installations succeeded, {written} slots written, "
                                 f"of {devices}")
        return {"devices": devices, "gateways": gateways, "posts_s": posts.seconds,
                "total_s": total.seconds, "per_s": devices / total.seconds,
                "virtual_s": total.virtual_seconds, "baseline_s": baseline.seconds,
                "baseline_gets_per_s": devices / baseline.seconds,
                "installation_per_get": total.seconds / baseline.seconds}
    finally:
        await session.close()
        for emulator in emulators:
            await emulator.stop()
        await server.stop()
        await backend_mqtt.disconnect()
        clock.remove_quiet_probe(broker.flush)
        await broker.stop()


def measure(devices: int, gateways: int, image_size: int, chunk_size: int) -> Figures:
    return on_virtual_clock(partial(fleet_run, devices=devices, gateways=gateways,
                                    image_size=image_size, chunk_size=chunk_size))


def _fleet(text: str) -> tuple[int, int]:
    devices, _, gateways = text.partition("/")
    if not devices.isdigit() or not gateways.isdigit() or int(gateways) < 1:
        raise argparse.ArgumentTypeError(f"a fleet is DEVICES/GATEWAYS, e.g. 100/5, not {text!r}")
    return int(devices), int(gateways)


def describe(result: Figures) -> str:
    return (f"N={result['devices']:>5} devices / M={result['gateways']:>3} gateways  "
            f"POSTs {result['posts_s']:6.2f} s  all succeeded after {result['total_s']:6.2f} s  "
            f"{result['per_s']:7.1f} installations/s  ({result['virtual_s']:.1f} virtual s)  "
            f"baseline {result['baseline_gets_per_s']:.0f} bare GETs/s, "
            f"installation = {result['installation_per_get']:.1f} GETs")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fleets", type=_fleet, nargs="+", default=[(100, 5), (1000, 20)],
                        help="DEVICES/GATEWAYS, e.g. 100/5 1000/20")
    parser.add_argument("--image-size", type=int, default=16384, help="bytes of the firmware")
    parser.add_argument("--chunk-size", type=int, default=1024, help="bytes per field chunk")
    arguments = parser.parse_args()
    run_sizes("bench_olt", measure, ((devices, gateways, arguments.image_size, arguments.chunk_size)
                                     for devices, gateways in arguments.fleets), describe)


if __name__ == "__main__":
    main()

"""CLI: ``otaharness emulate lorawan --tc-uri ws://HOST:PORT --home DIR`` on real time.

Basics Stations (with radios) and OTAA end devices on one emulated radio medium, against any LNS
that speaks the Basics Station protocol — ours (``otaharness serve lorawan``) or a user's. The
stations stand on a line ``--spacing`` metres apart, the devices around them; each device joins,
then sends an uplink every ``--interval`` seconds. Downlinks are logged. At the end (``--duration``
or Ctrl-C) a JSON summary goes to stdout.

Against our server, ``--register-cups URL`` registers the stations (CUPS admin API) and
``--register-app URL`` the devices (the network server's application API, docs/lorawan.md, with
``--app-token`` — ``serve``'s ``tokens.lorawan-app`` — and ``--ca`` to trust its HTTPS);
against another LNS, register them there (every device uses ``--app-key`` and ``--join-eui``).

The stations reach CUPS and the LNS through the fleet's local proxy, each from its own loopback
address, so ``--fault`` (on the stations: ``--fault-devices`` counts them 1..S), ``--capture``
(their links as pcapng; the radio as LoRaTap beside it, ``<FILE>-radio.pcap`` with its LoRaWAN
key log), ``--json`` and ``-v`` work as for every kind (emulators/fleet.py). The summary (at the
end, ``--duration`` or Ctrl-C) counts joins, uplinks, downlinks and the radio's counters.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import random
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import aiohttp
from otaharness.emulators.basics_station.cli import StationWatch
from otaharness.emulators.fleet import (
    HTTP,
    WEBSOCKET,
    Fleet,
    FleetError,
    add_fleet_arguments,
    device_count,
    url_argument,
)
from otaharness.emulators.fleet_report import FleetReport
from otaharness.emulators.lorawan_device import DeviceClass, DeviceConfig, LoRaWANDevice
from otaharness.emulators.lorawan_field import LoRaWANField

from otaharness.protocols.basics_station import format_eui, parse_eui
from otaharness.runtime.clock import RealClock
from otaharness.runtime.lora_capture import LoraCapture
from otaharness.runtime.radio import FixedLoss

log = logging.getLogger(__name__)
T = TypeVar("T")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--tc-uri", required=True, type=url_argument(WEBSOCKET),
                        help="the LNS (discovery) URI, e.g. ws://127.0.0.1:6038")
    parser.add_argument("--cups-uri", type=url_argument(HTTP), help="a CUPS URI for the stations (optional)")
    parser.add_argument("--home", type=Path, required=True, help="directory for the stations' homes")
    parser.add_argument("--stations", type=device_count, default=1, help="number of stations (default 1)")
    parser.add_argument("--station-eui", default="0016C001FF100001", help="EUI of the first station")
    parser.add_argument("--spacing", type=float, default=2000.0, help="metres between stations")
    parser.add_argument("--devices", type=device_count, default=1, help="number of end devices (default 1)")
    parser.add_argument("--class", dest="device_class", choices=("A", "C"), default="A",
                        help="LoRaWAN device class: A listens only after its uplinks, C all the "
                             "time (default A)")
    parser.add_argument("--dev-eui", default="0004A30B00100001", help="DevEUI of the first device")
    parser.add_argument("--join-eui", default="70B3D57ED0000001", help="JoinEUI (AppEUI) of every device")
    parser.add_argument("--app-key", default="2b7e151628aed2a6abf7158809cf4f3c", help="AppKey of every device (hex)")
    parser.add_argument("--radius", type=float, default=1000.0, help="devices stand within this many metres")
    parser.add_argument("--interval", type=float, default=60.0, help="seconds between a device's uplinks")
    parser.add_argument("--fport", type=int, default=2, help="FPort of the devices' uplinks (default 2)")
    parser.add_argument("--loss", type=float, default=0.0, help="percent of frames lost on every device link")
    parser.add_argument("--duration", type=float, default=0.0, help="seconds to run (0: until interrupted)")
    parser.add_argument("--seed", type=int, default=1, help="seed of the random choices: where devices stand, when "
                        "they send, their channels and DevNonces, the radio's losses (default 1)")
    parser.add_argument("--register-cups", metavar="URL", type=url_argument(HTTP),
                        help="register the stations with our CUPS admin API")
    parser.add_argument("--register-app", metavar="URL", type=url_argument(HTTP),
                        help="register the devices with our application API")
    parser.add_argument("--app-token", help="bearer token of the application API (serve's tokens.lorawan-app)")
    parser.add_argument("--ca", type=Path, help="CA file our HTTPS APIs' certificates chain to (serve's ca; "
                                                "default: the system's trust store)")
    add_fleet_arguments(parser)


async def _register(args: argparse.Namespace, station_euis: list[int], configs: list[DeviceConfig]) -> None:
    from otaharness.api_token_option import authorization_headers
    from otaharness.runtime.pki import client_context

    trust = client_context(args.ca) if args.ca else True
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=trust)) as http:
        if args.register_cups:
            for eui in station_euis:
                body = {"tcUri": args.tc_uri, **({"cupsUri": args.cups_uri} if args.cups_uri else {})}
                async with http.put(f"{args.register_cups}/admin/stations/{format_eui(eui, '')}", json=body) as reply:
                    reply.raise_for_status()
        if args.register_app:
            for config in configs:
                body = {"joinEui": args.join_eui, "appKey": args.app_key, "class": args.device_class}
                async with http.put(f"{args.register_app}/api/devices/{config.dev_eui:016X}", json=body,
                                    headers=authorization_headers(args.app_token)) as reply:
                    if reply.status != 409:  # already registered by an earlier run
                        reply.raise_for_status()


async def _device_life(device: LoRaWANDevice, args: argparse.Namespace, rng: random.Random,
                       totals: dict[str, int], report: FleetReport) -> None:
    await asyncio.sleep(rng.uniform(0, min(args.interval, 30.0)))
    while not await device.join():
        totals["join_failures"] += 1
        report.event(device.name, "connection_failed", "no join accept", reason="join failed")
        await asyncio.sleep(rng.uniform(10, 30))
    totals["joined"] += 1
    report.event(device.name, "joined", f"DevEUI {device.config.dev_eui:016X}",
                 dev_eui=f"{device.config.dev_eui:016X}")
    counter = 0
    while True:
        await device.send(args.fport, counter.to_bytes(4, "big"))
        totals["uplinks"] += 1
        report.event(device.name, "uplink", f"FPort {args.fport}, counter {counter}",
                     fport=args.fport, counter=counter)
        counter += 1
        await asyncio.sleep(args.interval * rng.uniform(0.9, 1.1))


def _parsed(args: argparse.Namespace, option: str, parse: Callable[[str], T]) -> T:
    """The option's value parsed, or a FleetError naming the option (not the value: --app-key
    is a secret)."""
    try:
        return parse(getattr(args, option))
    except ValueError as error:
        raise FleetError(f"--{option.replace('_', '-')}: {error}") from None


async def run(args: argparse.Namespace) -> int:
    clock = RealClock()
    rng = random.Random(args.seed)
    try:  # before anything opens: an unusable input ends the run with one line
        first_station, first_device, join_eui = (_parsed(args, option, parse_eui)
                                                 for option in ("station_eui", "dev_eui", "join_eui"))
        app_key = _parsed(args, "app_key", bytes.fromhex)
        fleet = Fleet("lorawan", args, power_off_seconds=False)
    except FleetError as error:
        log.error("%s", error)
        return 2
    radio_capture = None
    if args.capture:
        args.capture.parent.mkdir(parents=True, exist_ok=True)
        radio_capture = LoraCapture(args.capture.with_name(f"{args.capture.stem}-radio.pcap"), clock)
    station_euis = [first_station + index for index in range(args.stations)]
    configs = [DeviceConfig(dev_eui=first_device + index, app_eui=join_eui, app_key=app_key,
                            device_class=DeviceClass(args.device_class))
               for index in range(args.devices)]
    totals = {"joined": 0, "join_failures": 0, "uplinks": 0, "downlinks": 0}
    tasks: list[asyncio.Task[None]] = []
    async with fleet:
        await _register(args, station_euis, configs)
        field = LoRaWANField(args.home, clock, random.Random(args.seed + 1), tc_uri=args.tc_uri,
                             cups_uri=args.cups_uri, capture=radio_capture,
                             dial=None if fleet.direct else fleet.dial,
                             address_of=None if fleet.direct else fleet.address_of)
        watches: list[StationWatch] = []
        try:
            for index, eui in enumerate(station_euis):
                name = f"gw{index + 1}"
                fleet.add(name, power_cut=lambda _off, name=name: field.stations[name].power_cut())
                fleet.report.event(name, "started", f"station {format_eui(eui, '')}")
                station = await field.add_station(name, eui, (index * args.spacing, 0.0))
                station.tls_keylog = fleet.keylog  # its TLS contexts are made when it connects
                watches.append(StationWatch(fleet.report, station))
            for index, config in enumerate(configs):
                near = rng.randrange(args.stations) * args.spacing
                position = (near + rng.uniform(-args.radius, args.radius), rng.uniform(-args.radius, args.radius))
                device = field.add_device(f"dev{index + 1}", config, position, random.Random(args.seed * 1000 + index))
                fleet.report.add(device.name)
                if args.loss:
                    field.medium.set_loss(device.name, FixedLoss(args.loss / 100))

                def downlink(fport: int, payload: bytes, multicast: bool, name: str = device.name) -> None:
                    totals["downlinks"] += 1
                    fleet.report.event(name, "downlink", f"FPort {fport}{' (multicast)' if multicast else ''}: "
                                       f"{len(payload)} bytes", fport=fport, multicast=multicast)

                device.on_downlink = downlink
                tasks.append(asyncio.create_task(_device_life(
                    device, args, random.Random(args.seed + index), totals, fleet.report)))

            fleet.poll(watches)
            await fleet.wait(args.duration)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await field.close(drain_s=0.0)
            for watch in watches:
                watch.poll()
            if radio_capture is not None:
                radio_capture.close()
            fleet.report.totals.update({**totals, "radio": dict(field.medium.counters)})
    return 0

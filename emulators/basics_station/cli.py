"""CLI: ``otaharness emulate basics-station --cups-uri URL --home DIR`` on real time.

Files already in the home directory are kept (a station's state survives restarts): credential
files written by ``otaharness cups station-credentials`` are used as they are. ``--cups-uri``,
``--tc-uri``, ``--package`` and ``--sig-key`` are written into it when given. With ``--count N``
the stations get consecutive EUIs and the homes ``DIR/<EUI>``.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import shutil
from pathlib import Path

from otaharness.emulators.basics_station.home import StationHome
from otaharness.emulators.basics_station.station import BasicsStation, StationSettings
from otaharness.protocols.basics_station import format_eui, parse_eui
from otaharness.runtime.clock import Clock, RealClock


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--cups-uri", help="written to cups.uri (e.g. http://127.0.0.1:5002)")
    parser.add_argument("--tc-uri", help="written to tc.uri (usually left to CUPS)")
    parser.add_argument("--home", type=Path, required=True, help="the station's home (sandbox) directory")
    parser.add_argument("--eui", default="::1", help="station EUI (ID6 or hex; default ::1)")
    parser.add_argument("--count", type=int, default=1, help="number of stations (homes DIR/<EUI>)")
    parser.add_argument("--package", help="written to version.txt")
    parser.add_argument("--sig-key", type=Path, action="append", default=[],
                        help="a sig-N.key to install (repeat for sig-1.key, ...)")
    parser.add_argument("--bind-address", help="local source address of the station's connections")
    parser.add_argument("--station", help='the CUPS request\'s "station" (default: "2.0.6(linux/std) <build date>", '
                                          "the form the real station sends)")
    parser.add_argument("--cups-ok-interval", type=float, default=86400.0, help="seconds between CUPS checks")
    parser.add_argument("--cups-resync-interval", type=float, default=60.0, help="seconds after a failed check")
    parser.add_argument("--update-time-limit", type=float, default=30.0, help="seconds an update may run")


def stations_from(args: argparse.Namespace, clock: Clock) -> list[BasicsStation]:
    first_eui = parse_eui(args.eui)
    stations = []
    for offset in range(args.count):
        eui = first_eui + offset
        path = args.home if args.count == 1 else args.home / format_eui(eui, "")
        home = StationHome(path).provision(cups_uri=args.cups_uri, tc_uri=args.tc_uri, version=args.package)
        for index, key in enumerate(args.sig_key):
            shutil.copyfile(key, path / f"sig-{index}.key")
        settings = dataclasses.replace(
            StationSettings(eui), cups_ok_interval=args.cups_ok_interval,
            cups_resync_interval=args.cups_resync_interval, update_time_limit=args.update_time_limit,
            station=args.station)
        stations.append(BasicsStation(settings, home, clock, bind_address=args.bind_address))
    return stations


async def run(args: argparse.Namespace) -> int:
    stations = stations_from(args, RealClock())
    for station in stations:
        await station.start()
    try:
        await asyncio.Event().wait()  # until interrupted
    finally:
        for station in stations:
            await station.stop()
    return 0

"""CLI: ``otaharness emulate basics-station --cups-uri URL --home DIR`` on real time.

Files already in the home directory are kept (a station's state survives restarts): credential
files written by ``otaharness cups station-credentials`` are used as they are. ``--cups-uri``,
``--tc-uri``, ``--package`` and ``--sig-key`` are written into it when given. With ``--count N``
the stations get consecutive EUIs and the homes ``DIR/<EUI>``.

The stations reach CUPS and the LNS through the fleet's local proxy, each from its own loopback
address, so ``--fault``, ``--capture``, ``--json`` and ``-v`` work as for every kind
(emulators/fleet.py). A shared ``--bind-address`` means ``--direct``.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import shutil
from pathlib import Path

from otaharness.emulators.basics_station.home import StationHome
from otaharness.emulators.basics_station.station import BasicsStation, StationSettings
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

from otaharness.protocols.basics_station import format_eui, parse_eui
from otaharness.runtime.clock import Clock, RealClock

log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--cups-uri", type=url_argument(HTTP),
                        help="written to cups.uri (e.g. http://127.0.0.1:5002)")
    parser.add_argument("--tc-uri", type=url_argument(WEBSOCKET),
                        help="written to tc.uri (usually left to CUPS)")
    parser.add_argument("--home", type=Path, required=True, help="the station's home (sandbox) directory")
    parser.add_argument("--eui", default="::1", help="station EUI (ID6 or hex; default ::1)")
    parser.add_argument("--count", type=device_count, default=1, help="number of stations (homes DIR/<EUI>)")
    parser.add_argument("--package", help="written to version.txt")
    parser.add_argument("--sig-key", type=Path, action="append", default=[],
                        help="a sig-N.key to install (repeat for sig-1.key, ...)")
    parser.add_argument("--bind-address", help="local source address of the stations' connections "
                        "(all of them: no local proxy then, as with --direct)")
    parser.add_argument("--station", help='the CUPS request\'s "station" (default: "2.0.6(linux/std) <build date>", '
                                          "the form the real station sends)")
    parser.add_argument("--cups-ok-interval", type=float, default=86400.0, help="seconds between CUPS checks")
    parser.add_argument("--cups-resync-interval", type=float, default=60.0, help="seconds after a failed check")
    parser.add_argument("--update-time-limit", type=float, default=30.0, help="seconds an update may run")
    add_fleet_arguments(parser)


def stations_from(args: argparse.Namespace, clock: Clock, fleet: Fleet | None = None) -> list[BasicsStation]:
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
        name = format_eui(eui, "")
        if fleet is None or fleet.direct:
            stations.append(BasicsStation(settings, home, clock, bind_address=args.bind_address,
                                          name=name))
        else:
            stations.append(BasicsStation(settings, home, clock, name=name,
                                          bind_address=fleet.address_of(name), dial=fleet.dial,
                                          tls_keylog=fleet.keylog))
    return stations


class StationWatch:
    """A station's events (``station.events``, read as they come) told as fleet events."""

    def __init__(self, report: FleetReport, station: BasicsStation) -> None:
        self.report = report
        self.station = station
        self.first_version = station.home.version() or ""
        self._seen = 0

    def poll(self) -> None:
        events = self.station.events
        for event in events[self._seen:]:
            self._tell(event.kind, event.detail)
        self._seen = len(events)

    def _tell(self, kind: str, detail: str) -> None:
        name, report = self.station.name, self.report
        version = self.station.home.version() or ""
        if kind == "boot":
            if report.devices[name].state == "powered off":  # else the fleet told it already
                report.event(name, "booted", f"boot {detail}, package {version}", version=version)
            elif detail != "#1":
                report.event(name, "note", f"boot {detail}, package {version}")
        elif kind == "cups-done":
            report.event(name, "connected", f"CUPS: {detail}")
            if "update" in detail.split(", "):
                report.event(name, "download_complete", "an update came in the CUPS answer")
        elif kind == "cups-failed":
            report.event(name, "connection_failed", f"CUPS: {detail}", reason=f"CUPS {detail}")
        elif kind in ("update-aborted", "update-failed"):
            report.event(name, "upgrade_failed", f"{kind}: {detail}", reason=f"{kind}: {detail}")
        elif kind == "tc-connected":
            report.event(name, "connected", f"LNS: {detail}")
        elif kind in ("tc-failed", "tc-rejected"):
            report.event(name, "connection_failed", f"LNS: {detail}", reason=f"LNS {kind}: {detail}")
        elif kind == "tc-closed":
            report.event(name, "disconnected", f"LNS: {detail}")
        elif kind == "halt":
            if detail == "orderly":
                report.event(name, "rebooting", "orderly halt")
        else:
            report.event(name, "note", f"{kind} {detail}".strip())
        if version and version != self.first_version and self.report.devices[name].outcome != "upgraded":
            report.event(name, "upgraded", f"package {version} (was {self.first_version})",
                         version=version)


async def run(args: argparse.Namespace) -> int:
    try:
        fleet = Fleet("basics-station", args, direct=bool(args.bind_address), power_off_seconds=False)
        async with fleet:
            try:
                stations = stations_from(args, RealClock(), fleet)
            except OSError as error:  # a --home or --sig-key the stations cannot use
                raise FleetError(str(error)) from None
            await _run_stations(fleet, stations)
    except FleetError as error:
        log.error("%s", error)
        return 2
    return 0


async def _run_stations(fleet: Fleet, stations: list[BasicsStation]) -> None:
    """The stations started, until interrupted."""
    watches = [StationWatch(fleet.report, station) for station in stations]
    for station, watch in zip(stations, watches):
        fleet.add(station.name, power_cut=lambda _off, station=station: station.power_cut())
        fleet.report.event(station.name, "started", f"package {watch.first_version or '?'}",
                           version=watch.first_version)
        await station.start()

    fleet.poll(watches)
    try:
        await fleet.wait()  # until interrupted
    finally:
        for station in stations:
            await station.stop()
        for watch in watches:
            watch.poll()
            fleet.report.event(watch.station.name, "stopped",
                               f"package {watch.station.home.version()}")

"""``otaharness emulate cpe --acs-url URL --count N``: a fleet of emulated CPEs on real time.

All CPEs share one Connection Request listener (one socket, dispatch by path), so the count is
bounded by memory, not by file descriptors. Each CPE reaches the ACS and the file servers through
the fleet's local proxy from its own loopback address (127.1.0.1, ... or from ``--bind-base``),
so ``--fault``, ``--capture``, ``--json`` and ``-v`` work as for every kind (emulators/fleet.py).
"""

from __future__ import annotations

import argparse
import ipaddress
import logging
import random

from otaharness.emulators.fleet import (
    HTTP,
    Fleet,
    FleetError,
    add_fleet_arguments,
    device_count,
    url_argument,
)

from otaharness.protocols.cwmp import DownloadResponse, Inform, TransferComplete
from otaharness.protocols.cwmp.envelope import parse_envelope
from otaharness.runtime.clock import RealClock
from otaharness.runtime.collector import tune_for_fleets

from .connection_request import ConnectionRequestServer
from .device import Cpe
from .profiles import PROFILES
from .quirks import Quirks

log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--acs-url", required=True, type=url_argument(HTTP), help="the ACS's CWMP URL")
    parser.add_argument("--count", type=device_count, default=1, help="number of CPEs (default 1)")
    parser.add_argument("--profile", choices=sorted(PROFILES), default="mikrotik",
                        help="mikrotik: a RouterOS CHR, TR-181 (default); generic: a TR-098 "
                        "gateway with one firmware image")
    parser.add_argument("--datamodel", help="data model file (default: the profile's)")
    parser.add_argument("--serial-prefix", default="OTAH", help="serials are PREFIX000001, ...")
    parser.add_argument("--username", default="", help="CPE -> ACS user name")
    parser.add_argument("--password", default="", help="CPE -> ACS password (Basic or Digest, as "
                        "the ACS asks)")
    parser.add_argument("--ca", help="CA file the ACS's and file servers' HTTPS certificates must "
                        "chain to (default: the system's trust store)")
    parser.add_argument("--cr-username", default="", help="Connection Request user name")
    parser.add_argument("--cr-password", default="", help="Connection Request password")
    parser.add_argument("--cr-host", default="127.0.0.1", help="Connection Request listener host")
    parser.add_argument("--cr-port", type=int, default=0, help="listener port (0 = free port)")
    parser.add_argument("--bind-base", help="first source address, e.g. 127.1.0.1 (a loopback "
                        "address unless --direct; default 127.1.0.1)")
    parser.add_argument("--periodic-interval", type=float, help="PeriodicInformInterval, s")
    parser.add_argument("--boot-seconds", type=float, default=30.0,
                        help="seconds a reboot takes, e.g. after a firmware install (default 30)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (session retry back-off; Digest cnonces come from the CSPRNG)")
    parser.add_argument("--duration", type=float, default=0, help="stop after N s (0 = never)")
    parser.add_argument("--quirk", action="append", default=[], metavar="NAME[=VALUE]",
                        help="e.g. times_before_fault, cookies=none, transfer_complete_events=none, "
                        "skip_certificate_check")
    add_fleet_arguments(parser)


def quirks_from(items: list[str]) -> Quirks:
    values: dict[str, object] = {}
    for item in items:
        name, equals, value = item.partition("=")
        if name not in Quirks.__dataclass_fields__:
            raise SystemExit(f"unknown quirk {name!r}; known: {', '.join(Quirks.__dataclass_fields__)}")
        values[name] = value if equals else True
    return Quirks(**values)  # type: ignore[arg-type]


class CpeWatch:
    """One CPE's session told as fleet events: what it sends (the trace of its envelopes) and
    what its counters show (sessions completed or failed, bytes of a download)."""

    def __init__(self, fleet: Fleet, serial: str) -> None:
        self.fleet = fleet
        self.report = fleet.report
        self.serial = serial
        self.cpe: Cpe | None = None
        self.first_version = ""
        self._sessions = 0
        self._error = ""
        self._download_from: int | None = None  # bytes received when the ACS asked for a download

    def attach(self, cpe: Cpe) -> None:
        self.cpe = cpe
        self.first_version = cpe.software_version
        self.fleet.watch_bytes(self.serial, self._bytes)

    def trace(self, _direction: str, data: bytes) -> None:
        try:
            body = parse_envelope(data).body
        except ValueError:  # a quirk's deliberately odd envelope: nothing to tell
            return
        if isinstance(body, Inform):
            codes = ", ".join(event.event_code for event in body.event) or "no events"
            self.report.event(self.serial, "session_started", f"Inform ({codes})",
                              events=[event.event_code for event in body.event])
        elif isinstance(body, DownloadResponse):
            self._download_from = self.fleet.received(self.serial)
            self.report.progress(self.serial, 0)
        elif isinstance(body, TransferComplete):
            self._download_from = None
            code = body.fault_struct.fault_code
            version = self.cpe.software_version if self.cpe else ""
            if code:
                reason = f"{code} {body.fault_struct.fault_string}".strip()
                self.report.event(self.serial, "upgrade_failed", f"TransferComplete: {reason}",
                                  reason=reason, command_key=body.command_key)
            elif version != self.first_version:
                self.report.event(self.serial, "upgraded", f"runs {version} (was "
                                  f"{self.first_version})", version=version)
            else:
                self.report.event(self.serial, "download_complete", "TransferComplete, no fault",
                                  command_key=body.command_key)

    def _bytes(self, received: int) -> None:
        if self._download_from is not None:
            self.report.progress(self.serial, received - self._download_from)

    def poll(self) -> None:
        cpe = self.cpe
        if cpe is None:
            return
        if cpe.sessions_completed > self._sessions:
            if self._sessions == 0:
                self.report.event(self.serial, "connected", f"session with {cpe.model.get('ManagementServer.URL')} "
                                  "completed")
            self._sessions = cpe.sessions_completed
        if cpe.last_session_error and cpe.last_session_error != self._error:
            self._error = cpe.last_session_error
            self.report.event(self.serial, "connection_failed", f"session failed: {self._error}",
                              reason=self._error)


async def run(args: argparse.Namespace) -> int:
    tune_for_fleets()  # thousands of devices in this process: see runtime/collector.py
    clock = RealClock()
    try:
        base = ipaddress.IPv4Address(args.bind_base) if args.bind_base else None
        fleet = Fleet("cpe", args, address_base=str(base - 1) if base else None)
    except (FleetError, ValueError) as error:
        log.error("%s", error)
        return 2
    quirks = quirks_from(args.quirk)
    listener = ConnectionRequestServer(args.cr_host, args.cr_port)
    await listener.start()
    cpes: list[Cpe] = []
    watches: list[CpeWatch] = []
    try:
        async with fleet:
            for index in range(args.count):
                serial = f"{args.serial_prefix}{index + 1:06d}"
                bind = fleet.address_of(serial) if not fleet.direct else (
                    str(base + index) if base else None)
                watch = CpeWatch(fleet, serial)
                try:
                    cpe = Cpe(serial, acs_url=args.acs_url, clock=clock,
                              rng=random.Random(f"{args.seed}:{index}"), profile=args.profile,
                              datamodel=args.datamodel, connection_requests=listener,
                              bind_address=bind, link=None if fleet.direct else fleet.link,
                              username=args.username, password=args.password,
                              connection_request_username=args.cr_username,
                              connection_request_password=args.cr_password, quirks=quirks,
                              periodic_interval=args.periodic_interval,
                              boot_seconds=args.boot_seconds, ca_file=args.ca,
                              tls_keylog=fleet.keylog, trace=watch.trace)
                except OSError as error:  # ssl.SSLError included: a --ca that does not load
                    raise FleetError(f"--ca {args.ca}: {error}") from None
                watch.attach(cpe)
                cpes.append(cpe)
                watches.append(watch)
                fleet.add(serial, power_cut=cpe.power_cut)
                await cpe.start()
                fleet.report.event(serial, "started", f"{args.profile}, runs {cpe.software_version}",
                                   version=cpe.software_version)
            log.info("%d CPEs running; Connection Requests on %s:%d", len(cpes), listener.host,
                     listener.port)

            fleet.poll(watches)
            try:
                await fleet.wait(args.duration)
            finally:
                for watch in watches:
                    watch.poll()
                for cpe in cpes:
                    await cpe.stop()
                    fleet.report.event(cpe.serial_number, "stopped", f"runs {cpe.software_version}")
    except FleetError as error:
        log.error("%s", error)
        return 2
    finally:
        await listener.stop()
    return 0

"""``otaharness emulate cpe --acs-url URL --count N``: a fleet of emulated CPEs on real time.

All CPEs share one Connection Request listener (one socket, dispatch by path), so the count is
bounded by memory, not by file descriptors; ``--bind-base 127.1.0.1`` gives each CPE its own
loopback source address toward the ACS (Linux routes all of 127/8 to lo).
"""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import logging
import random

from otaharness.runtime.clock import RealClock

from .connection_request import ConnectionRequestServer
from .device import Cpe
from .profiles import PROFILES
from .quirks import Quirks

log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--acs-url", required=True, help="the ACS's CWMP URL")
    parser.add_argument("--count", type=int, default=1, help="number of CPEs (default 1)")
    parser.add_argument("--profile", choices=sorted(PROFILES), default="mikrotik")
    parser.add_argument("--datamodel", help="data model file (default: the profile's)")
    parser.add_argument("--serial-prefix", default="OTAH", help="serials are PREFIX000001, ...")
    parser.add_argument("--username", default="", help="CPE -> ACS user name")
    parser.add_argument("--password", default="")
    parser.add_argument("--ca", help="CA file the ACS's and file servers' HTTPS certificates must "
                        "chain to (default: the system's trust store)")
    parser.add_argument("--cr-username", default="", help="Connection Request user name")
    parser.add_argument("--cr-password", default="")
    parser.add_argument("--cr-host", default="127.0.0.1", help="Connection Request listener host")
    parser.add_argument("--cr-port", type=int, default=0, help="listener port (0 = free port)")
    parser.add_argument("--bind-base", help="first source address, e.g. 127.1.0.1")
    parser.add_argument("--periodic-interval", type=float, help="PeriodicInformInterval, s")
    parser.add_argument("--boot-seconds", type=float, default=30.0)
    parser.add_argument("--seed", type=int, default=0, help="random seed (session retry back-off; Digest cnonces come from the CSPRNG)")
    parser.add_argument("--duration", type=float, default=0, help="stop after N s (0 = never)")
    parser.add_argument("--quirk", action="append", default=[], metavar="NAME[=VALUE]",
                        help="e.g. times_before_fault, cookies=none, transfer_complete_events=none, "
                        "skip_certificate_check")


def quirks_from(items: list[str]) -> Quirks:
    values: dict[str, object] = {}
    for item in items:
        name, equals, value = item.partition("=")
        if name not in Quirks.__dataclass_fields__:
            raise SystemExit(f"unknown quirk {name!r}; known: {', '.join(Quirks.__dataclass_fields__)}")
        values[name] = value if equals else True
    return Quirks(**values)  # type: ignore[arg-type]


async def run(args: argparse.Namespace) -> int:
    clock = RealClock()
    listener = ConnectionRequestServer(args.cr_host, args.cr_port)
    await listener.start()
    base = ipaddress.IPv4Address(args.bind_base) if args.bind_base else None
    quirks = quirks_from(args.quirk)
    cpes = []
    try:
        for index in range(args.count):
            cpe = Cpe(f"{args.serial_prefix}{index + 1:06d}", acs_url=args.acs_url, clock=clock,
                      rng=random.Random(f"{args.seed}:{index}"), profile=args.profile,
                      datamodel=args.datamodel, connection_requests=listener,
                      bind_address=str(base + index) if base else None,
                      username=args.username, password=args.password,
                      connection_request_username=args.cr_username,
                      connection_request_password=args.cr_password, quirks=quirks,
                      periodic_interval=args.periodic_interval, boot_seconds=args.boot_seconds,
                      ca_file=args.ca)
            cpes.append(cpe)
            await cpe.start()
        log.info("%d CPEs running; Connection Requests on %s:%d", len(cpes), listener.host,
                 listener.port)
        await (asyncio.sleep(args.duration) if args.duration else asyncio.Event().wait())
    finally:
        for cpe in cpes:
            await cpe.stop()
        await listener.stop()
    return 0

"""``otaharness serve tr069``: the ACS, file server and admin API on real time."""

from __future__ import annotations

import argparse
import asyncio
import logging
import random
from pathlib import Path

from otaharness.runtime.clock import RealClock

from .acs import AcsConfig
from .server import AcsServer

log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--state-dir", type=Path, default=Path("tr069-acs-state"))
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--acs-port", type=int, default=7547)
    parser.add_argument("--files-port", type=int, default=7567)
    parser.add_argument("--admin-port", type=int, default=7557)
    parser.add_argument("--auth", choices=("none", "basic", "digest", "any"), default="none")
    parser.add_argument("--user", action="append", default=[], metavar="NAME:PASSWORD",
                        help="CPE credentials (repeatable)")
    parser.add_argument("--cr-username", default="")
    parser.add_argument("--cr-password", default="")
    parser.add_argument("--files-url", default="", help="public file server URL for Downloads")


async def run(args: argparse.Namespace) -> int:
    users = dict(item.split(":", 1) for item in args.user)
    config = AcsConfig(auth_mode=args.auth, users=users,
                       connection_request_username=args.cr_username,
                       connection_request_password=args.cr_password, files_url=args.files_url)
    server = AcsServer(args.state_dir, RealClock(), random.Random(), config, host=args.host)
    await server.start({"acs": args.acs_port, "files": args.files_port, "admin": args.admin_port})
    log.info("TR-069 ACS: %s", server.endpoints())
    try:
        await asyncio.Event().wait()
    finally:
        await server.stop()
    return 0

"""CLI: ``otaharness cups station-credentials --server URL --station-eui EUI --home DIR
[--auth certificate|token]``: a station's credential files, written into its home.

The server (the CUPS endpoint's admin API, ``--token`` / ``OTAHARNESS_TOKEN``; ``--ca`` the trust
file of an ``https`` URL, ``"ca"`` of ``serve cups --json``) issues the station a client
certificate bound to its EUI with its key, or a token; the files — ``cups.uri``, ``cups.trust``,
``cups.crt`` + ``cups.key`` (or the token form of ``cups.key``: ``Authorization: Bearer …``) and
the same ``tc.*`` set — are what the real LoRa Basics Station and ``otaharness emulate
basics-station --home DIR`` read. Existing files of those names are replaced.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import aiohttp

from otaharness.api_token_option import add_token_option
from otaharness.provision.basics_station import ProvisioningError, station_credentials


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--server", required=True, help="back end URL (the CUPS endpoint)")
    parser.add_argument("--station-eui", required=True, help="the station's EUI (hex or ID6)")
    parser.add_argument("--home", type=Path, required=True, help="the station's home directory")
    parser.add_argument("--auth", choices=("certificate", "token"), default="certificate",
                        help="a client certificate bound to the EUI (default) or a token")
    parser.add_argument("--ca", type=Path, help="PEM file the server's certificate chains to (https)")
    add_token_option(parser)


async def run(args: argparse.Namespace) -> int:
    try:
        written = await station_credentials(args.server, args.station_eui, args.home, auth=args.auth,
                                            token=args.token, ca=args.ca)
    except (ProvisioningError, OSError, aiohttp.ClientError) as error:
        print(f"station-credentials failed: {error}", file=sys.stderr)
        return 1
    print(f"station {args.station_eui}: wrote {', '.join(written)} into {args.home}")
    return 0

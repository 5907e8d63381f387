"""CLI: ``otaharness basics-station upgrade-firmware`` (the Azure provisioning CLI's command).

``--station-eui --package --firmware-location --digest-location --checksum-location --server URL``
where URL is the CUPS endpoint of the Basics Station back end (its admin API); ``--token`` (or
``OTAHARNESS_TOKEN``) is the admin API's bearer token, ``--ca`` the trust file of an ``https`` URL
(what ``serve cups --json`` prints as ``"ca"``). A signature no station can verify is refused
before anything is uploaded.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from otaharness.api_token_option import add_token_option
from otaharness.provision.basics_station import ProvisioningError, upgrade_firmware


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--station-eui", required=True, help="StationEui of the target station")
    parser.add_argument("--package", required=True, help="new package (version) of the station, e.g. 1.0.1")
    parser.add_argument("--firmware-location", type=Path, required=True, help="the update executable")
    parser.add_argument("--digest-location", type=Path, required=True, help="file with the base64 signature")
    parser.add_argument("--checksum-location", type=Path, required=True, help="file with the key's decimal CRC32")
    parser.add_argument("--server", required=True, help="back end URL (the CUPS endpoint)")
    parser.add_argument("--ca", type=Path, help="PEM file the server's certificate chains to (https)")
    add_token_option(parser)


async def run(args: argparse.Namespace) -> int:
    try:
        twin = await upgrade_firmware(args.server, args.station_eui, args.package, args.firmware_location,
                                      args.digest_location, args.checksum_location,
                                      token=getattr(args, "token", None), ca=getattr(args, "ca", None))
    except ProvisioningError as error:
        print(f"upgrade-firmware failed: {error}", file=sys.stderr)
        return 1
    print(f"station {twin['stationEui']}: desired package {twin['package']} at {twin['fwUrl']}")
    return 0

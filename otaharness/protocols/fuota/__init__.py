"""LoRaWAN FUOTA application-layer packages: pure codecs, FEC and key derivation, no I/O.

* `clock_sync` — TS003 Application Layer Clock Synchronization (FPort 202)
* `fragmentation` — TS004 Fragmented Data Block Transport commands (FPort 201)
* `fec` — TS004 parity code: `matrix_line`, `encode_block`, online `FragmentDecoder`
* `multicast_setup` — TS005 Remote Multicast Setup (FPort 200) and multicast key derivation
* `firmware_management` — TS006 Firmware Management Protocol (FPort 203)

Each package module exposes a `Package` (CLOCK_SYNC, FRAGMENTATION, MULTICAST_SETUP,
FIRMWARE_MANAGEMENT) whose `parse_downlink` / `parse_uplink` turn an FRMPayload into command
dataclasses; `Command.to_bytes()` and `Package.encode()` go the other way. Every malformed
input raises `FuotaCodecError` (a ValueError).
"""

from ._codec import Command, FuotaCodecError, Package, PackageVersionAns, PackageVersionReq
from .clock_sync import CLOCK_SYNC
from .fec import FecError
from .firmware_management import FIRMWARE_MANAGEMENT
from .fragmentation import FRAGMENTATION
from .multicast_setup import MULTICAST_SETUP

PACKAGES_BY_FPORT: dict[int, Package] = {
    package.fport: package for package in (MULTICAST_SETUP, FRAGMENTATION, CLOCK_SYNC, FIRMWARE_MANAGEMENT)
}

__all__ = [
    "CLOCK_SYNC",
    "FIRMWARE_MANAGEMENT",
    "FRAGMENTATION",
    "MULTICAST_SETUP",
    "PACKAGES_BY_FPORT",
    "Command",
    "FecError",
    "FuotaCodecError",
    "Package",
    "PackageVersionAns",
    "PackageVersionReq",
]

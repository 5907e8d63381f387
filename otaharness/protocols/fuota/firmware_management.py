"""TS006 Firmware Management Protocol v1 (FPort 203, PackageIdentifier 4).

Unicast only: a device drops these commands on a multicast address (TS006-1.0.0 §3 Table 1).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum
from typing import ClassVar

from ._codec import Command, Package, PackageVersionAns, PackageVersionReq, flag, uint

FPORT = 203
PACKAGE_IDENTIFIER = 4
PACKAGE_VERSION = 1

# TS006-1.0.0 §3.3: RebootTime 0 = as soon as possible, 0xFFFFFFFF = cancel the programmed reboot.
REBOOT_TIME_NOW = 0
REBOOT_TIME_CANCEL = 0xFFFFFFFF
# TS006-1.0.0 §3.4: the same scheme with 24-bit countdowns.
COUNTDOWN_NOW = 0
COUNTDOWN_CANCEL = 0xFFFFFF


class UpImageStatus(IntEnum):
    """TS006-1.0.0 §3.5 DevUpgradeImageAns Status bits 1:0."""

    NO_IMAGE = 0
    CORRUPT_OR_BAD_SIGNATURE = 1
    WRONG_HARDWARE = 2
    VALID = 3


@dataclass(frozen=True, kw_only=True)
class DevVersionReq(Command):
    """Downlink CID 0x01 (TS006-1.0.0 §3.2): no payload."""

    CID: ClassVar[int] = 0x01


@dataclass(frozen=True, kw_only=True)
class DevVersionAns(Command):
    """Uplink CID 0x01 (TS006-1.0.0 §3.2): opaque, manufacturer-defined version words."""

    CID: ClassVar[int] = 0x01
    fw_version: int = uint(0, 4)
    hw_version: int = uint(4, 4)


@dataclass(frozen=True, kw_only=True)
class DevRebootTimeReq(Command):
    """Downlink CID 0x02 (TS006-1.0.0 §3.3): reboot at a GPS time (s), 0 = now, 0xFFFFFFFF = cancel."""

    CID: ClassVar[int] = 0x02
    reboot_time: int = uint(0, 4)

    @property
    def is_cancel(self) -> bool:
        return self.reboot_time == REBOOT_TIME_CANCEL


@dataclass(frozen=True, kw_only=True)
class DevRebootTimeAns(Command):
    """Uplink CID 0x02 (TS006-1.0.0 §3.3): seconds from this answer until the reboot; 0 = cannot
    reboot at the requested time; 0xFFFFFFFF acknowledges a cancel."""

    CID: ClassVar[int] = 0x02
    reboot_time: int = uint(0, 4)


@dataclass(frozen=True, kw_only=True)
class DevRebootCountdownReq(Command):
    """Downlink CID 0x03 (TS006-1.0.0 §3.4): reboot after `countdown` s; 0 = now, 0xFFFFFF = cancel."""

    CID: ClassVar[int] = 0x03
    countdown: int = uint(0, 3)

    @property
    def is_cancel(self) -> bool:
        return self.countdown == COUNTDOWN_CANCEL


@dataclass(frozen=True, kw_only=True)
class DevRebootCountdownAns(Command):
    """Uplink CID 0x03 (TS006-1.0.0 §3.4): seconds left until the reboot."""

    CID: ClassVar[int] = 0x03
    countdown: int = uint(0, 3)


@dataclass(frozen=True, kw_only=True)
class DevUpgradeImageReq(Command):
    """Downlink CID 0x04 (TS006-1.0.0 §3.5): no payload."""

    CID: ClassVar[int] = 0x04


@dataclass(frozen=True, kw_only=True)
class DevUpgradeImageAns(Command):
    """Uplink CID 0x04 (TS006-1.0.0 §3.5): 5 octets when the image is valid, else 1."""

    CID: ClassVar[int] = 0x04
    up_image_status: UpImageStatus = uint(0, 1, width=2, enum=UpImageStatus)
    next_firmware_version: int | None = uint(
        1, 4, present_if=lambda fields: fields["up_image_status"] == UpImageStatus.VALID
    )


@dataclass(frozen=True, kw_only=True)
class DevDeleteImageReq(Command):
    """Downlink CID 0x05 (TS006-1.0.0 §3.6)."""

    CID: ClassVar[int] = 0x05
    firmware_to_delete_version: int = uint(0, 4)


@dataclass(frozen=True, kw_only=True)
class DevDeleteImageAns(Command):
    """Uplink CID 0x05 (TS006-1.0.0 §3.6)."""

    CID: ClassVar[int] = 0x05
    error_no_valid_image: bool = flag(0, 0)
    error_invalid_version: bool = flag(0, 1)


FIRMWARE_MANAGEMENT = Package(
    name="TS006 firmware management",
    fport=FPORT,
    identifier=PACKAGE_IDENTIFIER,
    version=PACKAGE_VERSION,
    downlink_commands=(
        PackageVersionReq,
        DevVersionReq,
        DevRebootTimeReq,
        DevRebootCountdownReq,
        DevUpgradeImageReq,
        DevDeleteImageReq,
    ),
    uplink_commands=(
        PackageVersionAns,
        DevVersionAns,
        DevRebootTimeAns,
        DevRebootCountdownAns,
        DevUpgradeImageAns,
        DevDeleteImageAns,
    ),
)

"""TS003 Application Layer Clock Synchronization v1 (FPort 202, PackageIdentifier 1).

CID 0x01 is reversed compared with the other packages: the *device* sends AppTimeReq
(TS003 §3.2). Times are GPS seconds (since 1980-01-06) modulo 2^32, passed in as ints.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from ._codec import Command, Package, PackageVersionAns, PackageVersionReq, flag, sint, uint

FPORT = 202
PACKAGE_IDENTIFIER = 1
PACKAGE_VERSION = 1

_U32 = 1 << 32


@dataclass(frozen=True, kw_only=True)
class AppTimeReq(Command):
    """Uplink CID 0x01 (TS003 §3.2): the device's clock and a 4-bit token."""

    CID: ClassVar[int] = 0x01
    device_time: int = uint(0, 4)  # device GPS seconds mod 2^32
    token_req: int = uint(4, 1, width=4)
    ans_required: bool = flag(4, 4)


@dataclass(frozen=True, kw_only=True)
class AppTimeAns(Command):
    """Downlink CID 0x01 (TS003 §3.2): signed correction in seconds, echoing the token."""

    CID: ClassVar[int] = 0x01
    time_correction: int = sint(0, 4)
    token_ans: int = uint(4, 1, width=4)


@dataclass(frozen=True, kw_only=True)
class DeviceAppTimePeriodicityReq(Command):
    """Downlink CID 0x02 (TS003 §3.3): AppTimeReq every 128·2^Period s (± up to 30 s)."""

    CID: ClassVar[int] = 0x02
    period: int = uint(0, 1, width=4)

    @property
    def periodicity_seconds(self) -> int:
        return 128 << self.period


@dataclass(frozen=True, kw_only=True)
class DeviceAppTimePeriodicityAns(Command):
    """Uplink CID 0x02 (TS003 §3.3)."""

    CID: ClassVar[int] = 0x02
    not_supported: bool = flag(0, 0)
    device_time: int = uint(1, 4)


@dataclass(frozen=True, kw_only=True)
class ForceDeviceResyncReq(Command):
    """Downlink CID 0x03 (TS003 §3.4; ForceDeviceResyncCmd in v2): no answer, the device
    sends NbTransmissions AppTimeReqs."""

    CID: ClassVar[int] = 0x03
    nb_transmissions: int = uint(0, 1, width=3)


CLOCK_SYNC = Package(
    name="TS003 clock sync",
    fport=FPORT,
    identifier=PACKAGE_IDENTIFIER,
    version=PACKAGE_VERSION,
    downlink_commands=(PackageVersionReq, AppTimeAns, DeviceAppTimePeriodicityReq, ForceDeviceResyncReq),
    uplink_commands=(PackageVersionAns, AppTimeReq, DeviceAppTimePeriodicityAns),
)


def time_correction(server_gps_time: int, device_time: int) -> int:
    """TimeCorrection = server GPS time at reception − DeviceTime (TS003 §3.2), computed
    modulo 2^32 and returned as the signed 32-bit value the field carries."""
    difference = (server_gps_time - device_time) % _U32
    return difference - _U32 if difference >= _U32 // 2 else difference


def answer_app_time(request: AppTimeReq, server_gps_time: int) -> AppTimeAns:
    """The AppTimeAns a server sends for `request` received at `server_gps_time`."""
    return AppTimeAns(
        time_correction=time_correction(server_gps_time, request.device_time),
        token_ans=request.token_req,
    )


def corrected_device_time(device_time: int, correction: int) -> int:
    """The device clock after applying a TimeCorrection, in GPS seconds mod 2^32."""
    return (device_time + correction) % _U32

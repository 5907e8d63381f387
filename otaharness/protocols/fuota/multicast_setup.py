"""TS005 Remote Multicast Setup v1 (FPort 200, PackageIdentifier 2).

Unicast only (TS005 §3 Table 1). The key derivation of TS005 (McRootKey, McKEKey, McKey
encryption, McAppSKey/McNwkSKey) lives with the other LoRaWAN keys in
`otaharness.protocols.lorawan.keys`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar, Mapping, Self

from ._codec import (
    Command,
    FuotaCodecError,
    Package,
    PackageVersionAns,
    PackageVersionReq,
    flag,
    octets,
    uint,
)

FPORT = 200
PACKAGE_IDENTIFIER = 2
PACKAGE_VERSION = 1
MAX_GROUPS = 4

# --------------------------------------------------------------------------- commands


@dataclass(frozen=True, kw_only=True)
class McGroupStatusReq(Command):
    """Downlink CID 0x01 (TS005 §3.2): one bit per group 0..3 to report."""

    CID: ClassVar[int] = 0x01
    req_group_mask: int = uint(0, 1, width=4)


@dataclass(frozen=True)
class McGroupStatusEntry:
    """One 5-octet record of McGroupStatusAns: McGroupID (bits 1:0) + McAddr (LE)."""

    mc_group_id: int
    mc_addr: int

    SIZE: ClassVar[int] = 5

    def __post_init__(self) -> None:
        if not 0 <= self.mc_group_id < MAX_GROUPS or not 0 <= self.mc_addr < 1 << 32:
            raise FuotaCodecError(f"McGroupStatusAns record out of range: {self}")


@dataclass(frozen=True, kw_only=True)
class McGroupStatusAns(Command):
    """Uplink CID 0x01 (TS005 §3.2): Status octet (bits 3:0 AnsGroupMask, bits 6:4
    NbTotalGroups), then one record per bit set in AnsGroupMask."""

    CID: ClassVar[int] = 0x01
    ans_group_mask: int = uint(0, 1, width=4)
    nb_total_groups: int = uint(0, 1, lsb=4, width=3)
    groups: tuple[McGroupStatusEntry, ...] = field(default=())

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.nb_total_groups > MAX_GROUPS:
            raise FuotaCodecError(f"NbTotalGroups {self.nb_total_groups} > {MAX_GROUPS}")
        if len(self.groups) != self.ans_group_mask.bit_count():
            raise FuotaCodecError(
                f"McGroupStatusAns: AnsGroupMask 0x{self.ans_group_mask:x} announces "
                f"{self.ans_group_mask.bit_count()} records, {len(self.groups)} given"
            )

    def _encode_payload(self) -> bytes:
        records = b"".join(
            bytes([entry.mc_group_id]) + entry.mc_addr.to_bytes(4, "little") for entry in self.groups
        )
        return super()._encode_payload() + records

    @classmethod
    def decode(cls, data: bytes, start: int) -> tuple[Self, int]:
        cls._require(len(data) - start, 1)
        ans_group_mask = data[start] & 0x0F
        records_end = start + 1 + McGroupStatusEntry.SIZE * ans_group_mask.bit_count()
        cls._require(len(data) - start, records_end - start)
        groups = tuple(
            McGroupStatusEntry(
                mc_group_id=data[offset] & 0x03,
                mc_addr=int.from_bytes(data[offset + 1 : offset + 5], "little"),
            )
            for offset in range(start + 1, records_end, McGroupStatusEntry.SIZE)
        )
        return (
            cls(ans_group_mask=ans_group_mask, nb_total_groups=(data[start] >> 4) & 0x07, groups=groups),
            records_end,
        )


@dataclass(frozen=True, kw_only=True)
class McGroupSetupReq(Command):
    """Downlink CID 0x02 (TS005 §3.3): 29 octets."""

    CID: ClassVar[int] = 0x02
    mc_group_id: int = uint(0, 1, width=2)
    mc_addr: int = uint(1, 4)
    mc_key_encrypted: bytes = octets(5, 16)
    min_mc_fcount: int = uint(21, 4)  # next multicast FCnt the server will use
    max_mc_fcount: int = uint(25, 4)  # frames above it are dropped; the group ends there


@dataclass(frozen=True, kw_only=True)
class McGroupSetupAns(Command):
    """Uplink CID 0x02 (TS005 §3.3)."""

    CID: ClassVar[int] = 0x02
    mc_group_id: int = uint(0, 1, width=2)
    id_error: bool = flag(0, 2)


@dataclass(frozen=True, kw_only=True)
class McGroupDeleteReq(Command):
    """Downlink CID 0x03 (TS005 §3.4)."""

    CID: ClassVar[int] = 0x03
    mc_group_id: int = uint(0, 1, width=2)


@dataclass(frozen=True, kw_only=True)
class McGroupDeleteAns(Command):
    """Uplink CID 0x03 (TS005 §3.4)."""

    CID: ClassVar[int] = 0x03
    mc_group_id: int = uint(0, 1, width=2)
    mc_group_undefined: bool = flag(0, 2)


@dataclass(frozen=True, kw_only=True)
class _McSessionReq(Command):
    """Fields shared by the Class C and Class B session requests (10 octets)."""

    mc_group_id: int = uint(0, 1, width=2)
    session_time: int = uint(1, 4)  # GPS seconds mod 2^32 at which the session starts
    time_out: int = uint(5, 1, width=4)  # the session lasts at most 2^TimeOut s
    dl_frequency: int = uint(6, 3)  # units of 100 Hz
    dr: int = uint(9, 1)

    @property
    def frequency_hz(self) -> int:
        return self.dl_frequency * 100

    @property
    def session_timeout_seconds(self) -> int:
        return 1 << self.time_out


@dataclass(frozen=True, kw_only=True)
class McClassCSessionReq(_McSessionReq):
    """Downlink CID 0x04 (TS005 §3.5); octet 5 bits 7:4 are RFU."""

    CID: ClassVar[int] = 0x04


@dataclass(frozen=True, kw_only=True)
class McClassBSessionReq(_McSessionReq):
    """Downlink CID 0x05 (TS005 §3.6): octet 5 also carries the ping-slot Periodicity."""

    CID: ClassVar[int] = 0x05
    periodicity: int = uint(5, 1, lsb=4, width=3)


def _session_accepted(fields: Mapping[str, Any]) -> bool:
    return not (fields["dr_error"] or fields["freq_error"] or fields["mc_group_undefined"])


@dataclass(frozen=True, kw_only=True)
class _McSessionAns(Command):
    """Status octet, then TimeToStart (3 octets) only when no error bit is set (TS005 §3.5)."""

    mc_group_id: int = uint(0, 1, width=2)
    dr_error: bool = flag(0, 2)
    freq_error: bool = flag(0, 3)
    mc_group_undefined: bool = flag(0, 4)
    time_to_start: int | None = uint(1, 3, present_if=_session_accepted)

    @property
    def accepted(self) -> bool:
        return self.time_to_start is not None


@dataclass(frozen=True, kw_only=True)
class McClassCSessionAns(_McSessionAns):
    """Uplink CID 0x04 (TS005 §3.5): 4 octets on success, 1 on error."""

    CID: ClassVar[int] = 0x04


@dataclass(frozen=True, kw_only=True)
class McClassBSessionAns(_McSessionAns):
    """Uplink CID 0x05 (TS005 §3.6): same layout as the Class C answer."""

    CID: ClassVar[int] = 0x05


MULTICAST_SETUP = Package(
    name="TS005 remote multicast setup",
    fport=FPORT,
    identifier=PACKAGE_IDENTIFIER,
    version=PACKAGE_VERSION,
    downlink_commands=(
        PackageVersionReq,
        McGroupStatusReq,
        McGroupSetupReq,
        McGroupDeleteReq,
        McClassCSessionReq,
        McClassBSessionReq,
    ),
    uplink_commands=(
        PackageVersionAns,
        McGroupStatusAns,
        McGroupSetupAns,
        McGroupDeleteAns,
        McClassCSessionAns,
        McClassBSessionAns,
    ),
)

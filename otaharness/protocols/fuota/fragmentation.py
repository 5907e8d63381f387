"""TS004 Fragmented Data Block Transport v1 commands (FPort 201, PackageIdentifier 3).

Only DataFragment and FragSessionStatusReq may arrive on a multicast address
(TS004-2.0.0 §3 Table 2). The FEC itself lives in `fec`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from ._codec import Command, Package, PackageVersionAns, PackageVersionReq, flag, octets, uint
from .fec import FragmentDecoder

FPORT = 201
PACKAGE_IDENTIFIER = 3
PACKAGE_VERSION = 1
FRAG_ALGO_PARITY = 0  # the only FragAlgo TS004 v1 defines (the parity code in `fec`)


@dataclass(frozen=True, kw_only=True)
class FragSessionStatusReq(Command):
    """Downlink CID 0x01 (TS004-2.0.0 §3.2): unicast or multicast."""

    CID: ClassVar[int] = 0x01
    MULTICAST_ALLOWED: ClassVar[bool] = True
    participants: bool = flag(0, 0)  # 1: every device answers; 0: only unfinished ones
    frag_index: int = uint(0, 1, lsb=1, width=2)


@dataclass(frozen=True, kw_only=True)
class FragSessionStatusAns(Command):
    """Uplink CID 0x01 (TS004-2.0.0 §3.2, v1 layout): what the counters mean differs between
    implementations, see `fec.StatusSemantics`."""

    CID: ClassVar[int] = 0x01
    nb_frag_received: int = uint(0, 2, width=14)
    frag_index: int = uint(0, 2, lsb=14, width=2)
    missing_frag: int = uint(2, 1)
    not_enough_matrix_memory: bool = flag(3, 0)

    @classmethod
    def from_decoder(cls, decoder: FragmentDecoder, frag_index: int) -> FragSessionStatusAns:
        status = decoder.status()
        return cls(
            nb_frag_received=status.nb_frag_received,
            frag_index=frag_index,
            missing_frag=status.missing_frag,
            not_enough_matrix_memory=status.not_enough_matrix_memory,
        )


@dataclass(frozen=True, kw_only=True)
class FragSessionSetupReq(Command):
    """Downlink CID 0x02 (TS004-2.0.0 §3.3, v1 layout): 10 octets."""

    CID: ClassVar[int] = 0x02
    mc_group_bit_mask: int = uint(0, 1, width=4)  # multicast groups allowed to carry fragments
    frag_index: int = uint(0, 1, lsb=4, width=2)
    nb_frag: int = uint(1, 2)  # M, uncoded fragments only
    frag_size: int = uint(3, 1)
    block_ack_delay: int = uint(4, 1, width=3)
    frag_algo: int = uint(4, 1, lsb=3, width=3)
    padding: int = uint(5, 1)  # filler octets at the end of the last uncoded fragment
    descriptor: bytes = octets(6, 4)  # free-form, e.g. a firmware identifier

    @property
    def data_block_size(self) -> int:
        return self.nb_frag * self.frag_size - self.padding

    @property
    def block_ack_delay_max_seconds(self) -> int:
        """The device answers FragSessionStatusReq after a random delay up to this."""
        return 1 << (self.block_ack_delay + 4)


@dataclass(frozen=True, kw_only=True)
class FragSessionSetupAns(Command):
    """Uplink CID 0x02 (TS004-2.0.0 §3.3, v1 bits)."""

    CID: ClassVar[int] = 0x02
    encoding_unsupported: bool = flag(0, 0)
    not_enough_memory: bool = flag(0, 1)
    frag_session_index_not_supported: bool = flag(0, 2)
    wrong_descriptor: bool = flag(0, 3)
    frag_index: int = uint(0, 1, lsb=6, width=2)

    @property
    def accepted(self) -> bool:
        return not (
            self.encoding_unsupported
            or self.not_enough_memory
            or self.frag_session_index_not_supported
            or self.wrong_descriptor
        )


@dataclass(frozen=True, kw_only=True)
class FragSessionDeleteReq(Command):
    """Downlink CID 0x03 (TS004-2.0.0 §3.4)."""

    CID: ClassVar[int] = 0x03
    frag_index: int = uint(0, 1, width=2)


@dataclass(frozen=True, kw_only=True)
class FragSessionDeleteAns(Command):
    """Uplink CID 0x03 (TS004-2.0.0 §3.4)."""

    CID: ClassVar[int] = 0x03
    frag_index: int = uint(0, 1, width=2)
    session_does_not_exist: bool = flag(0, 2)


@dataclass(frozen=True, kw_only=True)
class DataFragment(Command):
    """Downlink CID 0x08 (TS004-2.0.0 §3.6): IndexAndN then the rest of the frame as payload.

    N is 1-based: 1..M uncoded, M+1.. coded (row n = N − M)."""

    CID: ClassVar[int] = 0x08
    MULTICAST_ALLOWED: ClassVar[bool] = True
    n: int = uint(0, 2, width=14)
    frag_index: int = uint(0, 2, lsb=14, width=2)
    payload: bytes = octets(2)


FRAGMENTATION = Package(
    name="TS004 fragmentation",
    fport=FPORT,
    identifier=PACKAGE_IDENTIFIER,
    version=PACKAGE_VERSION,
    downlink_commands=(
        PackageVersionReq,
        FragSessionStatusReq,
        FragSessionSetupReq,
        FragSessionDeleteReq,
        DataFragment,
    ),
    uplink_commands=(PackageVersionAns, FragSessionStatusAns, FragSessionSetupAns, FragSessionDeleteAns),
)

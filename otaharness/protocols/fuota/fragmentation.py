"""TS004 Fragmented Data Block Transport v1 commands (FPort 201, PackageIdentifier 3).

Only DataFragment and FragSessionStatusReq may arrive on a multicast address
(TS004-2.0.0 §3 Table 2). The FEC itself lives in `fec`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from ._codec import Command, Package, PackageVersionAns, PackageVersionReq, flag, octets, uint
from .fec import SPECIFICATION_PROFILE, DecoderProfile, EncodedBlock, FragmentDecoder

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

    @classmethod
    def for_block(
        cls,
        block: EncodedBlock,
        *,
        frag_index: int,
        mc_group_bit_mask: int,
        block_ack_delay: int,
        descriptor: bytes,
    ) -> FragSessionSetupReq:
        """The setup request announcing `block` (NbFrag, FragSize and Padding from it)."""
        return cls(
            mc_group_bit_mask=mc_group_bit_mask,
            frag_index=frag_index,
            nb_frag=block.nb_frag,
            frag_size=block.frag_size,
            block_ack_delay=block_ack_delay,
            frag_algo=FRAG_ALGO_PARITY,
            padding=block.padding,
            descriptor=descriptor,
        )

    def decoder(
        self, *, profile: DecoderProfile = SPECIFICATION_PROFILE, max_missing: int | None = None
    ) -> FragmentDecoder:
        """A receiver for the session this request sets up."""
        return FragmentDecoder(
            self.nb_frag, self.frag_size, self.padding, profile=profile, max_missing=max_missing
        )

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


def data_fragments(block: EncodedBlock, frag_index: int) -> list[DataFragment]:
    """Every fragment of `block` as the DataFragment command that carries it (N = 1, 2, …)."""
    return [
        DataFragment(n=n, frag_index=frag_index, payload=fragment)
        for n, fragment in enumerate(block.fragments, start=1)
    ]


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

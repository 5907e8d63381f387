"""Declarative layout engine shared by the four LoRaWAN application-layer packages.

Every command is a frozen, keyword-only dataclass whose fields carry their wire position as
metadata, so a class body reads like the specification table:

    mc_group_id: int = uint(0, 1, width=2)     # octet 0, bits 1:0
    mc_addr: int = uint(1, 4)                   # octets 1..4, little-endian

Conventions of all four packages (TS006 §1, LoRaWAN 1.0.x): multi-octet integers are
little-endian; a command is one CID octet followed by its payload; several commands may be
concatenated in one FRMPayload; Req and Ans share a CID, so parsing needs the direction.
RFU bits are written as 0 and ignored when read.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from enum import IntEnum
from typing import Any, Callable, ClassVar, Iterable, Mapping, Self


class FuotaCodecError(ValueError):
    """Malformed, truncated or out-of-range FUOTA application-layer data."""


Presence = Callable[[Mapping[str, Any]], bool]


@dataclass(frozen=True)
class _Wire:
    """Where a field lives: `size` octets at `offset` (LE), bits lsb..lsb+width-1 of them."""

    kind: str  # "uint" | "sint" | "flag" | "octets"
    offset: int
    size: int | None  # None: the rest of the command (only for "octets")
    lsb: int = 0
    width: int | None = None
    present_if: Presence | None = None
    enum: type[IntEnum] | None = None

    @property
    def bits(self) -> int:
        assert self.size is not None
        return self.width if self.width is not None else 8 * self.size

    @property
    def end(self) -> int:
        assert self.size is not None
        return self.offset + self.size


def uint(
    offset: int,
    size: int,
    *,
    lsb: int = 0,
    width: int | None = None,
    present_if: Presence | None = None,
    enum: type[IntEnum] | None = None,
) -> Any:
    """Unsigned little-endian integer, or a bit field inside one."""
    default: Any = None if present_if else dataclasses.MISSING
    return dataclasses.field(
        default=default,
        metadata={"wire": _Wire("uint", offset, size, lsb, width, present_if, enum)},
    )


def sint(offset: int, size: int) -> Any:
    """Two's-complement little-endian integer."""
    return dataclasses.field(metadata={"wire": _Wire("sint", offset, size)})


def flag(offset: int, bit: int) -> Any:
    """One bit of the octet at `offset`; defaults to False."""
    return dataclasses.field(default=False, metadata={"wire": _Wire("flag", offset, 1, bit, 1)})


def octets(offset: int, size: int | None = None) -> Any:
    """Opaque octets; size None takes the rest of the command."""
    return dataclasses.field(metadata={"wire": _Wire("octets", offset, size)})


_LAYOUTS: dict[type, tuple[tuple[str, _Wire], ...]] = {}


def _wire_fields(cls: type) -> tuple[tuple[str, _Wire], ...]:
    """The (name, wire position) pairs of a command class, in declaration order."""
    layout = _LAYOUTS.get(cls)
    if layout is None:
        layout = tuple((f.name, f.metadata["wire"]) for f in dataclasses.fields(cls) if "wire" in f.metadata)
        _LAYOUTS[cls] = layout
    return layout


def _read(spec: _Wire, body: bytes) -> Any:
    if spec.kind == "octets":
        return bytes(body[spec.offset : spec.end if spec.size is not None else len(body)])
    container = int.from_bytes(body[spec.offset : spec.end], "little", signed=spec.kind == "sint")
    if spec.kind == "sint":
        return container
    value = (container >> spec.lsb) & ((1 << spec.bits) - 1)
    if spec.kind == "flag":
        return bool(value)
    return spec.enum(value) if spec.enum is not None else value


def _check(name: str, spec: _Wire, value: Any, owner: str) -> None:
    if spec.kind == "octets":
        if not isinstance(value, (bytes, bytearray)):
            raise FuotaCodecError(f"{owner}.{name} must be bytes, got {type(value).__name__}")
        if spec.size is not None and len(value) != spec.size:
            raise FuotaCodecError(f"{owner}.{name} must be {spec.size} octets, got {len(value)}")
        return
    if spec.kind == "flag":
        if not isinstance(value, bool):
            raise FuotaCodecError(f"{owner}.{name} must be a bool, got {value!r}")
        return
    if not isinstance(value, int) or isinstance(value, bool):
        raise FuotaCodecError(f"{owner}.{name} must be an int, got {value!r}")
    if spec.kind == "sint":
        low, high = -(1 << (spec.bits - 1)), (1 << (spec.bits - 1)) - 1
    else:
        low, high = 0, (1 << spec.bits) - 1
    if not low <= value <= high:
        raise FuotaCodecError(f"{owner}.{name}={value} outside {low}..{high} ({spec.bits} bits)")


@dataclass(frozen=True, kw_only=True)
class Command:
    """One application-layer command: CID octet + payload laid out by the field metadata."""

    CID: ClassVar[int]
    # TS004 Table 2 / TS005 / TS006: only these may arrive on a multicast address.
    MULTICAST_ALLOWED: ClassVar[bool] = False

    def __post_init__(self) -> None:
        owner = type(self).__name__
        values = {name: getattr(self, name) for name, _ in _wire_fields(type(self))}
        for name, spec in _wire_fields(type(self)):
            value = values[name]
            if spec.present_if is not None:
                expected = spec.present_if(values)
                if expected and value is None:
                    raise FuotaCodecError(f"{owner}.{name} is required with these status bits")
                if not expected:
                    if value is not None:
                        raise FuotaCodecError(f"{owner}.{name} must be None with these status bits")
                    continue
            _check(name, spec, value, owner)
            if spec.enum is not None and not isinstance(value, spec.enum):
                object.__setattr__(self, name, spec.enum(value))

    def _encode_payload(self) -> bytes:
        """The octets after the CID."""
        body = bytearray()
        for name, spec in _wire_fields(type(self)):
            value = getattr(self, name)
            if value is None:
                continue
            if spec.kind == "octets":
                end = spec.end if spec.size is not None else spec.offset + len(value)
                body.extend(bytes(max(0, end - len(body))))
                body[spec.offset : end] = value
                continue
            body.extend(bytes(max(0, spec.end - len(body))))
            size = spec.end - spec.offset
            # sint: two's complement of the whole container; otherwise OR the bit field in
            bits = value % (1 << 8 * size) if spec.kind == "sint" else int(value) << spec.lsb
            container = int.from_bytes(body[spec.offset : spec.end], "little") | bits
            body[spec.offset : spec.end] = container.to_bytes(size, "little")
        return bytes(body)

    def to_bytes(self) -> bytes:
        return bytes([self.CID]) + self._encode_payload()

    @classmethod
    def decode(cls, data: bytes, start: int) -> tuple[Self, int]:
        """Decode the payload that begins at data[start] (just after the CID).

        Returns the command and the index just past it.
        """
        available = len(data) - start
        body = data[start:]
        values: dict[str, Any] = {}
        needed = 0
        deferred = []
        for name, spec in _wire_fields(cls):
            if spec.present_if is not None:
                deferred.append((name, spec))
            elif spec.size is None:
                values[name] = _read(spec, body)
                needed = max(needed, available)
            else:
                needed = max(needed, spec.end)
        cls._require(available, needed)
        for name, spec in _wire_fields(cls):
            if spec.present_if is None and spec.size is not None:
                values[name] = _read(spec, body)
        for name, spec in deferred:
            if spec.present_if(values):  # type: ignore[misc]
                needed = max(needed, spec.end)
                cls._require(available, needed)
                values[name] = _read(spec, body)
            else:
                values[name] = None
        return cls(**values), start + needed

    @classmethod
    def _require(cls, available: int, needed: int) -> None:
        if available < needed:
            raise FuotaCodecError(
                f"{cls.__name__} (CID 0x{cls.CID:02x}) needs {needed} payload octets, got {available}"
            )


@dataclass(frozen=True, kw_only=True)
class PackageVersionReq(Command):
    """CID 0x00 downlink in every package: no payload."""

    CID: ClassVar[int] = 0x00


@dataclass(frozen=True, kw_only=True)
class PackageVersionAns(Command):
    """CID 0x00 uplink in every package."""

    CID: ClassVar[int] = 0x00
    package_identifier: int = uint(0, 1)
    package_version: int = uint(1, 1)


@dataclass(frozen=True)
class Package:
    """One application-layer package: its FPort, identity and the command tables per direction."""

    name: str
    fport: int
    identifier: int
    version: int
    downlink_commands: tuple[type[Command], ...]
    uplink_commands: tuple[type[Command], ...]

    def version_answer(self) -> PackageVersionAns:
        return PackageVersionAns(package_identifier=self.identifier, package_version=self.version)

    def parse_downlink(self, frm_payload: bytes) -> list[Command]:
        """Commands sent by the server (application server → end device)."""
        return self._parse(frm_payload, self.downlink_commands, "downlink")

    def parse_uplink(self, frm_payload: bytes) -> list[Command]:
        """Commands sent by the end device."""
        return self._parse(frm_payload, self.uplink_commands, "uplink")

    @staticmethod
    def encode(commands: Iterable[Command]) -> bytes:
        """Concatenate commands into one FRMPayload."""
        return b"".join(command.to_bytes() for command in commands)

    def _parse(self, data: bytes, table: tuple[type[Command], ...], direction: str) -> list[Command]:
        by_cid = {command.CID: command for command in table}
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise FuotaCodecError(f"{self.name}: FRMPayload must be bytes, got {type(data).__name__}")
        data = bytes(data)
        if not data:
            raise FuotaCodecError(f"{self.name}: empty {direction} FRMPayload")
        commands: list[Command] = []
        index = 0
        while index < len(data):
            cid = data[index]
            command_type = by_cid.get(cid)
            if command_type is None:
                raise FuotaCodecError(
                    f"{self.name}: unknown {direction} CID 0x{cid:02x} at octet {index}"
                )
            command, index = command_type.decode(data, index + 1)
            commands.append(command)
        return commands

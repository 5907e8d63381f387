"""Field helpers shared by the LoRaWAN codecs: range checks and little-endian integers."""

from __future__ import annotations

from .errors import FrameTooShortError, LoRaWANError


def check_uint(name: str, value: int, bits: int) -> int:
    """Return ``value`` if it is an int in [0, 2**bits), else raise LoRaWANError."""
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 1 << bits:
        raise LoRaWANError(f"{name} must be an unsigned {bits}-bit integer, got {value!r}")
    return value


def to_le(name: str, value: int, size: int) -> bytes:
    """``value`` as ``size`` little-endian octets (all LoRaWAN multi-octet fields are LE)."""
    return check_uint(name, value, 8 * size).to_bytes(size, "little")


def need(what: str, data: bytes, size: int) -> None:
    """Raise FrameTooShortError unless ``data`` holds at least ``size`` octets."""
    if len(data) < size:
        raise FrameTooShortError(f"{what} needs {size} octets, got {len(data)}")

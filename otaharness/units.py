"""Sizes and durations as scenarios write them: '4 KiB', '700 bytes', '30 minutes', '250 ms'."""

from __future__ import annotations

import re

_BYTES = {
    "b": 1, "byte": 1, "bytes": 1,
    "kb": 1000, "mb": 1000**2, "gb": 1000**3,
    "kib": 1024, "mib": 1024**2, "gib": 1024**3,
}
_SECONDS = {
    "ms": 0.001, "millisecond": 0.001, "milliseconds": 0.001,
    "s": 1.0, "sec": 1.0, "second": 1.0, "seconds": 1.0,
    "min": 60.0, "minute": 60.0, "minutes": 60.0,
    "h": 3600.0, "hour": 3600.0, "hours": 3600.0,
    "d": 86400.0, "day": 86400.0, "days": 86400.0,
    "week": 604800.0, "weeks": 604800.0,
}
_QUANTITY = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([A-Za-z]+)\s*$")


def _quantity(text: str, units: dict[str, float] | dict[str, int], kind: str,
              examples: str) -> float:
    match = _QUANTITY.match(text)
    if match is None:
        raise ValueError(f"not a {kind}: {text!r} (try {examples})")
    if match[2].lower() not in units:
        raise ValueError(f"unknown unit {match[2]!r} in {kind} {text!r} (try {examples})")
    return float(match[1]) * units[match[2].lower()]


def parse_size(text: str) -> int:
    """'4 KiB', '700 bytes', '1 MB' → bytes (a whole number)."""
    size = _quantity(text, _BYTES, "size", "'700 bytes', '4 KiB', '1 MiB'")
    if size != int(size):
        raise ValueError(f"a size must fall on a whole byte, not {size} ({text!r})")
    return int(size)


def parse_rate(text: str) -> float:
    """'1 KiB/s', '10 kB per second' → bytes per second."""
    amount = re.sub(r"\s*(/s|per second)\s*$", "", text.strip())
    if amount == text.strip():
        raise ValueError(f"not a rate: {text!r} (try '1 KiB/s')")
    return _quantity(amount, _BYTES, "rate", "'1 KiB/s', '10 kB per second'")


def parse_duration(text: str) -> float:
    """'30 minutes', '1 hour', '2 days', '90 s', '250 ms' → seconds."""
    return _quantity(text, _SECONDS, "duration", "'30 minutes', '2 hours', '3 days'")

"""Link faults: what the runtime proxy can do to one device's TCP traffic.

A fault is a small frozen value; the proxy (``runtime/proxy.py``) interprets it. Every flow shares
this vocabulary, and feature files name faults with the phrases ``parse_link_fault`` reads, e.g.
``cut after 4 KiB``, ``delayed by 2 seconds``, ``throttled to 1 KiB/s``, ``dropped``, ``refused``.
Device faults (reboot, power cut) live with the emulators, not here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass


class LinkFaultError(ValueError):
    """A link fault that cannot exist, or a step phrase that names none."""


@dataclass(frozen=True)
class Drop:
    """Black hole: connections stay open, data in both directions is swallowed.

    A peer's orderly close (FIN) still passes, so connections do not pile up behind the hole.
    """


@dataclass(frozen=True)
class Delay:
    """Every chunk is delivered ``seconds`` later than it arrived, order kept."""

    seconds: float

    def __post_init__(self) -> None:
        if not self.seconds >= 0:
            raise LinkFaultError(f"a delay must be zero or more seconds, not {self.seconds!r}")


@dataclass(frozen=True)
class Throttle:
    """Each direction of each connection carries at most ``bytes_per_second``."""

    bytes_per_second: float

    def __post_init__(self) -> None:
        if not self.bytes_per_second > 0:
            raise LinkFaultError(
                f"a throttle needs a rate above 0 bytes/s, not {self.bytes_per_second!r}"
            )


@dataclass(frozen=True)
class CutAfter:
    """Deliver ``nbytes`` more (both directions counted), then close that connection.

    With ``once`` the fault clears itself after the cut so a reconnect passes; otherwise the
    count starts again and the next ``nbytes`` are cut too.
    """

    nbytes: int
    once: bool = True

    def __post_init__(self) -> None:
        if isinstance(self.nbytes, bool) or not isinstance(self.nbytes, int) or self.nbytes < 0:
            raise LinkFaultError(f"a cut needs a byte count of 0 or more, not {self.nbytes!r}")


@dataclass(frozen=True)
class Refuse:
    """New connections are closed at once, before any byte passes."""


LinkFault = Drop | Delay | Throttle | CutAfter | Refuse

_BYTE_UNITS: dict[str, int] = {
    "b": 1, "byte": 1, "bytes": 1,
    "kb": 1000, "mb": 1000**2, "gb": 1000**3,
    "kib": 1024, "mib": 1024**2, "gib": 1024**3,
}
_SECOND_UNITS: dict[str, float] = {
    "ms": 0.001, "millisecond": 0.001, "milliseconds": 0.001,
    "s": 1.0, "sec": 1.0, "second": 1.0, "seconds": 1.0,
    "min": 60.0, "minute": 60.0, "minutes": 60.0,
}
_NUMBER = r"(\d+(?:\.\d+)?)"
_CUT = re.compile(rf"cut after {_NUMBER} ?([a-z]+)( every time)?")
_DELAY = re.compile(rf"delayed by {_NUMBER} ?([a-z]+)")
_THROTTLE = re.compile(rf"throttled to {_NUMBER} ?([a-z]+)(?:/s| per second)")
_PHRASES_HELP = (
    "'cut after 4 KiB', 'cut after 100 bytes every time', 'delayed by 2 seconds', "
    "'throttled to 1 KiB/s', 'dropped' or 'refused'"
)


def _scaled(number: str, unit: str, units: dict[str, float] | dict[str, int], text: str) -> float:
    if unit not in units:
        raise LinkFaultError(f"unknown unit {unit!r} in link fault {text!r}")
    return float(number) * units[unit]


def parse_link_fault(text: str) -> LinkFault:
    """Read a step phrase such as ``cut after 4 KiB`` into a link fault."""
    phrase = " ".join(text.strip().lower().split())
    if phrase in ("dropped", "drop"):
        return Drop()
    if phrase in ("refused", "refuse"):
        return Refuse()
    if match := _CUT.fullmatch(phrase):
        nbytes = _scaled(match[1], match[2], _BYTE_UNITS, text)
        if nbytes != int(nbytes):
            raise LinkFaultError(f"a cut must fall on a whole byte, not {nbytes} in {text!r}")
        return CutAfter(int(nbytes), once=match[3] is None)
    if match := _DELAY.fullmatch(phrase):
        return Delay(_scaled(match[1], match[2], _SECOND_UNITS, text))
    if match := _THROTTLE.fullmatch(phrase):
        return Throttle(_scaled(match[1], match[2], _BYTE_UNITS, text))
    raise LinkFaultError(f"not a link fault: {text!r}; expected one of {_PHRASES_HELP}")

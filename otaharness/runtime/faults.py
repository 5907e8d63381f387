"""Link faults: what the runtime proxy can do to one device's TCP traffic.

A fault is a small frozen value; the proxy (``runtime/proxy.py``) interprets it. Every flow shares
this vocabulary, and feature files name faults with the phrases ``parse_link_fault`` reads, e.g.
``cut after 4 KiB``, ``delayed by 2 seconds``, ``throttled to 1 KiB/s``, ``dropped``, ``refused``.
How a device reboots or loses power lives with the emulators; *when* a power cut strikes is a
fault here (``PowerCut``: ``power cut at 64 KiB``, ``power cut after 30 s``), so ``otaharness
emulate`` and ``otaharness load`` read the same phrases as scenarios with ``parse_fault`` /
``parse_faults``, and ``parse_device_selection`` reads which devices of a fleet get them
(``25%``, ``1,3,5-7``, ``all``); ``add_fault_arguments`` gives both commands the same options.

Container faults are what the harness can do to a back end running in a docker target
(``runtime/docker_targets.py``): ``paused for 30 seconds`` (it hangs: connections stay open,
nothing is answered, then it carries on), ``restarted`` (stopped and started again; what it keeps
is what its volumes keep), ``killed`` (SIGKILL, down until ``started``), read by
``parse_container_fault``.
"""

from __future__ import annotations

import argparse
import re
from dataclasses import dataclass
from typing import Any

from otaharness.units import parse_duration, parse_rate, parse_size


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

_CUT = re.compile(r"cut after (.+?)( every time)?")
# The scenario phrase ("delayed by 2 seconds") and the imperative a command line reads better
# with ("delay 2 s", "throttle to 1 KiB/s").
_DELAY = re.compile(r"(?:delayed by|delay(?: by)?) (.+)")
_THROTTLE = re.compile(r"(?:throttled|throttle)(?: to)? (.+)")
_PHRASES_HELP = (
    "'cut after 4 KiB', 'cut after 100 bytes every time', 'delayed by 2 seconds', "
    "'throttled to 1 KiB/s', 'dropped' or 'refused'"
)


def parse_link_fault(text: str) -> LinkFault:
    """Read a step phrase such as ``cut after 4 KiB`` into a link fault."""
    phrase = " ".join(text.strip().lower().split())
    if phrase in ("dropped", "drop"):
        return Drop()
    if phrase in ("refused", "refuse"):
        return Refuse()
    try:
        if match := _CUT.fullmatch(phrase):
            return CutAfter(parse_size(match[1]), once=match[2] is None)
        if match := _DELAY.fullmatch(phrase):
            return Delay(parse_duration(match[1]))
        if match := _THROTTLE.fullmatch(phrase):
            return Throttle(parse_rate(match[1]))
    except LinkFaultError:
        raise
    except ValueError as exc:
        raise LinkFaultError(f"in link fault {text!r}: {exc}") from exc
    raise LinkFaultError(f"not a link fault: {text!r}; expected one of {_PHRASES_HELP}")


# -- power cuts and fleets ------------------------------------------------------------------


@dataclass(frozen=True)
class PowerCut:
    """The device loses power once, then boots again after ``off_seconds``: when ``at_bytes``
    have reached it over its links (every connection counted, from its start), or
    ``after_seconds`` after it started. Exactly one of the two is set."""

    at_bytes: int | None = None
    after_seconds: float | None = None
    off_seconds: float = 0.0

    def __post_init__(self) -> None:
        if (self.at_bytes is None) == (self.after_seconds is None):
            raise LinkFaultError("a power cut strikes at a byte count or after a time (one of them)")
        if self.at_bytes is not None and (isinstance(self.at_bytes, bool) or self.at_bytes < 0):
            raise LinkFaultError(f"a power cut's byte count must be 0 or more, not {self.at_bytes!r}")
        if self.after_seconds is not None and not self.after_seconds >= 0:
            raise LinkFaultError(f"a power cut's time must be 0 s or more, not {self.after_seconds!r}")
        if not self.off_seconds >= 0:
            raise LinkFaultError(f"power stays off 0 s or more, not {self.off_seconds!r}")


Fault = LinkFault | PowerCut

_POWER = re.compile(r"power (?:cut|loss|lost|off) (?:at|after) (.+?)(?: for (.+))?")
_FAULT_PHRASES_HELP = (f"{_PHRASES_HELP}, 'power cut at 64 KiB', 'power cut after 30 s' "
                       "(either with 'for 5 s' of power off)")


def parse_fault(text: str) -> Fault:
    """Read ``power cut at 64 KiB``, ``power cut after 30 s for 5 s`` or any link fault phrase
    (``cut after 40 KiB``, ``throttled to 1 KiB/s``, ...) into a fault."""
    phrase = " ".join(text.strip().lower().split())
    match = _POWER.fullmatch(phrase)
    if match is None:
        if phrase.startswith("power"):
            raise LinkFaultError(f"not a power cut: {text!r}; try 'power cut at 64 KiB' or "
                                 "'power cut after 30 s'")
        try:
            return parse_link_fault(phrase)
        except LinkFaultError as exc:
            if str(exc).startswith("not a link fault"):
                raise LinkFaultError(f"not a fault: {text!r}; expected one of "
                                     f"{_FAULT_PHRASES_HELP}") from None
            raise
    when, off = match[1], match[2]
    try:
        off_seconds = parse_duration(off) if off else 0.0
        try:
            return PowerCut(at_bytes=parse_size(when), off_seconds=off_seconds)
        except ValueError as size_error:
            try:
                return PowerCut(after_seconds=parse_duration(when), off_seconds=off_seconds)
            except ValueError:
                raise size_error from None
    except LinkFaultError:
        raise
    except ValueError as exc:
        raise LinkFaultError(f"in power cut {text!r}: {exc} (a size such as '64 KiB' or a time "
                             "such as '30 s')") from exc


@dataclass(frozen=True)
class FaultPlan:
    """What one device suffers: at most one link fault and at most one power cut."""

    link: LinkFault | None = None
    power: PowerCut | None = None

    def __bool__(self) -> bool:
        return self.link is not None or self.power is not None

    def describe(self) -> str:
        return ", ".join(_describe(fault) for fault in (self.link, self.power) if fault) or "none"


def parse_faults(texts: list[str] | tuple[str, ...]) -> FaultPlan:
    """Several ``--fault`` phrases into one plan; two link faults or two power cuts are refused."""
    link: LinkFault | None = None
    power: PowerCut | None = None
    for text in texts:
        fault = parse_fault(text)
        if isinstance(fault, PowerCut):
            if power is not None:
                raise LinkFaultError(f"two power cuts: {_describe(power)!r} and {text!r}")
            power = fault
        else:
            if link is not None:
                raise LinkFaultError(f"two link faults: {_describe(link)!r} and {text!r}; a link "
                                     "carries one fault at a time")
            link = fault
    return FaultPlan(link, power)


def _describe(fault: Fault) -> str:
    """The phrase ``parse_fault`` reads back into ``fault``."""
    match fault:
        case Drop():
            return "dropped"
        case Refuse():
            return "refused"
        case Delay(seconds=seconds):
            return f"delayed by {seconds:g} s"
        case Throttle(bytes_per_second=rate):
            return f"throttled to {rate:g} bytes/s"
        case CutAfter(nbytes=nbytes, once=once):
            return f"cut after {nbytes} bytes" + ("" if once else " every time")
        case PowerCut(at_bytes=at_bytes, after_seconds=after, off_seconds=off):
            when = f"at {at_bytes} bytes" if at_bytes is not None else f"after {after:g} s"
            return f"power cut {when}" + (f" for {off:g} s" if off else "")
    raise TypeError(f"not a fault: {fault!r}")


describe_fault = _describe


@dataclass(frozen=True)
class DeviceSelection:
    """Which devices of a fleet (numbered from 1) get a fault: ``numbers`` listed, or a
    ``percent`` spread evenly over the fleet — device n is chosen when floor(n * p / 100) grows,
    so any first N devices hold floor(N * p / 100) chosen ones and no fleet size is needed
    (a distributed fleet numbers its devices across workers)."""

    percent: float | None = None
    numbers: frozenset[int] = frozenset()

    def selects(self, number: int) -> bool:
        if self.percent is not None:
            return (number * self.percent) // 100 > ((number - 1) * self.percent) // 100
        return number in self.numbers


ALL_DEVICES = DeviceSelection(percent=100.0)
_RANGE = re.compile(r"(\d+)(?:\s*-\s*(\d+))?")


def parse_device_selection(text: str) -> DeviceSelection:
    """``25%``, ``all``, or device numbers and ranges ``1,3,5-7`` (devices count from 1)."""
    phrase = text.strip().lower()
    if phrase in ("all", "100%"):
        return ALL_DEVICES
    if phrase.endswith("%"):
        try:
            percent = float(phrase[:-1])
        except ValueError:
            percent = -1.0
        if not 0 <= percent <= 100:
            raise LinkFaultError(f"not a share of the fleet: {text!r} (try '25%')")
        return DeviceSelection(percent=percent)
    numbers: set[int] = set()
    for part in phrase.split(","):
        match = _RANGE.fullmatch(part.strip())
        if match is None:
            raise LinkFaultError(f"not a device list: {text!r} (try '25%', 'all' or '1,3,5-7'; "
                                 "devices count from 1)")
        first, last = int(match[1]), int(match[2] or match[1])
        if first < 1 or last < first:
            raise LinkFaultError(f"not a device range: {part.strip()!r} in {text!r} (devices "
                                 "count from 1)")
        numbers.update(range(first, last + 1))
    return DeviceSelection(numbers=frozenset(numbers))


# -- container faults -----------------------------------------------------------------------


@dataclass(frozen=True)
class Pause:
    """The container's processes are frozen (cgroup freezer) for ``seconds``, then thawed."""

    seconds: float

    def __post_init__(self) -> None:
        if not self.seconds > 0:
            raise LinkFaultError(f"a pause needs a duration above 0 seconds, not {self.seconds!r}")


@dataclass(frozen=True)
class Restart:
    """Stopped (SIGTERM, then SIGKILL after 10 s) and started again, then ready again."""


@dataclass(frozen=True)
class Kill:
    """SIGKILL: down until started again."""


@dataclass(frozen=True)
class Start:
    """Started again after a kill, then ready again."""


ContainerFault = Pause | Restart | Kill | Start

_PAUSE = re.compile(r"paused for (.+)")
_CONTAINER_PHRASES_HELP = "'paused for 30 seconds', 'restarted', 'killed' or 'started'"


def parse_container_fault(text: str) -> ContainerFault:
    """Read a step phrase such as ``paused for 30 seconds`` into a container fault."""
    phrase = " ".join(text.strip().lower().split())
    simple = {"restarted": Restart(), "killed": Kill(), "started": Start(),
              "started again": Start()}
    if phrase in simple:
        return simple[phrase]
    if match := _PAUSE.fullmatch(phrase):
        try:
            return Pause(parse_duration(match[1]))
        except LinkFaultError:
            raise
        except ValueError as exc:
            raise LinkFaultError(f"in container fault {text!r}: {exc}") from exc
    raise LinkFaultError(f"not a container fault: {text!r}; expected one of "
                         f"{_CONTAINER_PHRASES_HELP}")


# -- the same phrases as command-line options (emulate, load) ------------------------------------

def _checked_by(parse: Any) -> Any:
    """An argparse type that keeps the text once ``parse`` reads it (its error, as argparse's)."""

    def check(text: str) -> str:
        try:
            parse(text)
        except LinkFaultError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None
        return text

    check.__name__ = parse.__name__.removeprefix("parse_")
    return check


_fault_phrase = _checked_by(parse_fault)
_device_selection = _checked_by(parse_device_selection)


def add_fault_arguments(group: Any, *, devices_counted: str = "devices count from 1") -> None:
    """--fault, --fault-devices and --fault-endpoint, in the scenarios' phrases, for ``emulate``
    and ``load`` alike; ``devices_counted`` says how a list's numbers count the devices."""
    group.add_argument("--fault", action="append", default=[], type=_fault_phrase, metavar="PHRASE",
                       help="a link fault: 'cut after 40 KiB', 'cut after 4 KiB every time', "
                       "'throttled to 1 KiB/s', 'delayed by 2 s', 'dropped', 'refused'; or a "
                       "power cut: 'power cut at 64 KiB' (bytes received by the device), "
                       "'power cut after 30 s' (from its start), either with 'for 5 s' off. "
                       "Repeat for one link fault and one power cut")
    group.add_argument("--fault-devices", default="all", type=_device_selection,
                       metavar="SHARE|LIST",
                       help="which devices get the faults: '25%%' (spread evenly), '1,3,5-7' "
                       f"({devices_counted}) or 'all' (default)")
    group.add_argument("--fault-endpoint", metavar="HOST:PORT",
                       help="put the link fault only on the link to this endpoint (default: "
                       "every endpoint the device reaches)")

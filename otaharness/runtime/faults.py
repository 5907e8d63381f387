"""Link faults: what the runtime proxy can do to one device's TCP traffic.

A fault is a small frozen value; the proxy (``runtime/proxy.py``) interprets it. Every flow shares
this vocabulary, and feature files name faults with the phrases ``parse_link_fault`` reads, e.g.
``cut after 4 KiB``, ``delayed by 2 seconds``, ``throttled to 1 KiB/s``, ``dropped``, ``refused``.
Device faults (reboot, power cut) live with the emulators, not here.

Container faults are what the harness can do to a back end running in a docker target
(``runtime/docker_targets.py``): ``paused for 30 seconds`` (it hangs: connections stay open,
nothing is answered, then it carries on), ``restarted`` (stopped and started again; what it keeps
is what its volumes keep), ``killed`` (SIGKILL, down until ``started``), read by
``parse_container_fault``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

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
_DELAY = re.compile(r"delayed by (.+)")
_THROTTLE = re.compile(r"throttled to (.+)")
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

"""Upgrade-batch windows: the days and hours a batch may start upgrades, in its time zone.

Splynx's batch has "Days" and "Hours" fields (seed 002); a device qualifies at an Inform whose
local time (batch time zone, UTC by default) falls on one of the days and in one of the hours.
The per-day cap counts devices whose upgrade started in the same local calendar day.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Iterable
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

DAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
ALL_DAYS = list(DAY_NAMES)
ALL_HOURS = list(range(24))


class ScheduleError(ValueError):
    """A batch's days, hours or time zone cannot be understood."""


def parse_days(days: Iterable[str | int] | None) -> list[str]:
    """Day names ("Mon", "monday", "mon") or ISO numbers 1-7 -> sorted short names."""
    if days is None:
        return ALL_DAYS
    result = set()
    for day in days:
        if isinstance(day, int) and not isinstance(day, bool) and 1 <= day <= 7:
            result.add(DAY_NAMES[day - 1])
            continue
        short = str(day).strip().lower()[:3]
        if short not in DAY_NAMES:
            raise ScheduleError(f"not a day of the week: {day!r}")
        result.add(short)
    if not result:
        raise ScheduleError("a batch needs at least one day")
    return [d for d in DAY_NAMES if d in result]


def parse_hours(hours: Iterable[int | str] | None) -> list[int]:
    """Hours of the day 0-23, or ranges "2-5" (inclusive) -> sorted hours."""
    if hours is None:
        return ALL_HOURS
    result: set[int] = set()
    for hour in hours:
        text = str(hour).strip()
        first, dash, last = text.partition("-")
        try:
            low, high = int(first), int(last if dash else first)
        except ValueError:
            raise ScheduleError(f"not an hour or hour range: {hour!r}") from None
        if not (0 <= low <= high <= 23):
            raise ScheduleError(f"hours must be within 0-23: {hour!r}")
        result.update(range(low, high + 1))
    if not result:
        raise ScheduleError("a batch needs at least one hour")
    return sorted(result)


@functools.cache
def time_zone_names() -> tuple[str, ...]:
    """The names a batch's time zone may have: this system's IANA tz database, and UTC."""
    return tuple(sorted(available_timezones() | {"UTC"}))


def known_zone(name: str | None) -> str:
    """The time zone name a batch stores; empty or None means UTC. An IANA name, else
    :class:`ScheduleError` (so no file path or odd key ever reaches ZoneInfo)."""
    if not name or (isinstance(name, str) and name.upper() == "UTC"):
        return "UTC"
    if not isinstance(name, str) or name not in time_zone_names():
        raise ScheduleError(f"unknown time zone {str(name)[:64]!r}: an IANA name such as "
                            f"Europe/Berlin, or UTC")
    return name


def zone(name: str | None) -> dt.tzinfo:
    if not name or name.upper() == "UTC":
        return dt.timezone.utc
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise ScheduleError(f"unknown time zone {name!r}") from None


def in_window(epoch: float, days: list[str], hours: list[int], tz_name: str | None) -> bool:
    local = dt.datetime.fromtimestamp(epoch, zone(tz_name))
    return DAY_NAMES[local.weekday()] in days and local.hour in hours


def local_day_bounds(epoch: float, tz_name: str | None) -> tuple[float, float]:
    """UNIX times of the start of the local day holding ``epoch`` and of the next day."""
    tz = zone(tz_name)
    local = dt.datetime.fromtimestamp(epoch, tz)
    start = dt.datetime.combine(local.date(), dt.time(), tz)
    end = dt.datetime.combine(local.date() + dt.timedelta(days=1), dt.time(), tz)
    return start.timestamp(), end.timestamp()

"""Lexical forms of the XSD simple types CWMP uses (xs:dateTime, xs:boolean, integers)."""

from __future__ import annotations

import base64
import binascii
import re
from datetime import datetime, timezone

from .errors import InvalidArguments

# TR-069 §3.2.1 (A.2.1): a time that is unknown or not applicable is 0001-01-01T00:00:00Z.
UNKNOWN_TIME = datetime(1, 1, 1, tzinfo=timezone.utc)

# xs:dateTime lexical form (XML Schema Part 2 §3.2.7.1). Time zone optional: without one the
# value is "local" time, kept as a naive datetime so that it round-trips unchanged.
_DATETIME = re.compile(
    r"(?P<date>\d{4}-\d{2}-\d{2})T(?P<time>\d{2}:\d{2}:\d{2})(?:\.(?P<fraction>\d+))?"
    r"(?P<zone>Z|[+-]\d{2}:\d{2})?"
)

UNSIGNED_INT_RANGE = range(0, 2**32)
INT_RANGE = range(-(2**31), 2**31)
# The widest CWMP integer is xsd:unsignedLong (20 digits); leading zeros are allowed, so a
# little more. Beyond it Python's int() would refuse (4300 digits) with a plain ValueError.
MAX_INTEGER_DIGITS = 64


def parse_datetime(text: str) -> datetime:
    match = _DATETIME.fullmatch(text.strip())
    if match is None:
        raise InvalidArguments(f"not an xs:dateTime: {text!r}")
    microseconds = (match["fraction"] or "").ljust(6, "0")[:6]  # Python keeps 6 digits
    zone = match["zone"] or ""
    try:
        return datetime.fromisoformat(f"{match['date']}T{match['time']}.{microseconds}{zone}")
    except ValueError as exc:  # e.g. month 13, or 24:00:00 which Python cannot represent
        raise InvalidArguments(f"not a valid xs:dateTime: {text!r} ({exc})") from None


def format_datetime(value: datetime) -> str:
    """xs:dateTime; UTC as ``Z``, milliseconds when they are whole (the form peers send)."""
    if value.microsecond == 0:
        timespec = "seconds"
    elif value.microsecond % 1000 == 0:
        timespec = "milliseconds"
    else:
        timespec = "microseconds"
    # isoformat, not strftime: glibc's %Y does not zero-pad year 1 of UNKNOWN_TIME.
    text = value.replace(tzinfo=None).isoformat(timespec=timespec)
    offset = value.utcoffset()
    if offset is None:
        return text
    if not offset:
        return text + "Z"
    minutes = int(offset.total_seconds()) // 60
    sign = "+" if minutes >= 0 else "-"
    return f"{text}{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"


def parse_boolean(text: str) -> bool:
    word = text.strip().lower()  # "TRUE"/"True" are not XSD but real devices send them
    if word in ("true", "1"):
        return True
    if word in ("false", "0"):
        return False
    raise InvalidArguments(f"not an xs:boolean: {text!r}")


def format_boolean(value: bool) -> str:
    # 1/0 rather than true/false: both are xs:boolean, and some CPE parsers know only digits.
    return "1" if value else "0"


def parse_integer(text: str) -> int:
    stripped = text.strip()
    if not re.fullmatch(r"[+-]?[0-9]+", stripped):
        raise InvalidArguments(f"not an integer: {text[:80]!r}")
    if len(stripped.lstrip("+-")) > MAX_INTEGER_DIGITS:
        raise InvalidArguments(f"integer of {len(stripped)} digits is out of range")
    return int(stripped)


def _is_integer_in(text: str, allowed: range) -> bool:
    try:
        return parse_integer(text) in allowed
    except InvalidArguments:
        return False


def _is_datetime(text: str) -> bool:
    try:
        parse_datetime(text)
    except InvalidArguments:
        return False
    return True


def _is_base64(text: str) -> bool:
    try:
        base64.b64decode("".join(text.split()), validate=True)
    except (binascii.Error, ValueError):  # ValueError: not ASCII at all
        return False
    return True


# Lexical checks for the xsi:type values TR-106 data models use on ParameterValueStruct/Value.
_VALUE_CHECKS = {
    "xsd:string": lambda text: True,
    "xsd:int": lambda text: _is_integer_in(text, INT_RANGE),
    "xsd:unsignedInt": lambda text: _is_integer_in(text, UNSIGNED_INT_RANGE),
    "xsd:long": lambda text: _is_integer_in(text, range(-(2**63), 2**63)),
    "xsd:unsignedLong": lambda text: _is_integer_in(text, range(0, 2**64)),
    "xsd:boolean": lambda text: text.strip() in ("true", "false", "1", "0"),
    "xsd:dateTime": _is_datetime,
    "xsd:base64": _is_base64,
    "xsd:base64Binary": _is_base64,
    "xsd:hexBinary": lambda text: re.fullmatch(r"([0-9a-fA-F]{2})*", text.strip()) is not None,
}


def check_typed_value(value: str, value_type: str) -> None:
    """Raise if ``value`` is not a lexical value of ``value_type`` (unknown types pass)."""
    check = _VALUE_CHECKS.get(value_type)
    if check is not None and not check(value):
        raise InvalidArguments(f"{value!r} is not a valid {value_type}")

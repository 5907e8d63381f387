"""64-bit EUIs in the text forms the station writes and reads (basicstation 2.0.6).

Writes (``src/uj.c``):

* ``format_eui`` — ``XX-XX-XX-XX-XX-XX-XX-XX``, uppercase (``encEui``): ``DevEui``/``JoinEui`` in
  ``jreq``, ``DevEui`` in ``dntxed``.
* ``format_id6`` — ID6 (``encId6``): four 16-bit groups, lowercase hex without leading zeros,
  ``:``-separated, with ``::`` standing for exactly two or three zero groups in these fixed cases
  only (checked in this order):

  ========================== ============== =========================
  groups g0 g1 g2 g3          form           example
  ========================== ============== =========================
  g0 = g1 = 0, g2 = 0         ``::g3``       ``::0``, ``::1``
  g0 = g1 = 0                 ``::g2:g3``    ``::2:1``
  g2 = g3 = 0, g1 = 0         ``g0::``       ``4::``
  g2 = g3 = 0                 ``g0:g1::``    ``4:3::``
  g1 = g2 = 0                 ``g0::g3``     ``4::1``
  otherwise                   ``g0:g1:g2:g3`` ``0:3:2:0`` (no compression of a single zero group)
  ========================== ============== =========================

  ID6 is what the station puts in ``router`` (CUPS request, router-info request).

Reads:

* ``parse_eui`` — ``rt_readEui`` (``src/rt.c``), used for EUIs in config/command line and by
  our servers for the ``router`` field: hex digits with optional ``-`` or ``:`` separators
  (never both); 2 or 3 colons mean ID6; otherwise the separators are ignored and the digits
  read as one hex number (so ``12:34:56:78:9a`` = 0x123456789A, and, a station quirk kept here,
  ``::1:2:3`` with four colons = 0x123).
* ``decode_json_eui`` — ``uj_eui`` (``src/uj.c``), used for ``DevEui`` in ``dnmsg``/``dnframe``:
  a JSON number, or hex byte pairs each optionally followed by ``-``. No colons, no ID6.
"""

from __future__ import annotations

import re

from .errors import BasicsStationCodecError

EUI_BITS = 64
EUI_MASK = (1 << EUI_BITS) - 1
_HEX_GROUP = re.compile(r"[0-9A-Fa-f]{1,4}")
_HEX_DIGITS = "0123456789abcdefABCDEF"


def _eui_text_pattern() -> str:
    """A regular expression (ECMA 262 and Python alike) of exactly the texts ``parse_eui`` reads,
    for JSON Schema and OpenAPI documents: 1..16 hex digits with at most 7 ``-`` (never mixed with
    ``:``) or with 0, 1 or 4..7 ``:`` anywhere; or ID6 (2 or 3 colons, groups of 1..4 digits)."""
    hex_digit, other = "[0-9A-Fa-f]", "[^0-9A-Fa-f]"
    digits = f"(?=(?:{other}*{hex_digit}){{1,16}}{other}*$)"
    dashed = f"{digits}(?=(?:[^-]*-){{0,7}}[^-]*$)[0-9A-Fa-f-]+"
    coloned = f"{digits}(?=[^:]*(?::[^:]*)?$|(?:[^:]*:){{4,7}}[^:]*$)[0-9A-Fa-f:]+"
    g = "[0-9A-Fa-f]{1,4}"
    id6 = "|".join((f"{g}:{g}:{g}", f"::{g}", f"{g}::", f"{g}::{g}", f"{g}:{g}:{g}:{g}", f"::{g}:{g}",
                    f"{g}:{g}::", f"{g}::{g}:{g}", f"{g}:{g}::{g}"))
    return f"^(?:{dashed}|{coloned}|{id6})$"


EUI_TEXT_PATTERN = _eui_text_pattern()


def _check_eui(eui: int) -> int:
    if isinstance(eui, bool) or not isinstance(eui, int) or not 0 <= eui <= EUI_MASK:
        raise BasicsStationCodecError(f"EUI must be an int in 0..2**64-1, got {eui!r}")
    return eui


def format_eui(eui: int, separator: str = "-") -> str:
    """Eight uppercase hex bytes joined by ``separator`` ("-" as the station, ":" or "")."""
    if separator not in ("-", ":", ""):
        raise BasicsStationCodecError(f"EUI separator must be '-', ':' or '', got {separator!r}")
    return separator.join(f"{byte:02X}" for byte in _check_eui(eui).to_bytes(8, "big"))


def format_id6(eui: int) -> str:
    """ID6 text exactly as ``encId6`` writes it (see the module table)."""
    g0, g1, g2, g3 = ((_check_eui(eui) >> shift) & 0xFFFF for shift in (48, 32, 16, 0))
    if g0 == 0 and g1 == 0:
        return f"::{g3:x}" if g2 == 0 else f"::{g2:x}:{g3:x}"
    if g2 == 0 and g3 == 0:
        return f"{g0:x}::" if g1 == 0 else f"{g0:x}:{g1:x}::"
    if g1 == 0 and g2 == 0:
        return f"{g0:x}::{g3:x}"
    return f"{g0:x}:{g1:x}:{g2:x}:{g3:x}"


def _id6_fragment(text: str, whole: str) -> tuple[int, int]:
    """Groups of 1-4 hex digits joined by single colons -> (value, bit count)."""
    value = 0
    groups = text.split(":")
    for group in groups:
        if not _HEX_GROUP.fullmatch(group):
            raise BasicsStationCodecError(
                f"malformed ID6 {whole!r}: each group needs 1 to 4 hex digits, got {group!r}"
            )
        value = (value << 16) | int(group, 16)
    return value, 16 * len(groups)


def _parse_id6(text: str) -> int:
    # rt_readEui: the first "::" splits the text; a missing "::" leaves the value right-aligned
    # (a station quirk: "1:2:3" = 0x0000000100020003).
    head, double_colon, tail = text.partition("::")
    if not double_colon:
        return _id6_fragment(text, text)[0]
    if not head:
        return _id6_fragment(tail, text)[0]
    head_value, head_bits = _id6_fragment(head, text)
    tail_value = _id6_fragment(tail, text)[0] if tail else 0
    return (head_value << (EUI_BITS - head_bits)) | tail_value


def parse_eui(text: str) -> int:
    """Read a whole string as ``rt_readEui`` does (ID6, ``-``/``:`` separated, or plain hex)."""
    if not isinstance(text, str):
        raise BasicsStationCodecError(f"EUI text must be a str, got {type(text).__name__}")
    for char in text:
        if char not in _HEX_DIGITS and char not in "-:":
            raise BasicsStationCodecError(f"EUI {text!r} contains {char!r}: only hex digits, '-' and ':'")
    dashes, colons = text.count("-"), text.count(":")
    hex_digits = len(text) - dashes - colons
    if hex_digits == 0:
        raise BasicsStationCodecError(f"EUI {text!r} has no hex digits")
    if dashes and colons:
        raise BasicsStationCodecError(f"EUI {text!r} mixes '-' and ':'")
    if dashes > 7 or colons > 7:
        raise BasicsStationCodecError(f"EUI {text!r} has more than 7 separators")
    if hex_digits > 16:
        raise BasicsStationCodecError(f"EUI {text!r} has more than 16 hex digits")
    if colons in (2, 3):
        return _parse_id6(text)
    # Missing digits are leading zeros; separators may sit anywhere.
    return int(text.replace("-", "").replace(":", ""), 16)


def decode_json_eui(value: int | str) -> int:
    """A JSON EUI value (``DevEui``) as ``uj_eui`` reads it: number, or hex pairs with optional '-'."""
    if isinstance(value, bool):
        raise BasicsStationCodecError("EUI must be a number or a string, got a boolean")
    if isinstance(value, int):
        if not -(1 << 63) <= value <= EUI_MASK:
            raise BasicsStationCodecError(f"EUI number {value} does not fit in 64 bits")
        return value & EUI_MASK
    if not isinstance(value, str):
        raise BasicsStationCodecError(f"EUI must be a number or a string, got {type(value).__name__}")
    eui, index = 0, 0
    while index < len(value):
        pair = value[index:index + 2]
        if len(pair) != 2 or any(char not in _HEX_DIGITS for char in pair):
            raise BasicsStationCodecError(f"EUI {value!r} contains illegal hex characters: {pair!r}")
        eui = ((eui << 8) | int(pair, 16)) & EUI_MASK  # more than 8 bytes: leading ones drop off
        index += 2
        if value[index:index + 1] == "-":
            index += 1
    return eui


def router_eui(value: int | str) -> int:
    """The ``router`` field of a CUPS or router-info request (server side).

    The station sends an ID6 string; other clients send an EUI string or a plain JSON number
    (the Azure simulator does), so all are accepted as the reference servers do.
    """
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise BasicsStationCodecError(f"'router' must be a string or a number, got {type(value).__name__}")
    if isinstance(value, int):
        return decode_json_eui(value)
    return parse_eui(value)

"""JSON text exactly as the station's encoder (``uj_enc*`` in ``src/uj.c``) writes it.

Only the messages the station *sends* go through here (CUPS request, router-info request,
``version``), because the harness compares them byte for byte with captures from the real
station. Differences from ``json.dumps``: no spaces at all, key order as given, non-ASCII bytes
raw, and control characters as ``\\u00XX`` with *uppercase* hex (``addHex2``). Floats never
occur in those messages, so they are refused rather than guessed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from .errors import BasicsStationCodecError

# uj_encStr: these five get a short escape, '"' and '\\' a backslash, other C0 controls \u00XX.
_SHORT_ESCAPES = {"\b": "b", "\f": "f", "\n": "n", "\r": "r", "\t": "t", '"': '"', "\\": "\\"}

StationJsonValue = None | bool | int | str | Sequence["StationJsonValue"] | Mapping[str, "StationJsonValue"]


def _encode_string(text: str) -> str:
    out = ['"']
    for char in text:
        if char in _SHORT_ESCAPES:
            out.append("\\" + _SHORT_ESCAPES[char])
        elif ord(char) < 0x20:
            out.append(f"\\u00{ord(char):02X}")
        else:
            out.append(char)
    out.append('"')
    return "".join(out)


def encode_station_json(value: StationJsonValue) -> str:
    """Compact JSON text as the station writes it (dict insertion order is kept)."""
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return _encode_string(value)
    if isinstance(value, Mapping):
        return "{" + ",".join(
            _encode_string(key) + ":" + encode_station_json(item) for key, item in value.items()
        ) + "}"
    if isinstance(value, Sequence):
        return "[" + ",".join(encode_station_json(item) for item in value) + "]"
    raise BasicsStationCodecError(
        f"cannot encode {type(value).__name__} as station JSON (only null, bool, int, str, list, object)"
    )

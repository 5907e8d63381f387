"""Field checks shared by the JSON messages (CUPS request, LNS messages).

JSON text is read with the project's one JSON reader (``otaharness.protocols.json_input``):
its limits (size, nesting depth, NaN/Infinity, number range) hold for every message decoded
here, and its refusals become :class:`BasicsStationCodecError` like any other malformed input.
"""

from __future__ import annotations

import json
from typing import Any

from otaharness.protocols.json_input import JsonInputError, parse_json

from .errors import BasicsStationCodecError

CRC32_MAX = 0xFFFFFFFF

_NOT_JSON = "not JSON: "
_JSON_TYPE_NAMES = {
    str: "string", int: "integer", float: "number", type(None): "null", list: "array", dict: "object",
}


def check_crc32(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= CRC32_MAX:
        raise BasicsStationCodecError(f"{name} must be an unsigned 32-bit int, got {value!r}")
    return value


def json_object(body: bytes | str, what: str) -> dict[str, Any]:
    """Parse ``body`` as one JSON object (within the JSON reader's limits)."""
    try:
        document = parse_json(body)
    except JsonInputError as error:
        if error.path == "$" and error.reason.startswith(_NOT_JSON):
            raise BasicsStationCodecError(f"{what} is not valid JSON: {error.reason[len(_NOT_JSON):]}") from None
        raise BasicsStationCodecError(f"{what} refused: {error}") from None
    if not isinstance(document, dict):
        raise BasicsStationCodecError(f"{what} must be a JSON object, got {type(document).__name__}")
    return document


def integral(value: Any) -> Any:
    """``value``, with a float of integral value (``5.0``, ``1e3``) within 64 bits as the int it
    is: JSON has one number type, and JSON Schema's "integer" includes ``5.0``."""
    if isinstance(value, float) and value.is_integer() and -(2**63) <= value < 2**64:
        return int(value)
    return value


def require_field(document: dict[str, Any], key: str, types: tuple[type, ...]) -> Any:
    """``document[key]``, which must be present and of one of ``types`` (bool is never an int;
    an integral float is an int)."""
    if key not in document:
        raise BasicsStationCodecError(f"missing field {key!r}")
    value = integral(document[key]) if int in types else document[key]
    if isinstance(value, bool) or not isinstance(value, types):
        expected = " or ".join(_JSON_TYPE_NAMES[kind] for kind in types)
        raise BasicsStationCodecError(f"field {key!r} must be {expected}, got {json.dumps(value)}")
    return value


def crc_field(document: dict[str, Any], key: str) -> int:
    return check_crc32(require_field(document, key, (int,)), f"field {key!r}")


def crc_list(values: list[Any]) -> list[int]:
    return [check_crc32(integral(value), "field 'keys' element") for value in values]

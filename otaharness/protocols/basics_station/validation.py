"""Field checks shared by the JSON messages (CUPS request, LNS messages)."""

from __future__ import annotations

import json
from typing import Any

from .errors import BasicsStationCodecError

CRC32_MAX = 0xFFFFFFFF

_JSON_TYPE_NAMES = {
    str: "string", int: "integer", float: "number", type(None): "null", list: "array", dict: "object",
}


def check_crc32(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= CRC32_MAX:
        raise BasicsStationCodecError(f"{name} must be an unsigned 32-bit int, got {value!r}")
    return value


def json_object(body: bytes | str, what: str) -> dict[str, Any]:
    """Parse ``body`` as one JSON object."""
    try:
        document = json.loads(body)
    except (ValueError, UnicodeDecodeError) as error:
        raise BasicsStationCodecError(f"{what} is not valid JSON: {error}") from error
    if not isinstance(document, dict):
        raise BasicsStationCodecError(f"{what} must be a JSON object, got {type(document).__name__}")
    return document


def require_field(document: dict[str, Any], key: str, types: tuple[type, ...]) -> Any:
    """``document[key]``, which must be present and of one of ``types`` (bool is never an int)."""
    if key not in document:
        raise BasicsStationCodecError(f"missing field {key!r}")
    value = document[key]
    if isinstance(value, bool) or not isinstance(value, types):
        expected = " or ".join(_JSON_TYPE_NAMES[kind] for kind in types)
        raise BasicsStationCodecError(f"field {key!r} must be {expected}, got {json.dumps(value)}")
    return value


def crc_field(document: dict[str, Any], key: str) -> int:
    return check_crc32(require_field(document, key, (int,)), f"field {key!r}")


def crc_list(values: list[Any]) -> list[int]:
    return [check_crc32(value, "field 'keys' element") for value in values]

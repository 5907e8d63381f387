"""JSON Schemas of the admin API's request bodies, the one place its input rules live: the API
checks every body against them at the door (``read_body``) and the OpenAPI document
(openapi.py) publishes the same schemas.

Strings are text: no control characters (Unicode Cc) and no lone surrogates (JSON can spell
``"\\ud800"``; no UTF-8 store can hold it). Integers stay within the ranges the ACS stores and
CWMP carries. A refusal is an :class:`~.acs.AcsError` (HTTP 400) naming the field, e.g.
``$.hours[0]: hours are 0-23 or ranges such as "2-5" (got '25')``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from aiohttp import web

from otaharness.protocols.cwmp.codes import DOWNLOAD_FILE_TYPE_PATTERN
from otaharness.protocols.json_input import MAX_BYTES, JsonInputError, parse_json_object, validate

from .acs import AcsError
from .names import MAX_DEVICE_ID, MAX_FILE_NAME_BYTES, MAX_GROUP_NAME
from .schedule import DAY_NAMES

MAX_INT32 = 2**31 - 1
MAX_UNSIGNED_INT = 2**32 - 1  # xsd:unsignedInt: Download's DelaySeconds
MAX_TEXT = 256
MAX_DEVICES_PER_REQUEST = 10_000
# Control characters (Unicode Cc). Lone surrogates are refused in code (``check``): they are
# not Unicode scalar values, so no regex engine but Python's can even name them in a pattern.
TEXT_PATTERN = "^[^\\u0000-\\u001f\\u007f-\\u009f]*$"

FULL_DAY_NAMES = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")


def _any_case(word: str) -> str:
    return "".join(f"[{c.lower()}{c.upper()}]" if c.isalpha() else re.escape(c) for c in word)


def text(max_length: int = MAX_TEXT, min_length: int = 0) -> dict[str, Any]:
    return {"type": "string", "minLength": min_length, "maxLength": max_length,
            "pattern": TEXT_PATTERN}


def _days_pattern() -> str:
    names = [f"{_any_case(short)}(?:{_any_case(full[3:])})?"
             for short, full in zip(DAY_NAMES, FULL_DAY_NAMES)]
    return f"^(?:{'|'.join(names)})$"


_HOUR = "(?:[01]?[0-9]|2[0-3])"
NAME = text(MAX_FILE_NAME_BYTES, 1)
GROUP_NAME = text(MAX_GROUP_NAME, 1)
DEVICE_ID = text(MAX_DEVICE_ID, 1)
VERSION = text(MAX_TEXT, 1)
DAYS = {"type": "array", "minItems": 1, "maxItems": 64, "items": {"oneOf": [
    {"type": "integer", "minimum": 1, "maximum": 7},
    {"type": "string", "pattern": _days_pattern()}]}}
HOURS = {"type": "array", "minItems": 1, "maxItems": 64, "items": {"oneOf": [
    {"type": "integer", "minimum": 0, "maximum": 23},
    {"type": "string", "pattern": f"^{_HOUR}(?:-{_HOUR})?$"}]}}
EVENT = {"type": "string", "pattern": f"^(?:{_any_case('boot')}|{_any_case('inform')})$"}
# The time zone's names are checked in code (known_time_zone): an enum of ~600 names would
# make every other refusal's message that long. The OpenAPI document lists them.
TIME_ZONE = {"type": ["string", "null"], "maxLength": 64}

BATCH_PROPERTIES: dict[str, Any] = {
    "group": GROUP_NAME, "original_version": VERSION, "file": NAME, "new_version": VERSION,
    "days": DAYS, "hours": HOURS, "event": EVENT,
    "max_attempts": {"type": "integer", "minimum": 1, "maximum": MAX_INT32},
    "max_devices_per_day": {"type": "integer", "minimum": 0, "maximum": MAX_INT32},
    "timezone": TIME_ZONE,
}
BATCH_CREATE = {"type": "object", "additionalProperties": False,
                "required": ["group", "original_version", "file", "new_version"],
                "properties": BATCH_PROPERTIES}
BATCH_PATCH = {"type": "object", "additionalProperties": False, "properties": BATCH_PROPERTIES}
GROUP = {"type": "object", "additionalProperties": False, "properties": {
    "oui": text(64), "product_class": text(64),
    "devices": {"type": "array", "maxItems": MAX_DEVICES_PER_REQUEST, "items": DEVICE_ID}}}
UPGRADE_ACTION = {"type": "object", "additionalProperties": False,
                  "required": ["devices", "file"], "properties": {
                      "devices": {"type": "array", "minItems": 1,  # repeats count once
                                  "maxItems": MAX_DEVICES_PER_REQUEST, "items": DEVICE_ID},
                      "file": NAME,
                      "delay_seconds": {"type": "integer", "minimum": 0,
                                        "maximum": MAX_UNSIGNED_INT}}}

# File metadata travels in headers on PUT /files/{name} (GenieACS NBI style).
FILE_TYPE = {"type": "string", "maxLength": 64,
             "pattern": f"^(?:{DOWNLOAD_FILE_TYPE_PATTERN.pattern})?$"}
FILE_HEADERS: dict[str, tuple[str, dict[str, Any]]] = {  # header -> (column, schema)
    "fileType": ("file_type", FILE_TYPE), "oui": ("oui", text(64)),
    "productClass": ("product_class", text(64)), "version": ("version", text(MAX_TEXT))}

# What each field must be, said the way an operator reads it (added to the schema's refusal).
HINTS = {
    "days": "days are day names (Mon, monday) or ISO numbers 1-7, at least one",
    "hours": 'hours are 0-23 or ranges such as "2-5", at least one',
    "event": "event must be Boot or Inform",
    "timezone": "unknown time zone: an IANA name such as Europe/Berlin, or UTC",
    "max_attempts": f"max_attempts must be an integer from 1 to {MAX_INT32}",
    "max_devices_per_day": f"max_devices_per_day must be an integer from 0 (unlimited) to {MAX_INT32}",
    "delay_seconds": f"delay_seconds must be an integer from 0 to {MAX_UNSIGNED_INT}",
    "devices": "devices is a list of device ids (strings)",
}
_STEP = re.compile(r"\.([^.\[]+)|\[(\d+)\]")
_SURROGATE = re.compile("[\ud800-\udfff]")


def _value_at(document: Any, path: str) -> Any:
    value = document
    for key, index in _STEP.findall(path[1:]):
        try:
            value = value[int(index)] if index else value[key]
        except (KeyError, IndexError, TypeError):
            return None
    return value


def _lone_surrogate(value: Any, path: str = "$") -> str | None:
    """Where in ``value`` a string (or key) holds a lone surrogate (JSON can spell ``\\ud800``)."""
    stack = [(value, path)]
    while stack:
        item, where = stack.pop()
        if isinstance(item, str):
            if _SURROGATE.search(item):
                return where
        elif isinstance(item, dict):
            for key, child in item.items():
                if _SURROGATE.search(key):
                    return f"{where} (a key)"
                stack.append((child, f"{where}.{key}"))
        elif isinstance(item, list):
            stack.extend((child, f"{where}[{index}]") for index, child in enumerate(item))
    return None


def check(document: dict[str, Any], schema: Mapping[str, Any], what: str) -> dict[str, Any]:
    """``document`` if it is valid against ``schema``, else :class:`AcsError` naming the field."""
    where = _lone_surrogate(document)
    if where is not None:
        raise AcsError(f"{where}: holds a lone surrogate (\\ud800-\\udfff), which is not text")
    known = schema.get("properties", {})
    if schema.get("additionalProperties") is False:
        unknown = sorted(set(document) - set(known))
        if unknown:
            raise AcsError(f"unknown {what} fields: {', '.join(u[:40] for u in unknown[:10])}; "
                           f"known: {', '.join(known)}")
    try:
        validate(document, schema)
    except JsonInputError as error:
        field = _STEP.match(error.path[1:])
        hint = HINTS.get(field.group(1)) if field and field.group(1) else None
        if hint is None:
            where = "body" if error.path == "$" else error.path
            raise AcsError(f"{where}: {error.reason}") from None
        value = repr(_value_at(document, error.path))
        raise AcsError(f"{error.path}: {hint} (got {value[:80]})") from None
    return document


def check_header(name: str, value: str, schema: Mapping[str, Any]) -> str:
    """A request header's value valid against ``schema`` (bytes that are not UTF-8 arrive as
    surrogate escapes: refused as such), else :class:`AcsError`."""
    if _SURROGATE.search(value):
        raise AcsError(f"header {name}: not UTF-8 text")
    try:
        validate(value, schema)
    except JsonInputError as error:
        raise AcsError(f"header {name}: {error.reason}") from None
    return value


async def read_body(request: web.Request, schema: Mapping[str, Any], what: str, *,
                    max_bytes: int = MAX_BYTES) -> dict[str, Any]:
    """The request's JSON object, read with the project's JSON reader (size, nesting, number
    limits) and checked against ``schema``; anything else is :class:`AcsError` (400).

    The body is read to its end: one ``content.read(n)`` returns only what has arrived so far,
    so a body sent in several TCP segments or chunks would be cut."""
    if request.content_length is not None and request.content_length > max_bytes:
        raise AcsError(f"body of {request.content_length} bytes exceeds the limit of {max_bytes}")
    body = bytearray()
    while chunk := await request.content.read(max_bytes + 1 - len(body)):
        body += chunk
        if len(body) > max_bytes:
            raise AcsError(f"body exceeds the limit of {max_bytes} bytes")
    try:
        document = parse_json_object(bytes(body), max_bytes=max_bytes)
    except JsonInputError as error:
        raise AcsError(f"body {error}" if error.path == "$" else str(error)) from None
    return check(document, schema, what)

"""The one way to read JSON a client sent: HTTP bodies, websocket frames, MQTT payloads.

``parse_json`` refuses, with :class:`JsonInputError` (a ``ValueError``) naming what and where:
more than ``max_bytes``, invalid UTF-8 or JSON, ``NaN``/``Infinity`` (not JSON, RFC 8259 §6,
though Python's reader takes them), numbers that overflow a float, integers outside a signed
64-bit range (JavaScript and most back ends cannot hold more), and nesting deeper than
``max_depth`` (a deeply nested document costs stack, not bytes: the stdlib reader raises
RecursionError near 1,000 levels). ``validate`` checks a document against a JSON Schema
(jsonschema) and names the offending field.

Each server maps :class:`JsonInputError` to its protocol's own answer: HTTP 400, websocket close
1007, AWS ``InvalidRequest``, a CWMP fault.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

import jsonschema

MAX_BYTES = 1024 * 1024
MAX_DEPTH = 32
MAX_INTEGER = 2**63 - 1
_MAX_INTEGER_DIGITS = len(str(MAX_INTEGER))
_SURROGATE = re.compile("[\ud800-\udfff]")


class JsonInputError(ValueError):
    """JSON input refused; ``path`` is where in the document (``$`` is the whole); ``syntax``:
    the input is not JSON text at all (not UTF-8, malformed, NaN/Infinity), as opposed to JSON
    beyond the limits or against the schema."""

    def __init__(self, message: str, path: str = "$", *, syntax: bool = False) -> None:
        super().__init__(message if path == "$" else f"{path}: {message}")
        self.path = path
        self.reason = message
        self.syntax = syntax


def _integer(text: str) -> int:
    if len(text.lstrip("-")) > _MAX_INTEGER_DIGITS:
        raise JsonInputError(f"integer of {len(text)} digits is out of range")
    value = int(text)
    if not -MAX_INTEGER - 1 <= value <= MAX_INTEGER:
        raise JsonInputError(f"integer {text} is out of range")
    return value


def _float(text: str) -> float:
    value = float(text)
    if value in (float("inf"), float("-inf")):
        raise JsonInputError(f"number {text[:40]} is out of range")
    return value


def _constant(name: str) -> Any:
    raise JsonInputError(f"{name} is not JSON", syntax=True)


def _structure_problem(document: Any, limit: int) -> JsonInputError | None:
    """Nesting deeper than ``limit``, or a string (or key) with a lone UTF-16 surrogate (``"\\ud800"``
    is valid JSON text but no Unicode string: it breaks UTF-8 encoding, SQLite, logs) — found
    iteratively, with its path."""
    stack: list[tuple[Any, int, str]] = [(document, 1, "$")]
    while stack:
        value, depth, path = stack.pop()
        if isinstance(value, str):
            if _SURROGATE.search(value):
                return JsonInputError("string with a lone surrogate", path)
            continue
        if isinstance(value, dict):
            if depth > limit:
                return JsonInputError(f"nested deeper than {limit} levels", path)
            for key, child in value.items():
                if _SURROGATE.search(key):
                    return JsonInputError("key with a lone surrogate", path)
                stack.append((child, depth + 1, f"{path}.{key}"))
        elif isinstance(value, list):
            if depth > limit:
                return JsonInputError(f"nested deeper than {limit} levels", path)
            stack.extend((child, depth + 1, f"{path}[{index}]") for index, child in enumerate(value))
    return None


def parse_json(data: bytes | bytearray | str, *, max_bytes: int = MAX_BYTES,
               max_depth: int = MAX_DEPTH) -> Any:
    """The JSON value of ``data``, within the limits above."""
    if len(data) > max_bytes:
        raise JsonInputError(f"{len(data)} bytes exceed the limit of {max_bytes}")
    if isinstance(data, (bytes, bytearray)):
        try:
            data = bytes(data).decode("utf-8")
        except UnicodeDecodeError as error:
            raise JsonInputError(f"not UTF-8: {error.reason} at byte {error.start}", syntax=True) from None
    try:
        document = json.loads(data, parse_int=_integer, parse_float=_float, parse_constant=_constant)
    except RecursionError:
        raise JsonInputError(f"nested deeper than {max_depth} levels") from None
    except JsonInputError:
        raise
    except ValueError as error:
        raise JsonInputError(f"not JSON: {error}", syntax=True) from None
    problem = _structure_problem(document, max_depth)
    if problem is not None:
        raise problem
    return document


def parse_json_object(data: bytes | bytearray | str, **limits: int) -> dict[str, Any]:
    document = parse_json(data, **limits)
    if not isinstance(document, dict):
        raise JsonInputError("must be a JSON object")
    return document


def _pointer(path: Any) -> str:
    return "$" + "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in path)


def validate(document: Any, schema: Mapping[str, Any]) -> None:
    """Check ``document`` against ``schema``; the first (most relevant) error is raised with the
    path of the offending field."""
    validator = jsonschema.Draft202012Validator(schema)
    error = jsonschema.exceptions.best_match(validator.iter_errors(document))
    if error is not None:
        raise JsonInputError(error.message[:300], _pointer(error.absolute_path))

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

    def __init__(self, message: str, path: str = "$", *, syntax: bool = False,
                 where: str | None = None) -> None:
        super().__init__(message if path == "$" else f"{path}: {message}")
        self.path = path
        self.reason = message
        self.syntax = syntax
        # A refused value (NaN, a number out of range) is an error of the text as a whole
        # (``path`` "$"); ``where`` still says where it stood, for APIs that name fields.
        self.where = where if where is not None else path


class _Refused:
    """Put in place of a value the reader refuses (the number hooks see no position), so that the
    walk after parsing can say where it was."""

    def __init__(self, reason: str, *, syntax: bool = False) -> None:
        self.reason = reason
        self.syntax = syntax


def _integer(text: str) -> int | _Refused:
    if len(text.lstrip("-")) > _MAX_INTEGER_DIGITS:
        return _Refused(f"integer of {len(text)} digits is out of range")
    value = int(text)
    if not -MAX_INTEGER - 1 <= value <= MAX_INTEGER:
        return _Refused(f"integer {text} is out of range")
    return value


def _float(text: str) -> float | _Refused:
    value = float(text)
    if value in (float("inf"), float("-inf")):
        return _Refused(f"number {text[:40]} is out of range")
    return value


def _constant(name: str) -> _Refused:
    return _Refused(f"{name} is not JSON", syntax=True)


def _first_problem(document: Any, limit: int) -> JsonInputError | None:
    """The first problem in document order, with its path: a refused value (NaN, Infinity, a
    number out of range; its path in ``where``), nesting deeper than ``limit``, or a string (or key) with a lone UTF-16
    surrogate (``"\\ud800"`` is valid JSON text but no Unicode string: it breaks UTF-8 encoding,
    SQLite, logs). Iterative: no recursion."""
    stack: list[tuple[Any, int, str]] = [(document, 1, "$")]
    while stack:
        value, depth, path = stack.pop()
        if isinstance(value, _Refused):
            return JsonInputError(value.reason, syntax=value.syntax, where=path)
        if isinstance(value, str):
            if _SURROGATE.search(value):
                return JsonInputError("string with a lone surrogate", path)
            continue
        if isinstance(value, dict):
            if depth > limit:
                return JsonInputError(f"nested deeper than {limit} levels", path)
            if any(_SURROGATE.search(key) for key in value):
                return JsonInputError("key with a lone surrogate", path)
            children = [(child, depth + 1, f"{path}.{key}") for key, child in value.items()]
        elif isinstance(value, list):
            if depth > limit:
                return JsonInputError(f"nested deeper than {limit} levels", path)
            children = [(child, depth + 1, f"{path}[{index}]") for index, child in enumerate(value)]
        else:
            continue
        stack.extend(reversed(children))  # popped in document order
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
    except ValueError as error:
        raise JsonInputError(f"not JSON: {error}", syntax=True) from None
    problem = _first_problem(document, max_depth)
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
        message = error.message
        if error.validator == "maxLength" and isinstance(error.instance, str):
            # jsonschema quotes the whole value first: cut at 300, the reason and limit were lost.
            described = error.schema.get("description") if isinstance(error.schema, dict) else None
            message = (f"{len(error.instance)} characters, longer than the {error.validator_value} "
                       f"allowed" + (f" ({described})" if described else ""))
        raise JsonInputError(message[:300], _pointer(error.absolute_path))

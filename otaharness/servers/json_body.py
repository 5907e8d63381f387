"""Request bodies that must be one JSON object, as the admin and application APIs take them,
read with the one JSON reader (otaharness/protocols/json_input.py): size, nesting, NaN and number
limits, then an optional JSON Schema."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from aiohttp import web

from otaharness.protocols.json_input import MAX_BYTES, JsonInputError, parse_json_object, validate


async def read_body(request: web.Request, max_bytes: int = MAX_BYTES) -> bytes:
    """The whole body — read to its end, as it may come in pieces; more than ``max_bytes`` is a
    JsonInputError at path ``$`` whose reason starts with "body"."""
    if request.content_length is not None and request.content_length > max_bytes:
        raise JsonInputError(f"body of {request.content_length} bytes exceeds the limit of {max_bytes}")
    body = bytearray()
    while chunk := await request.content.read(65536):
        body += chunk
        if len(body) > max_bytes:
            raise JsonInputError(f"body exceeds the limit of {max_bytes} bytes")
    return bytes(body)


def describe(error: JsonInputError) -> str:
    """A refusal as an API says it: ``$.field: reason``, or ``body …`` for the whole body."""
    if error.path != "$" or error.reason.startswith("body"):
        return str(error)
    return f"body {error.reason}"


async def read_json_object(request: web.Request, error: type[ValueError], *,
                           schema: Mapping[str, Any] | None = None,
                           max_bytes: int = MAX_BYTES) -> dict[str, Any]:
    """The body as a JSON object (valid against ``schema`` when given); anything else raises
    ``error`` (the API's 400) saying why and where."""
    try:
        document = parse_json_object(await read_body(request, max_bytes), max_bytes=max_bytes)
        if schema is not None:
            validate(document, schema)
    except JsonInputError as exc:
        raise error(describe(exc)) from exc
    return document

"""Request bodies that must be one JSON object, as the admin and application APIs take them."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web


async def read_json_object(request: web.Request, error: type[ValueError]) -> dict[str, Any]:
    """The body as a JSON object; anything else raises ``error`` (the API's 400) saying why."""
    try:
        document = json.loads(await request.read())
    except ValueError as exc:
        raise error(f"body is not JSON: {exc}") from exc
    if not isinstance(document, dict):
        raise error("body must be a JSON object")
    return document

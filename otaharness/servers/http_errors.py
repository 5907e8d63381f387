"""What every HTTP server of the harness answers to a body aiohttp cannot decode (a corrupt gzip or
deflate Content-Encoding raises ``RequestPayloadError`` from ``request.read()``): 400, not 500.
Installed as each app's innermost middleware, so that an API's own catch-all never sees it."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from aiohttp.web_protocol import RequestPayloadError


@web.middleware
async def undecodable_body(request: web.Request, handler: Any) -> web.StreamResponse:
    try:
        return await handler(request)
    except RequestPayloadError as error:
        return web.json_response({"error": f"the body cannot be decoded: {error}"}, status=400)

"""One way to put an aiohttp app on a socket, and one bearer-token check for every back-end API.

``await serve_app(app, host, port=0, ssl_context=None)`` → :class:`HttpSite` (``url``, ``port``,
``await stop()``): HTTP or HTTPS, no access log, no signal handlers (the runtime owns them).

``bearer_token_required(token)`` is the middleware every back-end API (CUPS admin, TR-069 admin,
LoRaWAN application, FUOTA campaigns, firmware REST) puts *first* in its list, so a request without
the right ``Authorization: Bearer <token>`` is answered 401 before any handler runs and before any
byte of its body is read or validated. Answers follow RFC 6750 §3: ``WWW-Authenticate: Bearer
realm=…``, with ``error="invalid_token"`` only when a token was presented. Tokens come from
:func:`new_token` (the OS CSPRNG, never a scenario seed) and are compared in constant time.
"""

from __future__ import annotations

import hmac
import secrets
import ssl
from collections.abc import Awaitable, Callable, Collection
from dataclasses import dataclass
from typing import Any

from aiohttp import web

REALM = "otaharness"
TOKEN_BYTES = 32

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def new_token() -> str:
    """A bearer token: 32 bytes from the OS CSPRNG, URL-safe base64 (RFC 6750 b64token)."""
    return secrets.token_urlsafe(TOKEN_BYTES)


def presented_bearer_token(request: web.Request) -> str | None:
    """The token of an ``Authorization: Bearer`` header, or None when there is none."""
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        return None
    return token


def _token_matches(presented: str, accepted: Collection[str]) -> bool:
    candidate = presented.encode("utf-8", "surrogateescape")
    # Every accepted token is compared, so the answer's timing does not say which one came close.
    matched = False
    for token in accepted:
        matched |= hmac.compare_digest(candidate, token.encode())
    return matched


def unauthorized(reason: str, *, presented: bool) -> web.Response:
    challenge = f'Bearer realm="{REALM}"'
    if presented:
        challenge += ', error="invalid_token"'
    return web.json_response({"error": reason}, status=401, headers={"WWW-Authenticate": challenge})


def bearer_token_required(token: str | Callable[[], Collection[str]], *,
                          exempt: Callable[[web.Request], bool] | None = None) -> Any:
    """Middleware refusing every request without one of the accepted tokens (a fixed ``token``, or
    a callable giving the currently accepted ones, e.g. per tenant). ``exempt(request)`` lets
    through what another mechanism authenticates (e.g. device endpoints on the same port)."""
    accepted: Callable[[], Collection[str]] = (lambda: (token,)) if isinstance(token, str) else token

    @web.middleware
    async def check_bearer_token(request: web.Request, handler: Handler) -> web.StreamResponse:
        if exempt is not None and exempt(request):
            return await handler(request)
        presented = presented_bearer_token(request)
        if presented is None:
            return unauthorized("an Authorization: Bearer token is required", presented=False)
        if not _token_matches(presented, accepted()):
            return unauthorized("the bearer token is not valid here", presented=True)
        return await handler(request)

    return check_bearer_token


@dataclass
class HttpSite:
    runner: web.AppRunner
    url: str
    port: int

    async def stop(self) -> None:
        await self.runner.cleanup()


async def serve_app(app: web.Application, host: str = "127.0.0.1", port: int = 0, *,
                    ssl_context: ssl.SSLContext | None = None, scheme: str | None = None) -> HttpSite:
    """Serve ``app`` on ``host:port`` (0: a free port). ``scheme`` names the URL's scheme when it
    is not plain http/https (``ws``/``wss`` for a websocket server)."""
    runner = web.AppRunner(app, handle_signals=False, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port, ssl_context=ssl_context)
    await site.start()
    bound_port: int = runner.addresses[0][1]
    if scheme is None:
        scheme = "https" if ssl_context is not None else "http"
    return HttpSite(runner, f"{scheme}://{host}:{bound_port}", bound_port)

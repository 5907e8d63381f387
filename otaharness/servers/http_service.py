"""One way to put an aiohttp app on a socket, and one bearer-token check for every back-end API.

``await serve_app(app, host, port=0, ssl_context=None)`` → :class:`HttpSite` (``url``, ``port``,
``await stop()``): HTTP or HTTPS, no access log, no signal handlers (the runtime owns them).

``bearer_token_required(token)`` is the middleware every back-end API (CUPS admin, TR-069 admin,
LoRaWAN application, FUOTA campaigns, firmware REST) puts *first* in its list, so a request without
the right ``Authorization: Bearer <token>`` is answered 401 before any handler runs and before any
byte of its body is read or validated. Answers follow RFC 6750 §3: ``WWW-Authenticate: Bearer
realm=…``, with ``error="invalid_token"`` only when a token was presented. Tokens come from
:func:`new_token` (the OS CSPRNG, never a scenario seed) and are compared in constant time.

Logs: importing this module redacts aiohttp's log records (``otaharness.runtime.redaction``): aiohttp
logs a request line it cannot parse raw, and that line can be an ``Authorization`` header.

Slow clients: aiohttp has no deadline for receiving a request's headers or body (only a keep-alive
timeout for idle connections, 3630 s), so a client sending its headers byte by byte holds a
connection for an hour, and a few thousand of them hold the server. ``serve_app`` therefore hands
aiohttp's server a request handler with read deadlines (:class:`GuardedRequestHandler`): headers
from the connection's first moment or a request's first byte, a body from its headers, a
websocket frame from its first byte, each with ``ReadLimits`` (``read_deadlines.py``, which also
explains why a deadline needs both the real and the loop's clock to pass before it cuts, so
virtual-time jumps in scenarios never cut a real-time peer). Headers too slow get ``408 Request
Timeout`` and the connection closed; a body too slow makes the handler's read raise 408 (then
the connection is closed after the answer); a websocket frame too slow closes the connection. A
TLS handshake gets ``ReadLimits.handshake`` on real time (:class:`_TcpSite`). Time
the server itself holds a client back (reading paused because a handler is not reading) does not
count against the client.

Malformed requests (a request line or header over the limit, a NUL in the path, a bad
Content-Length or chunk size, a body that does not decode as its Content-Encoding says): aiohttp
answers 400 (or drains the body a handler left unread) and logs each at ERROR with a traceback, so any client could fill the server's log with tracebacks that are no fault of the
server. ``GuardedRequestHandler`` logs them as one INFO line with the parser's reason; an error of
a handler (500) keeps its traceback.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import secrets
import ssl
from collections.abc import Awaitable, Callable, Collection
from dataclasses import dataclass
from typing import Any

from aiohttp import web, web_protocol, web_server
from aiohttp.http_exceptions import HttpProcessingError

from otaharness.runtime import timeline
from otaharness.runtime.clock import VirtualEventLoop
from otaharness.runtime.redaction import RedactingFilter, remember
from otaharness.servers.read_deadlines import (
    DEFAULT_READ_LIMITS,
    ReadDeadline,
    ReadLimits,
    WebSocketFrameBoundaries,
)

log = logging.getLogger(__name__)

for _aiohttp_logger in ("aiohttp.server", "aiohttp.web", "aiohttp.access", "aiohttp.websocket"):
    logging.getLogger(_aiohttp_logger).addFilter(RedactingFilter())

REALM = "otaharness"
TOKEN_BYTES = 32

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def new_token() -> str:
    """A bearer token: 32 bytes from the OS CSPRNG, URL-safe base64 (RFC 6750 b64token), never
    starting with "-": one in 64 did, and `--token -…` is an option to every command-line parser
    (argparse refused it: a CLI tool, and a scenario step running one, died with exit 2)."""
    while True:
        token = secrets.token_urlsafe(TOKEN_BYTES)
        if not token.startswith("-"):
            return remember(token)  # a scenario's artifacts redact it


def presented_bearer_token(request: web.Request) -> str | None:
    """The token of an ``Authorization: Bearer`` header, or None when there is none."""
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        return None
    return token


API_DOCUMENT_PATH = "/openapi.json"  # every API's OpenAPI document: public, as API documents are


def routed_path(request: web.Request) -> str | None:
    """The path template of the route aiohttp dispatches the request to (None: no route), so that
    auth follows the handler that will run, however the path was spelled (percent-encoding, dot
    segments)."""
    resource = request.match_info.route.resource
    return resource.canonical if resource is not None else None


def requests_routed_to(*paths: str) -> Callable[[web.Request], bool]:
    """An ``exempt`` predicate: the route the request is dispatched to is one of ``paths``."""
    def routed_to(request: web.Request) -> bool:
        route = routed_path(request)
        if route is None:
            # No handler runs (the router answers 405): on an exempt path that answer is let out.
            return (isinstance(request.match_info.http_exception, web.HTTPMethodNotAllowed)
                    and request.path in paths)
        return route in paths

    return routed_to


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


MALFORMED_REASON_CHARS = 200  # of the parser's reason, which quotes what the client sent
LINGERING_CLOSE_SECONDS = 2.0
REQUEST_TIMEOUT_ANSWER = (b"HTTP/1.1 408 Request Timeout\r\nConnection: close\r\n"
                          b"Content-Length: 0\r\n\r\n")


class GuardedRequestHandler(web_protocol.RequestHandler):
    """aiohttp's connection handler with read deadlines for headers, bodies and websocket frames
    (see the module docstring)."""

    def __init__(self, manager: web_server.Server, *, read_limits: ReadLimits, **kwargs: Any) -> None:
        super().__init__(manager, **kwargs)
        self._limits = read_limits
        self._deadline = ReadDeadline(self._loop, self._read_too_slow, min_rate=read_limits.min_rate)
        self._body_pending: Any = None  # the StreamReader of a request whose body is still coming
        self._frames: WebSocketFrameBoundaries | None = None
        self._lingering_after_timeout = False

    def connection_made(self, transport: Any) -> None:
        super().connection_made(transport)
        self._start_headers()

    def connection_lost(self, exc: BaseException | None) -> None:
        self._deadline.stop()
        self._body_pending = None
        super().connection_lost(exc)

    def set_parser(self, parser: Any, data_received_cb: Any = None) -> None:
        # A websocket from here on: bytes that came with the upgrade request start its frames.
        self._frames = WebSocketFrameBoundaries()
        self._observe_frames(self._message_tail)
        super().set_parser(parser, data_received_cb)

    def data_received(self, data: bytes) -> None:
        if self._lingering_after_timeout:
            return  # answered 408 and half-closed: what still comes is dropped
        if self._frames is not None:
            self._observe_frames(data)
            super().data_received(data)
            return
        if self._upgraded:  # upgraded, parser not set yet: aiohttp keeps the bytes for set_parser
            super().data_received(data)
            return
        if not self._deadline.active:
            self._start_headers()
        self._deadline.received(len(data))
        requests_before = self._request_count
        super().data_received(data)
        if self._request_count != requests_before:
            payload = self._messages[-1][1] if self._messages else None
            if payload is not None and not payload.is_eof():
                self._body_pending = payload
                self._deadline.start("body", self._limits.body)
            else:
                self._body_pending = None
                self._deadline.stop()
        elif self._body_pending is not None and self._body_pending.is_eof():
            self._body_pending = None
            self._deadline.stop()

    def _process_keepalive(self) -> None:
        # aiohttp's keep-alive timer runs on the loop's clock only and would close a connection
        # half-way through its headers after a virtual jump; while a read deadline runs, that
        # deadline (on both clocks) decides.
        if self._deadline.active and not self._force_close:
            self._keepalive_handle = None
            close_time = self._loop.time() + self._keepalive_timeout
            self._next_keepalive_close_time = close_time
            self._keepalive_handle = self._loop.call_at(close_time, self._process_keepalive)
            return
        super()._process_keepalive()

    def log_exception(self, *args: Any, **kw: Any) -> None:
        error = kw.get("exc_info")
        if isinstance(error, web_protocol.RequestPayloadError) and isinstance(error.__cause__, HttpProcessingError):
            error = error.__cause__  # a body left unread by the handler, drained, that does not decode
        if isinstance(error, HttpProcessingError) and error.code < 500:
            # The client's malformed request, answered 400 by aiohttp: no fault of ours.
            reason = " ".join(str(error.message).split())[:MALFORMED_REASON_CHARS]
            self.logger.info("refused a malformed request from %s (%d): %s",
                             self.peername, error.code, reason)
            return
        super().log_exception(*args, **kw)

    def _start_headers(self) -> None:
        self._deadline.start("headers", self._limits.headers, ceiling=self._limits.headers_ceiling)

    def _observe_frames(self, data: bytes) -> None:
        assert self._frames is not None
        was_mid_frame = self._frames.mid_frame
        self._frames.feed(data)
        if not self._frames.mid_frame:
            self._deadline.stop()
        elif not was_mid_frame or not self._deadline.active:
            self._deadline.start("websocket frame", self._limits.body)
        else:
            self._deadline.received(len(data))

    def _read_too_slow(self, phase: str) -> None:
        if self.transport is None or self._force_close:
            return
        if self._reading_paused or self._buffer_paused:
            # We hold the client back (a handler not reading yet): not the client's slowness.
            self._deadline.start(phase, self._limits.body)
            return
        log.info("closing the connection from %s: its %s did not arrive within %g s",
                 self.peername, phase, self._deadline.limit)
        if phase == "body" and self._body_pending is not None:
            # The handler's read raises 408 Request Timeout (answered by aiohttp); then we close.
            self._body_pending.set_exception(web.HTTPRequestTimeout(text=f"the body did not arrive "
                                                                    f"within {self._deadline.limit:g} s"))
            self._body_pending = None
            self._lingering_time = 0.0  # no waiting for the rest of this body: we are closing
            self.close()
            return
        if phase == "headers":
            self.transport.write(REQUEST_TIMEOUT_ANSWER)
            if self.transport.can_write_eof():
                # Lingering close (as Apache's): half-close and drop what still comes for a moment;
                # closing at once makes the kernel answer the client's next byte with a reset,
                # which can discard the 408 before the client has read it.
                self.transport.write_eof()
                self._lingering_after_timeout = True
                self._loop.call_later(LINGERING_CLOSE_SECONDS, self.force_close)
                return
        self.force_close()


class _GuardedServer(web_server.Server):
    def __init__(self, *args: Any, read_limits: ReadLimits, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.read_limits = read_limits

    def __call__(self) -> web_protocol.RequestHandler:
        return GuardedRequestHandler(self, loop=self._loop, read_limits=self.read_limits, **self._kwargs)


class _GuardedAppRunner(web.AppRunner):
    def __init__(self, app: web.Application, *, read_limits: ReadLimits, **kwargs: Any) -> None:
        super().__init__(app, **kwargs)
        self._read_limits = read_limits

    async def _make_server(self) -> web_server.Server:
        plain = await super()._make_server()
        return _GuardedServer(plain.request_handler, request_factory=plain.request_factory,
                              handler_cancellation=plain.handler_cancellation, loop=plain._loop,
                              read_limits=self._read_limits, **plain._kwargs)


# asyncio's TLS handshake timer, on a scenario's virtual clock: out of the way (see _TcpSite)
VIRTUAL_LOOP_HANDSHAKE_TIMEOUT = 365 * 86400.0


class _TcpSite(web.TCPSite):
    """aiohttp's TCPSite with a deadline for a client's TLS handshake: aiohttp passes none, so
    asyncio's 60 s applied, where ``ReadLimits.handshake`` (20 s) is what the MQTT gateway and
    moto allow. asyncio's handshake timer runs on the loop's clock alone: on real time (``serve``)
    it is ``ReadLimits.handshake``; on a scenario's virtual clock, which jumps when the loop is
    quiet, it is set out of the way, as the MQTT gateway does (a jump of minutes cut a real-time
    peer half-way through its handshake)."""

    def __init__(self, *args: Any, read_limits: ReadLimits, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._handshake_seconds = read_limits.handshake

    async def start(self) -> None:
        await web.BaseSite.start(self)  # what TCPSite.start does, with the handshake deadline
        loop = asyncio.get_running_loop()
        handshake = {} if self._ssl_context is None else {"ssl_handshake_timeout": (
            VIRTUAL_LOOP_HANDSHAKE_TIMEOUT if isinstance(loop, VirtualEventLoop)
            else self._handshake_seconds)}
        assert self._runner.server is not None
        self._server = await loop.create_server(
            self._runner.server, self._host, self._port, ssl=self._ssl_context,
            backlog=self._backlog, reuse_address=self._reuse_address,
            reuse_port=self._reuse_port, **handshake)
        self._bound_port = (self._server.sockets[0].getsockname()[1] if self._server.sockets
                            else self._port)


@dataclass
class HttpSite:
    runner: web.AppRunner
    url: str
    port: int

    async def listen_also(self, host: str, port: int = 0, *,
                          ssl_context: ssl.SSLContext | None = None) -> int:
        """One more socket for the same app (same handlers, state and read deadlines), e.g. with
        another certificate; its port."""
        before = set(self.runner.addresses)
        await _TcpSite(self.runner, host, port, ssl_context=ssl_context,
                       read_limits=self.runner._read_limits).start()
        return next(address for address in self.runner.addresses if address not in before)[1]

    async def stop(self) -> None:
        await self.runner.cleanup()


def _transcribed(actor: str):
    """Middleware recording each request and its answer in ``actor``'s transcript (bodies kept as
    they are, decoded when written) and a line of the timeline."""

    @web.middleware
    async def transcribe(request: web.Request, handler: Handler) -> web.StreamResponse:
        answer: Any = None
        try:
            answer = await handler(request)
            return answer
        except web.HTTPException as refused:
            answer = refused
            raise
        finally:
            peer, status = request.remote or "?", getattr(answer, "status", 500)
            # the body the handler read, if it read one (aiohttp keeps it on the request)
            asked = request.headers.get("Range")
            timeline.exchange(actor, peer, f"→ {request.method} {request.path_qs}"
                              + (f" (Range: {asked})" if asked else ""),
                              getattr(request, "_read_bytes", None))
            body = getattr(answer, "body", None)
            timeline.exchange(actor, peer, f"← {status}", body if isinstance(body, bytes) else None)
            timeline.note(actor, "http", f"{peer} {request.method} {request.path} → {status}")

    return transcribe


async def serve_app(app: web.Application, host: str = "127.0.0.1", port: int = 0, *,
                    ssl_context: ssl.SSLContext | None = None, scheme: str | None = None,
                    read_limits: ReadLimits = DEFAULT_READ_LIMITS,
                    reuse_address: bool | None = None, backlog: int = 128,
                    max_line_size: int = 8190, actor: str | None = None) -> HttpSite:
    """Serve ``app`` on ``host:port`` (0: a free port), cutting clients that send too slowly
    (``read_limits``). ``scheme`` names the URL's scheme when it is not plain http/https
    (``ws``/``wss`` for a websocket server); ``reuse_address`` to bind a fixed port again at
    once after a restart; ``backlog`` for fleets that connect at the same moment;
    ``max_line_size`` for request lines longer than aiohttp's 8190 bytes; ``actor``: the server's
    name in a scenario's transcripts (its requests and answers are recorded there when a
    scenario records)."""
    if actor is not None and timeline.recording():
        app.middlewares.insert(0, _transcribed(actor))  # outermost: refusals are recorded too
    runner = _GuardedAppRunner(app, handle_signals=False, access_log=None, read_limits=read_limits,
                               max_line_size=max_line_size)
    await runner.setup()
    site = _TcpSite(runner, host, port, ssl_context=ssl_context, reuse_address=reuse_address,
                    backlog=backlog, read_limits=read_limits)
    await site.start()
    bound_port: int = runner.addresses[0][1]
    if scheme is None:
        scheme = "https" if ssl_context is not None else "http"
    return HttpSite(runner, f"{scheme}://{host}:{bound_port}", bound_port)

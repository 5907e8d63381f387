"""The ACS's CWMP endpoint: HTTP POST sessions (TR-069 §3.4.5-3.4.7, fact sheet §1).

One session = Inform, the CPE's requests, its empty POST, the ACS's RPCs, and an empty 204
ending it. Each request finds its session by, in order: the ``session`` cookie (an unguessable
id from the CSPRNG, checked against the connection and identity, so a cookie taken from another
CPE does not open its session), the TCP connection, then, only when the CPE authenticated, its
identity (user name and source address) for CPEs that send no cookies and reconnect. Without
authentication a cookieless session is its TCP connection: an empty POST on a connection with no
open session is a 400 that touches no other session. Sessions expire after
``session_idle_timeout`` idle seconds and are ended after ``max_session_duration``; an ended
session leaves a ``session-end`` event (its summary) and is dropped, and at most
``max_sessions`` are open at once.

Authentication (otaharness.protocols.http_digest): a Digest header on an expired or unknown nonce
gets a ``stale=true`` challenge; one whose nonce count did not rise (a replay) is refused with a
new challenge, unless the device (by the Inform's DeviceId, else its session's) is one of
``nc_reuse_devices``.

Whatever a client sends gets the protocol's answer, never a bare server error: input that is not
a SOAP message (not XML, a DTD, too deep, too many elements) is a 400, a body over
``max_body_bytes`` a 413, a CWMP message the ACS cannot take (unknown RPC, invalid arguments,
an RPC its namespace does not define) a SOAP Fault (8000/8003, HTTP 500 as SOAP 1.1 §6.2 wants).
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from otaharness.servers.http_errors import undecodable_body

from otaharness.protocols.cwmp import (
    AutonomousTransferComplete,
    AutonomousTransferCompleteResponse,
    CWMP_1_0,
    CwmpError,
    Envelope,
    Fault,
    GetRPCMethods,
    GetRPCMethodsResponse,
    Header,
    Inform,
    InformResponse,
    InvalidArguments,
    MethodNotSupported,
    Rpc,
    TransferComplete,
    TransferCompleteResponse,
    build_envelope,
    parse_envelope,
)
from otaharness.protocols.cwmp.namespaces import SCHEMA_LEVEL

from otaharness.protocols.http_digest import AuthOutcome, ServerAuth
from otaharness.runtime.redaction import authorization_for_log, remember

from .acs import Acs, AcsConfig, nc_reuse_allowed

log = logging.getLogger(__name__)

SOAP_CONTENT_TYPE = 'text/xml; charset="utf-8"'
ACS_METHODS = ("Inform", "TransferComplete", "AutonomousTransferComplete", "GetRPCMethods")
# Requests a CPE may send to the ACS, and the answer to each.
CPE_REQUESTS: dict[type[Rpc], Callable[[], Rpc]] = {
    TransferComplete: TransferCompleteResponse,
    AutonomousTransferComplete: AutonomousTransferCompleteResponse,
    GetRPCMethods: lambda: GetRPCMethodsResponse(method_list=ACS_METHODS),
}
_COOKIE = re.compile(r'(?:^|[;,]\s*)session="?([^";,\s]+)')  # lenient, as GenieACS


@dataclass(eq=False)
class CwmpSession:
    id: str
    device_id: str
    oui: str
    serial_number: str
    namespace: str
    peer_host: str
    connection: object
    username: str
    started: float
    timer: asyncio.TimerHandle | None = None
    in_flight: int | None = None  # task id of the RPC awaiting the CPE's answer
    ended: bool = False
    hold: bool = False  # the CPE must hold its requests (we sent HoldRequests=1 last)
    held: bool = False  # HoldRequests=1 was sent in this session
    requests: int = 0
    connections: set[object] = field(default_factory=set)  # keep-alive: one, normally
    opened: int = 0  # creation order: of several sessions that match a request, the newest wins


class SessionRefused(Exception):
    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status


class CwmpEndpoint:
    def __init__(self, acs: Acs, trace: Callable[[str, bytes], None] | None = None) -> None:
        self.acs = acs
        config = acs.config
        self.auth = cwmp_auth(config)
        self.trace = trace
        self.sessions: dict[str, CwmpSession] = {}
        # Open sessions by TCP connection and by (user name, source address), so that finding
        # a request's session costs the same with 10 open sessions as with 10,000.
        self._by_connection: dict[object, dict[str, CwmpSession]] = {}
        self._by_client: dict[tuple[str, str], dict[str, CwmpSession]] = {}
        self._opened = itertools.count()

    def application(self) -> web.Application:
        app = web.Application(client_max_size=self.acs.config.max_body_bytes, middlewares=[undecodable_body])
        app.router.add_route("*", "/{tail:.*}", self.handle)
        return app

    def close(self) -> None:
        for session in list(self.sessions.values()):
            self._end(session, "ACS stopped")

    # -- HTTP ------------------------------------------------------------------------------
    async def handle(self, request: web.Request) -> web.StreamResponse:
        if request.method != "POST":
            return web.Response(status=405, headers={"Allow": "POST"})
        outcome = self.auth.check(request.headers.get("Authorization"), "POST", request.raw_path)
        if outcome.user is None or outcome.stale:
            await request.read()  # drain, keep the connection for the authenticated retry
            return self._challenge(stale=outcome.stale)
        body = await request.read()  # raises 413 beyond client_max_size
        envelope: Envelope | None = None
        problem: CwmpError | None = None
        try:
            envelope = parse_envelope(body) if body.strip() else None
            if envelope is not None:
                _check_namespace(envelope)
        except CwmpError as error:  # the message, or the answer it would need, is not CWMP
            problem = error
        if outcome.count_reused and not self._may_reuse_count(request, envelope, outcome):
            log.warning("refused a reused Digest nonce count from %s: %s", _peer_host(request),
                        authorization_for_log(request.headers.get("Authorization", "")))
            return self._challenge(stale=False)
        if problem is not None:
            return self._refuse(request, problem, envelope, outcome.user or "")
        return await self._process(request, envelope, outcome.user or "")

    def _challenge(self, *, stale: bool) -> web.Response:
        return web.Response(status=401,
                            headers={"WWW-Authenticate": self.auth.challenge(stale=stale)})

    def _may_reuse_count(self, request: web.Request, envelope: Envelope | None,
                         outcome: AuthOutcome) -> bool:
        """A device allowed to reuse nonce counts, known by its Inform or its open session."""
        patterns = self.acs.config.nc_reuse_devices
        if not patterns:
            return False
        if envelope is not None and isinstance(envelope.body, Inform):
            ident = envelope.body.device_id
            return nc_reuse_allowed(patterns, ident.oui, ident.serial_number)
        try:
            session = self._find(request, outcome.user or "", claim=False)
        except SessionRefused:
            return False
        return session is not None and nc_reuse_allowed(patterns, session.oui,
                                                        session.serial_number)

    async def _process(self, request: web.Request, envelope: Envelope | None,
                       username: str) -> web.StreamResponse:
        try:
            if envelope is not None and isinstance(envelope.body, Inform):
                return self._inform(request, envelope, username)
            session = self._find(request, username, claim=True)
        except SessionRefused as refused:
            return web.Response(status=refused.status, text=str(refused))
        if session is None:
            return web.Response(status=400, text="no CWMP session: a session opens with Inform")
        self._touch(session)
        session.requests += 1
        session.connections.add(_connection(request))
        if self._too_long(session):
            self._end(session, "maximum duration")
            return web.Response(status=204, headers={"Connection": "close"})
        if envelope is None:
            return self._acs_turn(session, after_empty_post=True)
        message = envelope.body
        request_answer = CPE_REQUESTS.get(type(message))
        if request_answer is not None:
            if isinstance(message, TransferComplete):
                self.acs.transfer_complete(session.device_id, message)
            return self._send(envelope.reply(request_answer()))
        if session.in_flight is None:
            unexpected = MethodNotSupported(message.TYPE_NAME)  # not a request, no RPC pending
            return self._send(envelope.reply(Fault.from_error(unexpected, "ACS")), status=500)
        task_id, session.in_flight = session.in_flight, None
        self.acs.task_answered(task_id, message)
        return self._acs_turn(session, after_empty_post=False)

    def _refuse(self, request: web.Request, error: CwmpError, envelope: Envelope | None,
                username: str) -> web.Response:
        if error.acs_fault_code is None:
            return web.Response(status=error.http_status, text=f"not a CWMP message: {error}")
        try:
            session = self._find(request, username, claim=False)
        except SessionRefused:
            session = None
        # The fault speaks the CWMP version of the session it belongs to (else the message's).
        namespace = (session.namespace if session is not None
                     else envelope.namespace if envelope is not None else CWMP_1_0)
        fault = Envelope(body=Fault.from_error(error, "ACS"), namespace=namespace)
        return self._send(fault, status=500)

    def _send(self, envelope: Envelope, *, status: int = 200, cookie: str | None = None,
              secure: bool = False) -> web.Response:
        data = build_envelope(envelope)
        if self.trace is not None:
            self.trace("acs", data)
        response = web.Response(status=status, body=data,
                                headers={"Content-Type": SOAP_CONTENT_TYPE, "SOAPServer": "otaharness"})
        if cookie is not None:
            # Over HTTPS the session id (a bearer secret) must not be sent back in the clear.
            response.set_cookie("session", cookie, path="/", secure=secure or None)
        return response

    # -- session steps ---------------------------------------------------------------------
    def _inform(self, request: web.Request, envelope: Envelope, username: str) -> web.Response:
        message = envelope.body
        assert isinstance(message, Inform)
        host = _peer_host(request)
        for earlier in list(self._by_connection.get(_connection(request), {}).values()):
            self._end(earlier, "superseded by an Inform")  # a new session on this connection
        if len(self.sessions) >= self.acs.config.max_sessions:
            return web.Response(status=503, headers={"Retry-After": "60"},
                                text="too many open CWMP sessions; try again later")
        device_id = self.acs.inform(message, host)
        ident = message.device_id
        session = CwmpSession(id=remember(secrets.token_urlsafe(16)), device_id=device_id,
                              oui=ident.oui, serial_number=ident.serial_number,
                              namespace=envelope.namespace, peer_host=host,
                              connection=_connection(request), username=username,
                              started=_loop_time(), requests=1,
                              connections={_connection(request)}, opened=next(self._opened))
        self.sessions[session.id] = session
        self._by_connection.setdefault(session.connection, {})[session.id] = session
        self._by_client.setdefault((session.username, session.peer_host), {})[session.id] = session
        self._touch(session)
        session.hold = self.acs.config.hold_requests and bool(self.acs.pending_tasks(device_id))
        session.held = session.hold
        reply = Envelope(body=InformResponse(max_envelopes=1),
                         header=Header(id=envelope.header.id,
                                       hold_requests=True if session.hold else None),
                         namespace=envelope.namespace)
        return self._send(reply, cookie=session.id, secure=request.secure)

    def _acs_turn(self, session: CwmpSession, *, after_empty_post: bool) -> web.Response:
        """Send the next task's RPC, or end the session with an empty 204."""
        planned = self.acs.next_rpc(session.device_id)
        if planned is None:
            if after_empty_post or not session.held:
                self._end(session, "done")
                return web.Response(status=204, headers={"Connection": "close"})
            # The CPE held its requests back (HoldRequests) and may send them now.
            return web.Response(status=204)
        session.in_flight, rpc = planned
        hold = None
        if session.hold:
            # Release the CPE's held requests with the last queued RPC.
            session.hold = bool(self.acs.pending_tasks(session.device_id))
            hold = session.hold
        header = Header(id=f"acs-{session.in_flight}", hold_requests=hold)
        return self._send(Envelope(body=rpc, header=header, namespace=session.namespace))

    # -- finding sessions ------------------------------------------------------------------
    def _find(self, request: web.Request, username: str, *, claim: bool) -> CwmpSession | None:
        """The session this request belongs to; ``claim`` moves it to the request's connection
        (a CPE that reconnected), otherwise nothing changes."""
        connection = _connection(request)
        cookie = _COOKIE.search(request.headers.get("Cookie", ""))
        if cookie is not None:
            session = self.sessions.get(cookie.group(1))
            if session is not None:
                same_connection = session.connection == connection
                same_client = (session.peer_host == _peer_host(request)
                               and session.username == username)
                if not (same_connection or same_client):
                    raise SessionRefused(403, "that session cookie belongs to another client")
                if claim:
                    self._move(session, connection)
                return session
        by_connection = self._by_connection.get(connection)
        if by_connection:
            return _newest(by_connection)
        if not username:
            return None  # no identity but the connection: another connection is another client
        # CPEs often share credentials: the identity is the user name *and* the address.
        candidates = self._by_client.get((username, _peer_host(request)))
        if candidates:
            newest = _newest(candidates)
            if claim:
                self._move(newest, connection)
            return newest
        return None

    def _move(self, session: CwmpSession, connection: object) -> None:
        """The session continues on ``connection`` (the CPE reconnected)."""
        self._unindex(self._by_connection, session.connection, session)
        session.connection = connection
        self._by_connection.setdefault(connection, {})[session.id] = session

    @staticmethod
    def _unindex(index: dict[Any, dict[str, CwmpSession]], key: Any, session: CwmpSession) -> None:
        bucket = index.get(key)
        if bucket is not None:
            bucket.pop(session.id, None)
            if not bucket:
                del index[key]

    def _touch(self, session: CwmpSession) -> None:
        if session.timer is not None:
            session.timer.cancel()
        session.timer = asyncio.get_running_loop().call_later(
            self.acs.config.session_idle_timeout, self._end, session, "idle timeout")

    def _too_long(self, session: CwmpSession) -> bool:
        return _loop_time() - session.started > self.acs.config.max_session_duration

    def _end(self, session: CwmpSession, reason: str) -> None:
        if session.ended:
            return
        session.ended = True
        self.acs.store.add_event(session.device_id, self.acs.now(), "session-end", reason=reason,
                                 requests=session.requests,
                                 connections=len(session.connections))
        if session.timer is not None:
            session.timer.cancel()
        if session.in_flight is not None:
            self.acs.task_returned(session.in_flight)
        self.sessions.pop(session.id, None)
        self._unindex(self._by_connection, session.connection, session)
        self._unindex(self._by_client, (session.username, session.peer_host), session)


def cwmp_auth(config: AcsConfig) -> ServerAuth:
    """What the CWMP endpoint asks of CPEs, per the ACS's settings."""
    return ServerAuth(config.auth_mode, config.realm, config.users, _loop_time,
                      config.nonce_lifetime, strict_nc=config.strict_nc)


def _check_namespace(envelope: Envelope) -> None:
    """Refuse an RPC the envelope's CWMP version does not define (AutonomousTransferComplete
    in cwmp-1-0 could not even be answered: its response does not exist there)."""
    rpc = envelope.body
    if SCHEMA_LEVEL[envelope.namespace] < SCHEMA_LEVEL[rpc.SINCE]:
        raise InvalidArguments(f"{rpc.TYPE_NAME} is defined from {rpc.SINCE} on, "
                               f"not in {envelope.namespace}")


def _peer_host(request: web.Request) -> str:
    peer = request.transport.get_extra_info("peername") if request.transport else None
    return peer[0] if peer else ""


def _connection(request: web.Request) -> object:
    peer = request.transport.get_extra_info("peername") if request.transport else None
    return tuple(peer) if peer else None


def _newest(sessions: dict[str, CwmpSession]) -> CwmpSession:
    return max(sessions.values(), key=lambda session: session.opened)


def _loop_time() -> float:
    return asyncio.get_running_loop().time()

"""The LNS side of a Basics Station: discovery (``/router-info``) and the data websocket
(``/router-data/<StationEui>``, Azure's path), fact sheet §7.

Every message on the data connection goes through :meth:`LnsServer.dispatch`, which calls the
handler registered for its ``msgtype`` — the hook-per-message shape of basicstation's
``pysys/tcutils.py``. This module handles ``version`` (records the package the station reports,
Azure's reported twin property ``Package``, and answers ``router_config``); a network server adds
``updf``, ``jreq``, ``dntxed`` … with :meth:`LnsServer.on` or a ``handle_<msgtype>`` method in a
subclass; :meth:`LnsServer.attach_network_server` does so for the LoRaWAN network server, whose
downlinks go out through :meth:`LnsServer.send_dnmsg`. Messages of an unknown ``msgtype`` are logged and kept, as the station does with ours.

Bad input: every text frame is read with the project's one JSON reader
(``otaharness.protocols.json_input``: nesting deeper than 32 levels, NaN/Infinity, numbers out
of range are refused). A discovery request that is not a JSON object with a valid ``router`` →
websocket close 1007 (invalid frame payload data) with the reason; an unknown or rejected station
→ discovery ``error`` reply (the station then asks CUPS) and 404/403 on the data path.
Authentication (with TLS, :mod:`.auth`): no station certificate or token → 401 before the
websocket upgrade on both paths; discovery with another station's credential → ``error`` reply;
the data path of another station → 403. On the
data websocket: text that the reader refuses, or a message without a string ``msgtype`` → close
1007; a message its handler finds malformed (``version``, ``timesync``: a codec error) → close
1007 naming the field; a binary frame → close 1003; a frame over ``MAX_MESSAGE_SIZE`` → close
1009. (Uplinks and ``dntxed`` the network server cannot use are dropped with a log line instead:
see :meth:`LnsServer.attach_network_server`.) A handler failing otherwise is a bug of ours: the
connection is closed with 1011 and the traceback logged. Close reasons are cut to 120 bytes on a
character boundary.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from aiohttp import WSCloseCode, WSMsgType, web

from otaharness.protocols.basics_station import (
    ROUTER_INFO_PATH,
    BasicsStationCodecError,
    RouterConfig,
    RouterInfoRequest,
    RouterInfoResponse,
    VersionMessage,
    format_eui,
    parse_eui,
)
from otaharness.protocols.json_input import JsonInputError, parse_json_object
from otaharness.runtime import timeline
from otaharness.runtime.clock import Clock
from otaharness.servers.basics_station.auth import Refusal, StationAuthenticator
from otaharness.servers.basics_station.registry import StationRegistry

log = logging.getLogger(__name__)

ROUTER_DATA_PATH = "/router-data/"
MAX_MESSAGE_SIZE = 64 * 1024
DISCOVERY_TIMEOUT = 30.0  # seconds on the loop clock to wait for the router-info request


# Memory: a station may stay connected for weeks and send 64 KiB frames all day, and stations
# come and go. A live connection keeps its most recent text frames (for byte-exact checks) within
# these bounds, plus counters; a closed one is summarised (no websocket, a shorter window) into
# ``history``, which keeps the most recent connections only.
TEXTS_KEPT = 256
TEXT_BYTES_KEPT = 512 * 1024
CLOSED_TEXTS_KEPT = 32
CLOSED_TEXT_BYTES_KEPT = 64 * 1024
HISTORY_KEPT = 1000


class TextWindow:
    """The most recent text frames of one connection, at most ``max_texts`` of them and
    ``max_bytes`` of UTF-8 (the newest is always kept); ``seen`` counts every frame."""

    def __init__(self, max_texts: int = TEXTS_KEPT, max_bytes: int = TEXT_BYTES_KEPT) -> None:
        self.max_texts = max_texts
        self.max_bytes = max_bytes
        self.seen = 0
        self._texts: deque[tuple[str, int]] = deque()
        self._bytes = 0

    def append(self, text: str) -> None:
        self.seen += 1
        size = len(text.encode("utf-8", "surrogatepass"))
        self._texts.append((text, size))
        self._bytes += size
        self._trim()

    def shrink(self, max_texts: int, max_bytes: int) -> TextWindow:
        self.max_texts, self.max_bytes = max_texts, max_bytes
        self._trim()
        return self

    def _trim(self) -> None:
        while len(self._texts) > 1 and (len(self._texts) > self.max_texts or self._bytes > self.max_bytes):
            self._bytes -= self._texts.popleft()[1]

    def __iter__(self):
        return (text for text, _ in self._texts)

    def __len__(self) -> int:
        return len(self._texts)


@dataclass
class LnsSession:
    """One station's live data connection."""

    eui: int
    websocket: web.WebSocketResponse
    version: VersionMessage | None = None
    identity: str = ""  # which credential it came with: "certificate <serial>", "token <digest>" ("" without TLS)
    window: TextWindow = field(default_factory=TextWindow)  # recent text frames, byte-exact
    messages: int = 0  # JSON messages with a msgtype (every one, not only those kept)
    peer: str = ""  # the station's address, for the scenario's transcript

    @property
    def texts(self) -> list[str]:
        """The most recent text frames as received (``window.seen`` counts all of them)."""
        return list(self.window)

    async def send(self, message: dict[str, Any] | str) -> None:
        text = message if isinstance(message, str) else json.dumps(message)
        timeline.exchange("lns", self.peer, "←", text)
        await self.websocket.send_str(text)

    def summary(self) -> ClosedLnsSession:
        return ClosedLnsSession(self.eui, self.version, self.identity,
                                self.window.shrink(CLOSED_TEXTS_KEPT, CLOSED_TEXT_BYTES_KEPT),
                                self.messages, self.websocket.close_code)


@dataclass
class ClosedLnsSession:
    """What ``history`` keeps of a connection once it closed."""

    eui: int
    version: VersionMessage | None
    identity: str
    window: TextWindow
    messages: int
    close_code: int | None

    @property
    def texts(self) -> list[str]:
        return list(self.window)


Handler = Callable[[LnsSession, dict[str, Any]], Awaitable[None]]


class NetworkServerCore(Protocol):
    """What :meth:`LnsServer.attach_network_server` needs (``otaharness.servers.lorawan``)."""

    async def handle_uplink(self, gateway_id: int, message: dict[str, Any]) -> None: ...

    async def handle_dntxed(self, gateway_id: int, message: dict[str, Any]) -> None: ...

    def handle_timesync(self, gateway_id: int, message: dict[str, Any]) -> dict[str, Any]: ...


class LnsServer:
    def __init__(self, registry: StationRegistry, router_config: dict[str, Any], clock: Clock,
                 muxs_eui: int = 1, auth: StationAuthenticator | None = None) -> None:
        self.registry = registry
        self.auth = auth or StationAuthenticator(registry, required=False)
        self.router_config = RouterConfig.from_dict(router_config)
        self.clock = clock
        self.muxs_eui = muxs_eui
        self.base_url = ""  # ws://host:port, set once the server listens
        self.sessions: dict[int, LnsSession] = {}  # live connections
        # recent connections, oldest first: live ones as they are, closed ones summarised
        self.history: deque[LnsSession | ClosedLnsSession] = deque(maxlen=HISTORY_KEPT)
        self.handlers: dict[str, Handler] = {
            name[len("handle_"):]: getattr(self, name) for name in dir(self) if name.startswith("handle_")
        }

    def on(self, msgtype: str, handler: Handler) -> None:
        """Register (or replace) the handler of one message type."""
        self.handlers[msgtype] = handler

    def add_routes(self, app: web.Application) -> None:
        app.router.add_get(ROUTER_INFO_PATH, self.router_info)
        app.router.add_get(ROUTER_DATA_PATH + "{eui}", self.router_data)

    def data_uri(self, eui: int) -> str:
        return f"{self.base_url}{ROUTER_DATA_PATH}{format_eui(eui, '')}"

    # -- discovery --------------------------------------------------------------------------
    async def router_info(self, request: web.Request) -> web.StreamResponse:
        refusal = self.auth.check(request)  # no station credential at all: no websocket
        if refusal is not None:
            return self.auth.refuse(refusal, "router-info")
        websocket = web.WebSocketResponse(max_msg_size=MAX_MESSAGE_SIZE)
        await websocket.prepare(request)
        try:
            async with asyncio.timeout(DISCOVERY_TIMEOUT):
                message = await websocket.receive()
        except TimeoutError:
            await websocket.close(code=WSCloseCode.POLICY_VIOLATION, message=b"no router-info request")
            return websocket
        if message.type != WSMsgType.TEXT:
            await _close_for(websocket, message)
            return websocket
        try:
            eui = RouterInfoRequest.decode(message.data).router
        except BasicsStationCodecError as error:
            log.warning("router-info: bad request: %s", error)
            await websocket.close(code=WSCloseCode.INVALID_TEXT, message=_reason(f"bad router-info request: {error}"))
            return websocket
        refusal = self.auth.check(request, eui)
        if isinstance(refusal, Refusal):  # another station's credential: an error reply, as ChirpStack
            log.warning("router-info: refusing %s: %s", format_eui(eui), refusal.reason)
            await websocket.send_str(RouterInfoResponse.reject(eui, refusal.reason).to_json())
        else:
            await websocket.send_str(self.discover(eui).to_json())
        await websocket.close()
        return websocket

    def discover(self, eui: int) -> RouterInfoResponse:
        twin = self.registry.find(eui)
        if twin is None:
            log.warning("router-info: unknown router %s", format_eui(eui))
            return RouterInfoResponse.reject(eui, f"unknown router {format_eui(eui)}")
        if twin.lns_reject_reason:
            log.info("router-info: rejecting %s: %s", format_eui(eui), twin.lns_reject_reason)
            return RouterInfoResponse.reject(eui, twin.lns_reject_reason)
        return RouterInfoResponse.accept(eui, self.muxs_eui, self.data_uri(eui))

    # -- data connection ------------------------------------------------------------------------
    async def router_data(self, request: web.Request) -> web.StreamResponse:
        try:
            eui = parse_eui(request.match_info["eui"])
        except BasicsStationCodecError as error:
            return web.Response(status=400, text=f"bad station EUI in path: {error}\n")
        refusal = self.auth.check(request, eui)
        if refusal is not None:
            return self.auth.refuse(refusal, f"LNS connection of {format_eui(eui)}")
        twin = self.registry.find(eui)
        if twin is None:
            return web.Response(status=404, text=f"unknown router {format_eui(eui)}\n")
        if twin.lns_reject_reason:
            return web.Response(status=403, text=f"router rejected: {twin.lns_reject_reason}\n")
        websocket = web.WebSocketResponse(max_msg_size=MAX_MESSAGE_SIZE)
        await websocket.prepare(request)
        previous = self.sessions.get(eui)
        # A station has one connection: the newer, authenticated one wins (The Things Stack aborts
        # the old one, "new connection from same gateway"; ChirpStack's bridge refuses the newcomer,
        # which locks a station out after a power cut until its dead connection times out).
        if previous is not None:
            await previous.websocket.close(code=WSCloseCode.POLICY_VIOLATION, message=b"replaced by a new connection")
        session = self.sessions[eui] = LnsSession(eui, websocket, identity=self.auth.identity_name(request),
                                                       peer=request.remote or format_eui(eui))
        self.history.append(session)
        log.info("LNS: %s connected", format_eui(eui))
        try:
            async for message in websocket:
                if message.type != WSMsgType.TEXT:
                    await _close_for(websocket, message)
                    break
                await self.dispatch(session, message.data)
        finally:
            if self.sessions.get(eui) is session:
                del self.sessions[eui]
            self._summarise(session)
            log.info("LNS: %s disconnected (%s)", format_eui(eui), websocket.close_code)
        return websocket

    def _summarise(self, session: LnsSession) -> None:
        """Replace a closed connection in ``history`` by its summary (drops the websocket)."""
        for position in range(len(self.history) - 1, -1, -1):
            if self.history[position] is session:
                self.history[position] = session.summary()
                return

    async def dispatch(self, session: LnsSession, text: str) -> None:
        session.window.append(text)
        timeline.exchange("lns", session.peer, "→", text)
        try:
            document = parse_json_object(text, max_bytes=MAX_MESSAGE_SIZE)
        except JsonInputError as error:
            log.warning("LNS: %s sent text the JSON reader refuses (%s): closing", format_eui(session.eui), error)
            await session.websocket.close(code=WSCloseCode.INVALID_TEXT, message=_reason(f"bad message: {error}"))
            return
        if not isinstance(document.get("msgtype"), str):
            log.warning("LNS: %s sent JSON without 'msgtype': closing", format_eui(session.eui))
            await session.websocket.close(code=WSCloseCode.INVALID_TEXT, message=b"expected a JSON object with 'msgtype'")
            return
        session.messages += 1
        msgtype: str = document["msgtype"]
        handler = self.handlers.get(msgtype)
        if handler is None:
            log.warning("LNS: %s sent unhandled msgtype %r", format_eui(session.eui), msgtype[:40])
            return
        try:
            await handler(session, document)
        except ValueError as error:  # BasicsStationCodecError, or a network server's LoRaWANError
            log.warning("LNS: bad %s from %s: %s", msgtype, format_eui(session.eui), error)
            await session.websocket.close(code=WSCloseCode.INVALID_TEXT, message=_reason(f"bad {msgtype}: {error}"))
        except ConnectionResetError:  # the peer went away while we answered
            raise
        except Exception:
            log.exception("LNS: the %s handler failed on a message from %s: closing", msgtype, format_eui(session.eui))
            await session.websocket.close(code=WSCloseCode.INTERNAL_ERROR, message=b"internal error")

    async def reject(self, eui: int, reason: str) -> None:
        """Close a rejected station's live connection (its next discovery gets ``error``)."""
        session = self.sessions.get(eui)
        if session is not None:
            await session.websocket.close(code=WSCloseCode.POLICY_VIOLATION, message=_reason(f"rejected: {reason}"))

    async def close_all(self) -> None:
        for session in list(self.sessions.values()):
            await session.websocket.close(code=WSCloseCode.GOING_AWAY, message=b"server shutdown")

    # -- a network server behind this LNS ---------------------------------------------------------
    def attach_network_server(self, network_server: NetworkServerCore) -> None:
        """Route the radio messages to a LoRaWAN network server (``otaharness.servers.lorawan``):
        ``updf``/``jreq``/``rejoin`` → ``handle_uplink``, ``dntxed`` → ``handle_dntxed``,
        ``timesync`` → ``handle_timesync`` (answered on the same connection). The network
        server's downlinks come back through :meth:`send_dnmsg`. Uplinks and ``dntxed`` the
        network server cannot use are dropped by it with a log line and the connection stays up
        (radio garbage must not cut a gateway off); a malformed ``timesync`` closes it with 1007."""

        async def uplink(session: LnsSession, message: dict[str, Any]) -> None:
            await network_server.handle_uplink(session.eui, message)

        async def dntxed(session: LnsSession, message: dict[str, Any]) -> None:
            await network_server.handle_dntxed(session.eui, message)

        async def timesync(session: LnsSession, message: dict[str, Any]) -> None:
            await session.send(network_server.handle_timesync(session.eui, message))

        for msgtype in ("updf", "jreq", "rejoin"):
            self.on(msgtype, uplink)
        self.on("dntxed", dntxed)
        self.on("timesync", timesync)

    async def send_dnmsg(self, gateway_id: int, dnmsg: dict[str, Any]) -> None:
        """``GatewayPort.send_dnmsg``: one ``dnmsg`` to a connected station."""
        session = self.sessions.get(gateway_id)
        if session is None or session.websocket.closed:
            raise ConnectionError(f"station {format_eui(gateway_id)} is not connected")
        try:
            await session.send(dnmsg)
        except (ConnectionResetError, RuntimeError) as error:  # closing under our feet
            raise ConnectionError(f"station {format_eui(gateway_id)}: {error}") from error

    # -- handlers -------------------------------------------------------------------------------
    async def handle_version(self, session: LnsSession, message: dict[str, Any]) -> None:
        version = VersionMessage.from_dict(message)
        session.version = version
        if version.package:  # Azure writes reported `Package` only for a non-empty package
            self.registry.update(session.eui, reported_package=version.package)
        log.info("Received 'version' message for station %s with package '%s'",
                 format_eui(session.eui), version.package)
        config = dataclasses.replace(self.router_config, mux_time=self.clock.epoch())
        await session.send(config.to_json())


def _reason(text: str) -> bytes:
    """A close frame's reason: at most 123 bytes of UTF-8, so cut at 120 on a character boundary
    (a reason cut inside a character is invalid UTF-8, which the peer answers with 1007)."""
    return text.encode("utf-8")[:120].decode("utf-8", "ignore").encode("utf-8")


async def _close_for(websocket: web.WebSocketResponse, message: Any) -> None:
    if message.type == WSMsgType.BINARY:
        await websocket.close(code=WSCloseCode.UNSUPPORTED_DATA, message=b"binary frames are not part of the protocol")
    elif message.type == WSMsgType.ERROR:
        error = websocket.exception()
        code = getattr(error, "code", WSCloseCode.PROTOCOL_ERROR)
        await websocket.close(code=code, message=_reason(f"websocket error: {error}"))

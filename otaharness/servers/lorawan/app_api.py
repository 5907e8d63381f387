"""The network server's application interface: HTTP + JSON (documented in docs/lorawan.md).

=======  ==========================================  ===============================================
method   path                                        effect
=======  ==========================================  ===============================================
PUT      /api/devices/{devEui}                       register a device: OTAA ``joinEui``, ``appKey``
                                                     or ABP ``devAddr``, ``nwkSKey``, ``appSKey``;
                                                     ``class`` "A" (default) or "C" → 201 device
GET      /api/devices/{devEui}                       → 200 the device (session, counters, gateway)
POST     /api/devices/{devEui}/queue                 ``{"fPort", "payload" (hex), "confirmed"}``
                                                     → 201 ``{"id"}``
GET      /api/devices/{devEui}/queue                 → 200 ``{"queue": [...], "dropped": [...]}``
                                                     (not yet sent; given up, with the reason)
GET      /api/uplinks/{fPort}?since=N                → 200 ``{"events": [...], "next": M}``: uplink
                                                     events on that FPort with ``seq`` ≥ N
PUT      /api/multicast-groups/{name}                ``mcAddr`` (8 hex digits), ``mcNwkSKey``,
                                                     ``mcAppSKey``, ``frequency``, ``dr``, ``fCnt``
                                                     → 201 the group
POST     /api/multicast-groups/{name}/queue          ``{"fPort", "payload", "gateways"?}`` → 202
                                                     ``{"id"}``; default gateways: every station
                                                     connected to the LNS
GET      /api/multicast-groups/{name}/queue          → 200 ``{"frames": [...]}``: each frame's
                                                     ``fCnt`` and the gateways that sent it
=======  ==========================================  ===============================================

EUIs are 16 hex digits (``-`` allowed), keys 32 hex digits, payloads hex (at most 222 octets),
group names ``[A-Za-z0-9._-]{1,64}``. Bodies are read with the project's one JSON reader and
checked against the schemas of :mod:`.schemas` before anything is stored: unknown fields, wrong
types, values out of range → 400 naming the field. Errors: 400 bad input, 404 unknown device or
group, 409 a device or group that exists, each ``{"error": "…"}``. ``GET /openapi.json`` serves
the OpenAPI 3.1 document of this interface (:mod:`.openapi`).
"""

from __future__ import annotations

import collections
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from otaharness.protocols.basics_station import BasicsStationCodecError, format_eui, parse_eui
from otaharness.protocols.basics_station.validation import integral
from otaharness.servers.json_body import read_json_object

from . import schemas
from .openapi import openapi_document
from .registry import Device, MulticastGroup, RegistryError, UnknownDevice
from .server import MulticastFrame, NetworkServer, UplinkMeta

MAX_EVENTS = 100_000  # uplink events kept in memory
_GROUP_NAME = re.compile(r"[A-Za-z0-9._-]{1,64}")
_FPORT = re.compile(r"[0-9]{1,3}")
_SINCE = re.compile(r"[0-9]{1,19}")
_HEX = re.compile(r"(?:[0-9A-Fa-f]{2})*")


class ApiInputError(ValueError):
    """A field of an application API request is missing or malformed."""


@dataclass(frozen=True)
class UplinkEvent:
    seq: int
    dev_eui: int
    fport: int
    payload: bytes
    meta: UplinkMeta

    def to_dict(self) -> dict[str, Any]:
        radio = self.meta.best.radio
        return {"seq": self.seq, "devEui": format_eui(self.dev_eui, ""), "fPort": self.fport,
                "payload": self.payload.hex(), "fCnt": self.meta.fcnt, "confirmed": self.meta.confirmed,
                "gateway": format_eui(self.meta.gateway_id, ""), "gateways": len(self.meta.receptions),
                "rssi": radio.upinfo.rssi, "snr": radio.upinfo.snr, "dr": radio.dr, "frequency": radio.freq,
                "gpsTime": self.meta.gps_time}


def _hex_bytes(document: dict[str, Any], key: str, size: int | None = None, *, default: bytes | None = None) -> bytes:
    value = document.get(key)
    if value is None and default is not None:
        return default
    if not isinstance(value, str):
        raise ApiInputError(f"{key!r} must be a hex string")
    if not _HEX.fullmatch(value):  # bytes.fromhex would also take spaces and a final newline
        raise ApiInputError(f"{key!r} is not hex (pairs of 0-9 A-F a-f): {value[:80]!r}")
    data = bytes.fromhex(value)
    if size is not None and len(data) != size:
        raise ApiInputError(f"{key!r} must be {size} octets, got {len(data)}")
    return data


def _int(document: dict[str, Any], key: str, low: int, high: int, default: int | None = None) -> int:
    value = integral(document.get(key, default))
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ApiInputError(f"{key!r} must be an integer in {low}..{high}, got {value!r}")
    return value


def _eui(text: str) -> int:
    try:
        return parse_eui(text)
    except BasicsStationCodecError as error:
        raise ApiInputError(str(error)) from error


def _group_name(text: str) -> str:
    if not _GROUP_NAME.fullmatch(text):
        raise ApiInputError(f"multicast group name must be 1..64 of A-Z a-z 0-9 . _ -, got {text[:80]!r}")
    return text


def device_to_dict(device: Device) -> dict[str, Any]:
    return {"devEui": format_eui(device.dev_eui, ""), "class": device.device_class.value,
            "activation": "OTAA" if device.is_otaa else "ABP", "joined": device.activated,
            "devAddr": None if device.dev_addr is None else f"{device.dev_addr:08X}",
            "fCntUp": device.fcnt_up, "nFCntDown": device.nfcnt_down,
            "lastGateway": None if device.last_gateway is None else format_eui(device.last_gateway, "")}


def group_to_dict(group: MulticastGroup) -> dict[str, Any]:
    return {"name": group.name, "mcAddr": f"{group.mc_addr:08X}", "frequency": group.frequency,
            "dr": group.data_rate, "fCnt": group.fcnt}


class ApplicationApi:
    """Routes over a :class:`NetworkServer`; ``connected_gateways()`` names the default gateways
    of a multicast frame (the stations connected to the LNS)."""

    def __init__(self, network_server: NetworkServer, connected_gateways: Callable[[], list[int]]) -> None:
        self.ns = network_server
        self.connected_gateways = connected_gateways
        # The last MAX_EVENTS uplinks; ``seq`` keeps counting past those that fell off the front.
        self.events: collections.deque[UplinkEvent] = collections.deque(maxlen=MAX_EVENTS)
        self._next_seq = 0
        self.multicast_frames: dict[str, list[MulticastFrame]] = {}
        for fport in range(1, 256):
            network_server.on_uplink(fport, self._record)

    def _record(self, dev_eui: int, fport: int, payload: bytes, meta: UplinkMeta) -> None:
        self.events.append(UplinkEvent(self._next_seq, dev_eui, fport, payload, meta))
        self._next_seq += 1

    def uplinks(self, fport: int | None = None, dev_eui: int | None = None, since: int = 0) -> list[UplinkEvent]:
        """Kept events with ``seq`` >= ``since``, oldest first; read from the newest end, so a
        poller that keeps up costs what it gets, not the whole window."""
        newer: list[UplinkEvent] = []
        for event in reversed(self.events):
            if event.seq < since:
                break
            if (fport is None or event.fport == fport) and (dev_eui is None or event.dev_eui == dev_eui):
                newer.append(event)
        newer.reverse()
        return newer

    def add_routes(self, app: web.Application) -> None:
        app.middlewares.append(self.errors)
        app.router.add_get("/openapi.json", self.get_openapi)
        app.router.add_put("/api/devices/{eui}", self.put_device)
        app.router.add_get("/api/devices/{eui}", self.get_device)
        app.router.add_post("/api/devices/{eui}/queue", self.post_downlink)
        app.router.add_get("/api/devices/{eui}/queue", self.get_queue)
        app.router.add_get("/api/uplinks/{fport}", self.get_uplinks)
        app.router.add_put("/api/multicast-groups/{name}", self.put_group)
        app.router.add_post("/api/multicast-groups/{name}/queue", self.post_multicast)
        app.router.add_get("/api/multicast-groups/{name}/queue", self.get_multicast)

    @web.middleware
    async def errors(self, request: web.Request,
                     handler: Callable[[web.Request], Awaitable[web.StreamResponse]]) -> web.StreamResponse:
        try:
            return await handler(request)
        except web.HTTPException as error:  # aiohttp's own: no such route, method not allowed
            if error.status < 400:
                raise
            return web.json_response({"error": error.reason if error.text is None else error.text.strip()},
                                     status=error.status)
        except UnknownDevice as error:
            return web.json_response({"error": str(error)}, status=404)
        except RegistryError as error:
            status = 409 if "exists" in str(error) or "already" in str(error) else 400
            return web.json_response({"error": str(error)}, status=status)
        except (ApiInputError, ValueError) as error:
            return web.json_response({"error": str(error)}, status=400)

    async def get_openapi(self, request: web.Request) -> web.Response:
        return web.json_response(openapi_document(f"{request.scheme}://{request.host}"))

    # -- devices ---------------------------------------------------------------------------------
    async def put_device(self, request: web.Request) -> web.Response:
        dev_eui = _eui(request.match_info["eui"])
        document = await read_json_object(request, ApiInputError, schema=schemas.DEVICE_PUT)
        device_class = document.get("class", "A")
        if device_class not in ("A", "C"):
            raise ApiInputError(f"'class' must be \"A\" or \"C\", got {device_class!r}")
        if self.ns.registry.find(dev_eui) is not None:
            raise RegistryError(f"device {format_eui(dev_eui)} already exists")
        if "appKey" in document:
            join_eui = _eui(document.get("joinEui", "0000000000000000"))
            device = self.ns.add_otaa_device(dev_eui, join_eui, _hex_bytes(document, "appKey", 16), device_class)
        else:
            dev_addr = int.from_bytes(_hex_bytes(document, "devAddr", 4), "big")
            device = self.ns.add_abp_device(dev_eui, dev_addr, _hex_bytes(document, "nwkSKey", 16),
                                            _hex_bytes(document, "appSKey", 16), device_class)
        return web.json_response(device_to_dict(device), status=201)

    async def get_device(self, request: web.Request) -> web.Response:
        device = self.ns.device(_eui(request.match_info["eui"]))
        # its fCntUp leaves the server: committed first, as before an uplink is forwarded
        self.ns.registry.commit()
        return web.json_response(device_to_dict(device))

    async def post_downlink(self, request: web.Request) -> web.Response:
        dev_eui = _eui(request.match_info["eui"])
        self.ns.device(dev_eui)  # 404 first
        document = await read_json_object(request, ApiInputError, schema=schemas.DOWNLINK_POST)
        confirmed = document.get("confirmed", False)
        if not isinstance(confirmed, bool):
            raise ApiInputError("'confirmed' must be true or false")
        handle = self.ns.enqueue_downlink(dev_eui, _int(document, "fPort", 1, 255),
                                          _hex_bytes(document, "payload"), confirmed)
        return web.json_response({"id": handle.queue_id}, status=201)

    async def get_queue(self, request: web.Request) -> web.Response:
        dev_eui = _eui(request.match_info["eui"])
        self.ns.device(dev_eui)
        queue = [{"id": item.queue_id, "fPort": item.fport, "payload": item.payload.hex(), "confirmed": item.confirmed,
                  "inFlight": item.in_flight_diid is not None}
                 for item in self.ns.registry.queued(dev_eui, waiting_only=False)]
        dropped = [{"id": item.queue_id, "size": item.size, "reason": item.reason, "at": item.at}
                   for item in self.ns.dropped_downlinks if item.dev_eui == dev_eui]
        return web.json_response({"queue": queue, "dropped": dropped})

    async def get_uplinks(self, request: web.Request) -> web.Response:
        fport = request.match_info["fport"]
        if not _FPORT.fullmatch(fport) or not 1 <= int(fport) <= 255:
            raise ApiInputError(f"FPort must be 1..255, got {fport[:80]!r}")
        since = request.query.get("since", "0")
        if not _SINCE.fullmatch(since) or int(since) > schemas.MAX_SINCE:
            raise ApiInputError(f"'since' must be a sequence number (0..2**63-1), got {since[:80]!r}")
        events = self.uplinks(int(fport), since=int(since))
        return web.json_response({"events": [event.to_dict() for event in events], "next": self._next_seq})

    # -- multicast -------------------------------------------------------------------------------
    async def put_group(self, request: web.Request) -> web.Response:
        name = _group_name(request.match_info["name"])
        document = await read_json_object(request, ApiInputError, schema=schemas.GROUP_PUT)
        if self.ns.registry.find_group(name) is not None:
            raise RegistryError(f"multicast group {name!r} already exists")
        group = self.ns.create_multicast_group(
            int.from_bytes(_hex_bytes(document, "mcAddr", 4), "big"), _hex_bytes(document, "mcNwkSKey", 16),
            _hex_bytes(document, "mcAppSKey", 16), _int(document, "frequency", 0, 0xFFFFFFFF),
            _int(document, "dr", 0, 15), name=name, fcnt=_int(document, "fCnt", 0, 0xFFFFFFFF, 0))
        return web.json_response(group_to_dict(group), status=201)

    def _group(self, name: str) -> MulticastGroup:
        group = self.ns.registry.find_group(_group_name(name))
        if group is None:
            raise UnknownDevice(f"unknown multicast group {name!r}")
        return group

    async def post_multicast(self, request: web.Request) -> web.Response:
        group = self._group(request.match_info["name"])
        document = await read_json_object(request, ApiInputError, schema=schemas.MULTICAST_POST)
        gateways = document.get("gateways")
        if gateways is None:
            chosen = self.connected_gateways()
        elif isinstance(gateways, list) and all(isinstance(g, str) for g in gateways):
            chosen = list(dict.fromkeys(_eui(g) for g in gateways))  # one frame per gateway, however spelt
        else:
            raise ApiInputError("'gateways' must be a list of EUIs")
        frame = self.ns.enqueue_multicast(group, _int(document, "fPort", 1, 255), _hex_bytes(document, "payload"),
                                          chosen)
        frames = self.multicast_frames.setdefault(group.name, [])
        frames.append(frame)
        return web.json_response({"id": len(frames) - 1}, status=202)

    async def get_multicast(self, request: web.Request) -> web.Response:
        group = self._group(request.match_info["name"])
        frames = []
        for index, frame in enumerate(self.multicast_frames.get(group.name, [])):
            sent = frame.transmitted.result() if frame.transmitted.done() else None
            frames.append({"id": index, "fPort": frame.fport, "payload": frame.payload.hex(), "fCnt": frame.fcnt,
                           "gateways": [format_eui(g, "") for g in frame.gateways],
                           "transmittedBy": None if sent is None else
                           [format_eui(g, "") for g, dntxed in sent.items() if dntxed is not None]})
        return web.json_response({"group": group_to_dict(group), "frames": frames})

"""The CUPS endpoint ``POST /update-info``: what a station is sent, and the HTTP rules around it.

Decision (Azure ``CupsProtocolMessageProcessor`` and the reference test CUPS, fact sheet §8/§9.2),
per segment of the reply:

* ``cupsUri`` / ``tcUri``: sent when the twin has one and the request's differs.
* credential blobs: sent when the twin has one and the request's ``cupsCredCrc``/``tcCredCrc``
  differs from ``crc32(blob)``.
* update: when the twin's ``package`` differs (case-insensitively, as Azure) from the request's.
  With a ``fwKeyChecksum`` in the twin the station's ``keys`` must contain it, else no update is
  sent (the reference CUPS sends no signature then; Azure throws) and the reason is logged. A twin
  without key checksum and signature sends the update unsigned (the station runs it only if it
  has no ``sig-0.key``).

Authentication (with TLS, :mod:`.auth`): a request without a station certificate or a known
station token → 401 before its body is read; with the credential of another station than its
``router`` → 403. What the operator stored never turns into a 4xx: a stored signature the
station could not use (:func:`check_firmware_signature`) or a twin the reply cannot encode is
answered without the update (or without the segment) and the reason logged.

HTTP: the request needs ``Content-Length`` (411) of at most 2048 bytes (413, as Azure); bad JSON
or fields → 400 naming the field (the body is read with the project's one JSON reader: nesting,
NaN/Infinity and out-of-range numbers are refused like any other malformed body); unknown
station → 404. Errors are plain text. The reply is ``application/octet-stream`` with an
explicit Content-Length, never chunked (the station cannot read chunked bodies).
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

from aiohttp import web

from otaharness.protocols.basics_station import (
    UPDATE_INFO_PATH,
    BasicsStationCodecError,
    FirmwareSignature,
    UpdateInfoRequest,
    UpdateInfoResponse,
    check_firmware_signature,
    format_eui,
)
from otaharness.runtime import timeline
from otaharness.servers.basics_station.auth import StationAuthenticator
from otaharness.servers.basics_station.registry import StationRecord, StationRegistry

log = logging.getLogger(__name__)

RECENT = 10000  # how many requests/decisions are kept in memory for inspection
MAX_REQUEST_BODY = 2048  # Azure CupsEndpoint rejects longer bodies
FIRMWARE_PATH = "/admin/firmware/"


@dataclass(frozen=True)
class CupsDecision:
    response: UpdateInfoResponse
    reason: str  # one line saying what was sent and why (the "logs why")


def firmware_name(fw_url: str) -> str | None:
    """The store name in a ``fwUrl`` this server issued (``…/admin/firmware/<name>``); a text
    that is no URL at all (an unclosed ``[``) raises ValueError."""
    path = urlsplit(fw_url).path
    return path[len(FIRMWARE_PATH):] if path.startswith(FIRMWARE_PATH) else None


def decide_update_info(request: UpdateInfoRequest, twin: StationRecord,
                       read_firmware: Callable[[str], bytes | None]) -> CupsDecision:
    notes: list[str] = []
    cups_uri = twin.cups_uri if twin.cups_uri and request.cups_uri != twin.cups_uri else None
    tc_uri = twin.tc_uri if twin.tc_uri and request.tc_uri != twin.tc_uri else None
    notes += [f"{name} {uri}" for name, uri in (("cupsUri", cups_uri), ("tcUri", tc_uri)) if uri]
    cups_credentials = twin.cups_credentials if twin.cups_cred_crc not in (None, request.cups_cred_crc) else b""
    tc_credentials = twin.tc_credentials if twin.tc_cred_crc not in (None, request.tc_cred_crc) else b""
    notes += [f"{name} credentials" for name, blob in (("cups", cups_credentials), ("tc", tc_credentials)) if blob]
    update, signature, update_note = _firmware_for(request, twin, read_firmware)
    notes.append(update_note)
    response = UpdateInfoResponse(cups_uri, tc_uri, cups_credentials, tc_credentials, signature, update)
    return CupsDecision(response, "; ".join(notes))


def _firmware_for(request: UpdateInfoRequest, twin: StationRecord, read_firmware: Callable[[str], bytes | None]
                  ) -> tuple[bytes, FirmwareSignature | None, str]:
    if twin.package is None:
        return b"", None, "no update: no desired package"
    if (request.package or "").casefold() == twin.package.casefold():
        return b"", None, f"no update: station runs the desired package {twin.package!r}"
    if twin.fw_key_checksum is not None and twin.fw_key_checksum not in request.keys:
        return b"", None, (f"no update to {twin.package!r}: the station lacks the signing key "
                           f"(fwKeyChecksum {twin.fw_key_checksum} not in keys {list(request.keys)})")
    try:
        name = firmware_name(twin.fw_url or "")
        firmware = read_firmware(name) if name else None
    except ValueError as error:  # a twin edited by hand can hold any URL (RegistryError is one)
        return b"", None, f"no update to {twin.package!r}: bad fwUrl {twin.fw_url!r}: {error}"
    if not firmware:
        return b"", None, f"no update to {twin.package!r}: firmware {twin.fw_url!r} not in the store"
    if twin.fw_key_checksum is None and not twin.fw_signature:
        return firmware, None, f"update to {twin.package!r} ({len(firmware)} bytes) UNSIGNED: the twin has no key/signature"
    try:
        check_firmware_signature(twin.fw_signature, twin.fw_key_checksum)
        signature = FirmwareSignature(twin.fw_key_checksum, twin.fw_signature)  # type: ignore[arg-type]
    except BasicsStationCodecError as error:
        return b"", None, f"no update to {twin.package!r}: the stored signature is unusable: {error}"
    return firmware, signature, (f"update to {twin.package!r} ({len(firmware)} bytes) signed with key "
                                 f"{twin.fw_key_checksum}")


class CupsEndpoint:
    """aiohttp handler of ``POST /update-info`` over the registry and the firmware store."""

    def __init__(self, registry: StationRegistry, read_firmware: Callable[[str], bytes | None],
                 auth: StationAuthenticator | None = None) -> None:
        self.registry = registry
        self.read_firmware = read_firmware
        self.auth = auth or StationAuthenticator(registry, required=False)
        # The latest request bodies as received and (station EUI, reason) per answer, for checks.
        self.requests: deque[bytes] = deque(maxlen=RECENT)
        self.decisions: deque[tuple[int, str]] = deque(maxlen=RECENT)
        # (station EUI, local port, credential detail) per answered request: which endpoint and
        # which credential a station came with (the credential by serial or token digest only).
        self.arrivals: deque[tuple[int, int, str]] = deque(maxlen=RECENT)

    def add_routes(self, app: web.Application) -> None:
        app.router.add_post(UPDATE_INFO_PATH, self.update_info)

    async def update_info(self, http: web.Request) -> web.Response:
        refusal = self.auth.check(http)  # before the body: who it is must be known first
        if refusal is not None:
            return self.auth.refuse(refusal, "CUPS request")
        if http.content_length is None:
            return _refuse(411, "Content-Length required (chunked requests are not accepted)")
        if http.content_length > MAX_REQUEST_BODY:
            return _refuse(413, f"request body of {http.content_length} bytes exceeds {MAX_REQUEST_BODY}")
        body = await http.read()
        self.requests.append(body)
        try:
            request = UpdateInfoRequest.decode(body)
        except BasicsStationCodecError as error:
            return _refuse(400, f"bad update-info request: {error}")
        refusal = self.auth.check(http, request.router)
        if refusal is not None:
            return self.auth.refuse(refusal, f"CUPS request for {format_eui(request.router)}")
        twin = self.registry.find(request.router)
        if twin is None:
            return _refuse(404, f"unknown station {format_eui(request.router)}")
        decision = decide_update_info(request, twin, self.read_firmware)
        try:
            reply = decision.response.encode()
        except BasicsStationCodecError as error:  # a twin edited by hand: answer, do not fail
            decision = CupsDecision(UpdateInfoResponse(), f"no updates: the twin cannot be encoded: {error}")
            reply = decision.response.encode()
        sockname = http.transport.get_extra_info("sockname") if http.transport is not None else None
        self.arrivals.append((request.router, sockname[1] if sockname else 0, self.auth.identity_name(http)))
        self.registry.update(request.router, last_cups_decision=decision.reason)
        self.decisions.append((request.router, decision.reason))
        log.info("CUPS %s: %s", format_eui(request.router), decision.reason)
        timeline.exchange("cups", http.remote or "?", f"decision for {format_eui(request.router)}", decision.reason)
        # bytes body: aiohttp sends Content-Length and no chunking.
        return web.Response(body=reply, content_type="application/octet-stream")


def _refuse(status: int, message: str) -> web.Response:
    log.warning("CUPS refused a request (%d): %s", status, message)
    return web.Response(status=status, text=message + "\n")

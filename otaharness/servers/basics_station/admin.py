"""Admin HTTP API of the Basics Station back end (served on the CUPS port): our stand-in for the
Azure IoT Hub device twin and the firmware storage container that the provisioning CLI writes.

All bodies are JSON unless noted; blobs and signatures are base64; ``{eui}`` is any EUI text the
station understands (``AABBCCDDEEFF0011``, ``AA-BB-…``, ID6 ``::1``). JSON bodies are read with
the project's one JSON reader and checked against the schemas of :mod:`.schemas` before anything
is stored (unknown fields, wrong types, values out of range or too long: 400 naming the field).
Every path takes the server's bearer token (``Authorization: Bearer …``, 401 without it). A
signature is checked at upload (strict DER ECDSA P-256, 8..72 bytes, with its key checksum): a
signature no station can verify is refused with 400 and nothing is stored. Bearer tokens inside a
credential blob of ``PUT /admin/stations/{eui}`` become accepted station tokens.
Errors: 400 bad input, 404 unknown station/firmware, 409 firmware name taken, 413 firmware over
16 MiB, each with ``{"error": "…"}``. ``GET /openapi.json`` serves the OpenAPI 3.1 document of
this port (:mod:`.openapi`).

=======  ==============================  =========================================================
method   path                            effect
=======  ==============================  =========================================================
PUT      /admin/stations/{eui}           create the station or merge fields: ``cupsUri``, ``tcUri``,
                                         ``cupsCredentials``, ``tcCredentials`` (base64 blobs;
                                         their CRCs are derived) → 200 the twin
GET      /admin/stations/{eui}           → 200 the twin (see ``StationRecord.to_dict``)
PUT      /admin/stations/{eui}/cups      set the desired firmware: ``package``, ``fwUrl``,
                                         ``fwKeyChecksum`` (uint or null), ``fwSignature`` (base64
                                         or null) → 200 the twin
POST     /admin/stations/{eui}/credentials  ``{"auth": "certificate"|"token"}``: a new credential set
                                         for the station (client certificate with CN = EUI and
                                         its key, or a bearer token registered for it) → 200
                                         ``{"files": {name: base64}}``: ``cups.uri`` and
                                         ``cups|tc.trust|crt|key`` as the station stores them
                                         (409 without TLS)
PUT      /admin/stations/{eui}/reject    ``{"reason": "…"}``: the LNS rejects the station from
                                         now on (discovery answers ``error``, a live connection
                                         is closed) → 200 the twin
DELETE   /admin/stations/{eui}/reject    accept the station again → 200 the twin
PUT      /admin/firmware/{name}          body = the update file (octets); never overwrites
                                         → 201 ``{"fwUrl": "<absolute URL>"}``
GET      /admin/firmware/{name}          → 200 the file
DELETE   /admin/firmware/{name}          → 204 (404 if absent)
=======  ==============================  =========================================================
"""

from __future__ import annotations

import base64
import dataclasses
import re
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from otaharness.protocols.basics_station import (
    UPDATE_INFO_PATH,
    BasicsStationCodecError,
    check_firmware_signature,
    format_eui,
    parse_eui,
)
from otaharness.protocols.basics_station.validation import integral
from otaharness.protocols.json_input import JsonInputError, validate
from otaharness.runtime.pki import Pki
from otaharness.servers.basics_station import schemas
from otaharness.servers.basics_station.cups import FIRMWARE_PATH
from otaharness.servers.basics_station.identity import (
    issue_credentials,
    register_blob_tokens,
)
from otaharness.servers.basics_station.openapi import openapi_document
from otaharness.servers.basics_station.registry import (
    FirmwareExists,
    FirmwareStore,
    RegistryError,
    StationRecord,
    StationRegistry,
    UnknownStation,
)
from otaharness.servers.json_body import read_json_object

MAX_FIRMWARE_SIZE = 16 * 1024 * 1024
_BASE64 = re.compile(schemas.BASE64_PATTERN.removeprefix("^").removesuffix("$"))  # fullmatch: no final newline


class AdminInputError(ValueError):
    """A field of an admin request is missing or malformed."""


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


def _base64_field(document: dict[str, Any], key: str, max_bytes: int, min_bytes: int = 0) -> bytes:
    """A base64 field, padded as the schema's pattern says; null or "" is empty."""
    value = document.get(key)
    if value is None:
        return b""
    if not isinstance(value, str) or not _BASE64.fullmatch(value):
        raise AdminInputError(f"{key!r} is not base64 (padded, A-Z a-z 0-9 + /): {str(value)[:40]!r}")
    try:
        blob = base64.b64decode(value, validate=True)
    except ValueError as error:  # binascii.Error, or a non-ASCII character
        raise AdminInputError(f"{key!r} is not base64: {error}") from error
    if blob and not min_bytes <= len(blob) <= max_bytes:
        raise AdminInputError(f"{key!r} holds {len(blob)} bytes; {min_bytes}..{max_bytes} fit")
    return blob


def _optional_str(document: dict[str, Any], key: str) -> str | None:
    value = document.get(key)
    if value is not None and not isinstance(value, str):
        raise AdminInputError(f"{key!r} must be a string or null")
    return value


def _validate(document: dict[str, Any], schema: dict[str, Any]) -> None:
    try:
        validate(document, schema)
    except JsonInputError as error:
        raise AdminInputError(str(error)) from error


def _printable(document: dict[str, Any], key: str) -> str | None:
    """A URI field: printable ASCII only (Python's reading of the schema's ``$`` lets a final
    newline through)."""
    value = _optional_str(document, key)
    if value is not None and not all("!" <= char <= "~" for char in value):
        raise AdminInputError(f"{key!r} must be printable ASCII without spaces, got {value[:80]!r}")
    return value


class AdminApi:
    def __init__(self, registry: StationRegistry, store: FirmwareStore,
                 on_reject: Callable[[int, str], Awaitable[None]], *, pki: Pki | None = None) -> None:
        self.pki = pki
        self.registry = registry
        self.store = store
        self.on_reject = on_reject

    def add_routes(self, app: web.Application) -> None:
        app.router.add_get("/openapi.json", self.get_openapi)
        app.router.add_put("/admin/stations/{eui}", self.put_station)
        app.router.add_get("/admin/stations/{eui}", self.get_station)
        app.router.add_put("/admin/stations/{eui}/cups", self.put_desired_firmware)
        app.router.add_post("/admin/stations/{eui}/credentials", self.issue_credentials)
        app.router.add_put("/admin/stations/{eui}/reject", self.reject_station)
        app.router.add_delete("/admin/stations/{eui}/reject", self.accept_station)
        app.router.add_put(FIRMWARE_PATH + "{name}", self.put_firmware)
        app.router.add_get(FIRMWARE_PATH + "{name}", self.get_firmware)
        app.router.add_delete(FIRMWARE_PATH + "{name}", self.delete_firmware)

    @web.middleware
    async def errors(self, request: web.Request,
                     handler: Callable[[web.Request], Awaitable[web.StreamResponse]]) -> web.StreamResponse:
        """Map input and registry errors of admin routes to JSON 4xx, and so aiohttp's own 4xx
        (no such route, method not allowed, body too large) on every path but the station's
        ``/update-info`` (which answers in plain text, as the reference CUPS)."""
        try:
            response: web.StreamResponse = await handler(request)
            return response
        except web.HTTPException as error:
            if error.status < 400 or request.path == UPDATE_INFO_PATH:
                raise
            return _error(error.status, error.reason if error.text is None else error.text.strip())
        except UnknownStation as error:
            return _error(404, str(error))
        except FirmwareExists as error:
            return _error(409, str(error))
        except (AdminInputError, RegistryError, BasicsStationCodecError) as error:
            return _error(400, str(error))

    # -- stations -------------------------------------------------------------------------
    @staticmethod
    def _eui(request: web.Request) -> int:
        return parse_eui(request.match_info["eui"])

    async def get_openapi(self, request: web.Request) -> web.Response:
        return web.json_response(openapi_document(f"{request.scheme}://{request.host}"))

    async def put_station(self, request: web.Request) -> web.Response:
        eui = self._eui(request)
        document = await read_json_object(request, AdminInputError)
        changes: dict[str, Any] = {}
        for key, field in (("cupsUri", "cups_uri"), ("tcUri", "tc_uri")):
            if key in document:
                changes[field] = _printable(document, key)
        for key, field in (("cupsCredentials", "cups_credentials"), ("tcCredentials", "tc_credentials")):
            if key in document:
                changes[field] = _base64_field(document, key, schemas.MAX_CREDENTIALS)
        _validate(document, schemas.STATION_PUT)  # the rest: unknown fields, lengths
        record = self.registry.find(eui) or StationRecord(eui)
        self.registry.put(dataclasses.replace(record, **changes))
        for blob in (changes.get("cups_credentials"), changes.get("tc_credentials")):
            try:
                register_blob_tokens(self.registry, eui, blob or b"")
            except BasicsStationCodecError:
                pass  # a blob the station cannot parse either (a fault scenario's): it holds no token
        return web.json_response(self.registry.get(eui).to_dict())

    async def get_station(self, request: web.Request) -> web.Response:
        return web.json_response(self.registry.get(self._eui(request)).to_dict())

    async def put_desired_firmware(self, request: web.Request) -> web.Response:
        eui = self._eui(request)
        self.registry.get(eui)  # 404 before validating the body
        document = await read_json_object(request, AdminInputError)
        checksum = integral(document.get("fwKeyChecksum"))
        if checksum is not None and (isinstance(checksum, bool) or not isinstance(checksum, int)
                                     or not 0 <= checksum <= 0xFFFFFFFF):
            raise AdminInputError(f"'fwKeyChecksum' must be an unsigned 32-bit int or null, got {checksum!r}")
        package = _optional_str(document, "package")
        if not package:
            raise AdminInputError("'package' is required")
        _validate(document, schemas.DESIRED_FIRMWARE_PUT)  # the rest: unknown fields, lengths
        signature = _base64_field(document, "fwSignature", schemas.MAX_SIGNATURE, schemas.MIN_SIGNATURE)
        if signature:
            try:
                check_firmware_signature(signature, checksum)
            except BasicsStationCodecError as error:
                raise AdminInputError(f"'fwSignature': {error}") from error
        record = self.registry.update(eui, package=package, fw_url=_printable(document, "fwUrl"),
                                      fw_key_checksum=checksum, fw_signature=signature)
        return web.json_response(record.to_dict())

    async def issue_credentials(self, request: web.Request) -> web.Response:
        eui = self._eui(request)
        twin = self.registry.get(eui)
        document = await read_json_object(request, AdminInputError, schema=schemas.CREDENTIALS_POST)
        if self.pki is None:
            return _error(409, "the server runs without TLS: stations have no credentials to use")
        auth = document.get("auth") or "certificate"
        credentials = issue_credentials(self.pki, self.registry, eui, auth)
        files = {"cups.uri": (twin.cups_uri or "").encode()} if twin.cups_uri else {}
        for category in ("cups", "tc"):
            for extension, content in zip(("trust", "crt", "key"), credentials.stored_files()):
                files[f"{category}.{extension}"] = content
        return web.json_response({"stationEui": format_eui(eui, ""), "auth": auth, "files": {
            name: base64.b64encode(content).decode("ascii") for name, content in files.items()}})

    async def reject_station(self, request: web.Request) -> web.Response:
        eui = self._eui(request)
        self.registry.get(eui)
        document = await read_json_object(request, AdminInputError, schema=schemas.REJECT_PUT)
        reason = document.get("reason") or "rejected by the operator"
        if not isinstance(reason, str):
            raise AdminInputError("'reason' must be a string")
        record = self.registry.update(eui, lns_reject_reason=reason)
        await self.on_reject(eui, reason)
        return web.json_response(record.to_dict())

    async def accept_station(self, request: web.Request) -> web.Response:
        return web.json_response(self.registry.update(self._eui(request), lns_reject_reason=None).to_dict())

    # -- firmware store -------------------------------------------------------------------------
    async def put_firmware(self, request: web.Request) -> web.Response:
        name = self.store.check_name(request.match_info["name"])  # before reading up to 16 MiB
        content = await request.read()
        if not content:
            raise AdminInputError("firmware body is empty")
        self.store.add(name, content)
        return web.json_response({"fwUrl": str(request.url.with_path(FIRMWARE_PATH + name))}, status=201)

    async def get_firmware(self, request: web.Request) -> web.Response:
        content = self.store.read(request.match_info["name"])
        if content is None:
            return _error(404, f"no firmware {request.match_info['name']!r}")
        return web.Response(body=content, content_type="application/octet-stream")

    async def delete_firmware(self, request: web.Request) -> web.Response:
        if not self.store.remove(request.match_info["name"]):
            return _error(404, f"no firmware {request.match_info['name']!r}")
        return web.Response(status=204)

"""HTTP side of the OLT back end (aiohttp): turns requests into backend calls and results into
``{"data": …}`` envelopes; errors become ``{"errors": [{status, title, detail, …}]}``.

Body limits: JSON bodies up to ``json_limit`` bytes, blobs up to ``blob_limit``; beyond → 413,
and nothing is stored. A blob upload is read completely before anything is written.

Authentication comes first (the outermost middleware), before any body is read: every route but
``/openapi.json`` and the token endpoint takes a tenant's or device's bearer token; ``/v1/tenants``
takes the operator's alone. A missing or unknown token is 401 and nothing else happens.

Validation at the door: JSON bodies are read with the project's one JSON reader
(``otaharness.protocols.json_input``: nesting, NaN/Infinity, 64-bit integers, lone surrogates);
query parameters are checked against what ``/openapi.json`` declares for them. Both
refusals are 400 before any resource is looked up; a schema or rule broken by a well-formed body
is 422 (``backend``).
"""

from __future__ import annotations

import hmac
import logging
import math
import re
from urllib.parse import parse_qs
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from otaharness.servers.http_errors import undecodable_body
from otaharness.servers.http_service import API_DOCUMENT_PATH, routed_path

from otaharness.protocols.json_input import JsonInputError, parse_json
from otaharness.servers.olt.backend import OltBackend, Page, Principal, parse_rfc3339
from otaharness.servers.olt.errors import (
    BodyTooLarge, Forbidden, OltError, OltInputError, RangeNotSatisfiable, Unauthorized)
from otaharness.servers.olt.openapi import openapi_document
from otaharness.servers.olt.schemas import (
    FORMATS, INSTALLATION_STATUSES, JSON_LIMIT, MAX_PAGE, MAX_PAGE_SIZE, REPORTING_PATH_PATTERN)

log = logging.getLogger(__name__)

BLOB_LIMIT = 16 * 1024 * 1024
CHUNK = 64 * 1024
TOKEN_PATH = "/v1/id/auth/realms/olt/protocol/openid-connect/token"
TENANTS_PATH = "/v1/tenants"
PUBLIC_PATHS = (API_DOCUMENT_PATH, TOKEN_PATH)
PRINCIPAL = web.RequestKey("principal", Principal)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def data(value: Any, status: int = 200) -> web.Response:
    return web.json_response({"data": value}, status=status)


def page_response(page: Page, render: Callable[[dict[str, Any]], dict[str, Any]] = lambda d: d) -> web.Response:
    return web.json_response({"data": [render(item) for item in page.items],
                              "meta": {"page": page.page, "pageSize": page.page_size,
                                       "itemsTotal": page.total}})


_INTEGER = re.compile(r"-?[0-9]+", re.ASCII)
_TIMESERIES_PATH = re.compile(REPORTING_PATH_PATTERN)
# A JSON number (RFC 8259 §6), as a query parameter's text: what the document's "number" allows.
_NUMBER = re.compile(r"-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?", re.ASCII)


def _int_query(request: web.Request, name: str, default: int, low: int, high: int) -> int:
    raw = request.query.get(name)
    if raw is None:
        return default
    if not _INTEGER.fullmatch(raw):  # int() would take " 1", "1_0" and other scripts' digits
        raise OltInputError(f"query parameter {name} must be an integer, not {raw[:40]!r}")
    value = int(raw) if len(raw) <= 20 else (low - 1 if raw.startswith("-") else high + 1)
    if not low <= value <= high:
        raise OltInputError(f"query parameter {name} must be between {low} and {high}")
    return value


def paging(request: web.Request) -> tuple[int, int]:
    """OLT paging: ``page`` from 0 (at most MAX_PAGE), ``pageSize`` 1..100 (default 10)."""
    return (_int_query(request, "page", 0, 0, MAX_PAGE),
            _int_query(request, "pageSize", 10, 1, MAX_PAGE_SIZE))


def _time_query(request: web.Request, name: str, default: float) -> float:
    """A time bound: unix seconds (a JSON number; beyond a float's range it is ±infinity, which
    as a bound means "no bound") or an RFC 3339 date-time."""
    raw = request.query.get(name)
    if raw is None:
        return default
    if _NUMBER.fullmatch(raw):
        return float(raw)
    if FORMATS.conforms(raw, "date-time"):
        try:
            moment = parse_rfc3339(raw)
        except (ValueError, OverflowError):
            pass
        else:
            if math.isfinite(moment):
                return moment
    raise OltInputError(f"query parameter {name} must be unix seconds or an RFC 3339 date-time, "
                        f"not {raw[:40]!r}")


async def json_body(request: web.Request) -> Any:
    """The body's JSON value, read with the project's JSON reader (any JSON value: the schema
    says what must be an object, with a 422). Over JSON_LIMIT → 413; not JSON or beyond the
    reader's limits (nesting, numbers, lone surrogates) → 400, naming where."""
    if request.content_length is not None and request.content_length > JSON_LIMIT:
        raise BodyTooLarge(f"JSON bodies are limited to {JSON_LIMIT} bytes")
    try:
        raw = await request.read()
    except web.HTTPRequestEntityTooLarge:
        raise BodyTooLarge(f"JSON bodies are limited to {JSON_LIMIT} bytes") from None
    try:
        return parse_json(raw, max_bytes=JSON_LIMIT)
    except JsonInputError as exc:
        raise OltInputError(f"the body is not valid JSON: {exc}" if exc.syntax
                            else f"the body exceeds a JSON limit: {exc}") from None


# RFC 6750 §2.1 b64token: what a bearer token can be (aiohttp hands other header bytes over as
# lone surrogates, which no token hash could encode).
_B64TOKEN = re.compile(r"[A-Za-z0-9\-._~+/]+=*", re.ASCII)


def _bearer(request: web.Request) -> str:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("an Authorization: Bearer token is required",
                           extra={"code": "invalid_request"})
    if not _B64TOKEN.fullmatch(token.strip()):
        raise Unauthorized("malformed bearer token", extra={"code": "invalid_token"})
    return token.strip()


class OltHttpApi:
    def __init__(self, backend: OltBackend, *, blob_limit: int = BLOB_LIMIT,
                 operator_token: str) -> None:
        self.backend = backend
        self.blob_limit = blob_limit
        self.operator_token = operator_token

    def app(self) -> web.Application:
        app = web.Application(client_max_size=JSON_LIMIT, middlewares=[self._errors, undecodable_body])
        get, post = web.get, web.post
        app.add_routes([
            get("/openapi.json", self.openapi),
            post(TOKEN_PATH, self.token),
            post(TENANTS_PATH, self.create_tenant),
            post("/v1/firmwares", self.create_firmware),
            get("/v1/firmwares", self.list_firmwares),
            get("/v1/firmwares/{id}", self.get_firmware),
            web.delete("/v1/firmwares/{id}", self.delete_firmware),
            web.put("/v1/firmwares/{id}/blob", self.attach_blob),
            post("/v1/firmwares/{id}/blob", self.attach_blob),
            get("/v1/firmwares/{id}/blob", self.download_blob, allow_head=False),
            post("/v1/device-types", self.create_device_type),
            get("/v1/device-types", self.list_device_types),
            get("/v1/device-types/{id}", self.get_device_type),
            post("/v1/devices", self.create_device),
            get("/v1/devices", self.list_devices),
            get("/v1/devices/{id}", self.get_device),
            web.patch("/v1/devices/{id}", self.update_device),
            post("/v1/devices/{id}/credentials", self.create_credentials),
            post("/v1/devices/{id}/actions", self.create_action),
            get("/v1/devices/{id}/actions/{actionId}", self.get_action),
            get("/v1/devices/{id}/events", self.list_events),
            get("/v1/devices/{id}/timeseries", self.timeseries),
            post("/v1/devices/{id}/firmware-installations", self.create_installation),
            get("/v1/devices/{id}/firmware-installations", self.list_installations),
            get("/v1/devices/{id}/firmware-installations/{installationId}", self.get_installation),
            web.patch("/v1/devices/{id}/firmware-installations/{installationId}",
                      self.report_installation),
            post("/v1/devices/{id}/firmware-installations/{installationId}/cancel",
                 self.cancel_installation),
        ])
        return app

    @web.middleware
    async def _errors(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            route = routed_path(request)
            if route == TENANTS_PATH:
                self._authenticate_operator(_bearer(request))
            elif route not in PUBLIC_PATHS:
                request[PRINCIPAL] = self.backend.authenticate(_bearer(request))
            return await handler(request)
        except OltError as error:
            return web.json_response(error.to_json(), status=error.status, headers=error.headers())
        except web.HTTPException as exc:  # aiohttp's own: unknown route, wrong method
            if exc.status < 400:
                raise
            body = {"errors": [{"status": exc.status, "title": exc.reason, "detail": exc.reason}]}
            return web.json_response(body, status=exc.status, headers={
                key: value for key, value in exc.headers.items() if key == "Allow"})

    def _authenticate_operator(self, token: str) -> None:
        if hmac.compare_digest(token.encode(), self.operator_token.encode()):
            return
        self.backend.authenticate(token)  # 401 unless it is some tenant's or device's token
        raise Forbidden("only the operator's token manages tenants",
                        extra={"code": "insufficient_scope"})

    # -- documents, tenants and tokens -----------------------------------------------------------
    async def openapi(self, request: web.Request) -> web.Response:
        return web.json_response(openapi_document(self.backend.base_url))

    async def create_tenant(self, request: web.Request) -> web.Response:
        """A new tenant and its client credentials (the secret is shown this once)."""
        return data(self.backend.register_tenant(await json_body(request)), 201)

    async def token(self, request: web.Request) -> web.Response:
        """OAuth 2.0 token endpoint (RFC 6749 §4.4, errors per §5.2: not the data envelope)."""
        if request.content_type != "application/x-www-form-urlencoded":
            return web.json_response({"error": "invalid_request", "error_description":
                                      "send application/x-www-form-urlencoded"}, status=400)
        try:
            form = {key: values[0] for key, values in parse_qs(
                (await request.read()).decode(), keep_blank_values=True, strict_parsing=False).items()}
        except (UnicodeDecodeError, web.HTTPRequestEntityTooLarge):
            return web.json_response({"error": "invalid_request",
                                      "error_description": "unreadable form"}, status=400)
        if form.get("grant_type") != "client_credentials":
            return web.json_response({"error": "unsupported_grant_type",
                                      "error_description": "only client_credentials"}, status=400)
        client_id, secret = form.get("client_id"), form.get("client_secret")
        if not isinstance(client_id, str) or not isinstance(secret, str):
            return web.json_response({"error": "invalid_request",
                                      "error_description": "client_id and client_secret"}, status=400)
        try:
            return web.json_response(self.backend.issue_token(client_id, secret),
                                     headers={"Cache-Control": "no-store"})
        except Unauthorized as error:
            return web.json_response({"error": "invalid_client", "error_description": error.detail},
                                     status=401)

    # -- firmwares ---------------------------------------------------------------------------------
    def _firmware(self, firmware: dict[str, Any]) -> dict[str, Any]:
        if "links" not in firmware:
            return firmware
        links = {name: self.backend.base_url + path for name, path in firmware["links"].items()}
        return {**firmware, "links": links}

    async def create_firmware(self, request: web.Request) -> web.Response:
        firmware = self.backend.create_firmware(request[PRINCIPAL], await json_body(request))
        return data(self._firmware(firmware), 201)

    async def list_firmwares(self, request: web.Request) -> web.Response:
        return page_response(self.backend.list_firmwares(request[PRINCIPAL], *paging(request)),
                             self._firmware)

    async def get_firmware(self, request: web.Request) -> web.Response:
        return data(self._firmware(self.backend.get_firmware(request[PRINCIPAL], request.match_info["id"])))

    async def delete_firmware(self, request: web.Request) -> web.Response:
        self.backend.delete_firmware(request[PRINCIPAL], request.match_info["id"])
        return web.Response(status=204)

    async def attach_blob(self, request: web.Request) -> web.Response:
        who, firmware_id = request[PRINCIPAL], request.match_info["id"]
        self.backend.check_attachable(who, firmware_id)  # 404/423 before reading any bytes
        if request.content_length is not None and request.content_length > self.blob_limit:
            raise BodyTooLarge(f"blobs are limited to {self.blob_limit} bytes")
        received = bytearray()
        async for chunk in request.content.iter_chunked(CHUNK):
            received += chunk
            if len(received) > self.blob_limit:
                raise BodyTooLarge(f"blobs are limited to {self.blob_limit} bytes")
        if not received:
            raise OltInputError("the blob is empty")
        content_type = request.headers.get("Content-Type", "application/octet-stream")
        firmware = self.backend.attach_blob(who, firmware_id, bytes(received), content_type)
        return data(self._firmware(firmware))

    async def download_blob(self, request: web.Request) -> web.StreamResponse:
        """The blob, whole (200) or one byte range (206, RFC 9110 §14); resume with If-Range."""
        firmware, read = self.backend.blob_reader(request[PRINCIPAL], request.match_info["id"])
        size, etag = firmware["blob"]["size"], f'"{firmware["blob"]["hashes"]["sha256"]}"'
        start, stop = self._range(request, size, etag)
        partial = (start, stop) != (0, size)
        response = web.StreamResponse(status=206 if partial else 200, headers={
            "Accept-Ranges": "bytes", "ETag": etag, "Content-Type": firmware["blob"]["contentType"]})
        response.content_length = stop - start
        if partial:
            response.headers["Content-Range"] = f"bytes {start}-{stop - 1}/{size}"
        await response.prepare(request)
        for offset in range(start, stop, CHUNK):
            await response.write(read(offset, min(offset + CHUNK, stop)))
        await response.write_eof()
        return response

    @staticmethod
    def _range(request: web.Request, size: int, etag: str) -> tuple[int, int]:
        if "Range" not in request.headers:
            return 0, size
        if request.headers.get("If-Range", etag) != etag:
            return 0, size  # the representation changed: send it whole
        try:
            wanted = request.http_range
        except ValueError:
            return 0, size  # an unparsable Range is ignored (RFC 9110 §14.2)
        if wanted.start is None:
            return 0, size
        if wanted.start < 0:  # suffix range: the last N bytes
            return max(0, size + wanted.start), size
        stop = size if wanted.stop is None else min(wanted.stop, size)
        if wanted.start >= size or wanted.start >= stop:
            raise RangeNotSatisfiable(size)
        return wanted.start, stop

    # -- device types and devices --------------------------------------------------------------
    async def create_device_type(self, request: web.Request) -> web.Response:
        return data(self.backend.create_device_type(request[PRINCIPAL], await json_body(request)), 201)

    async def list_device_types(self, request: web.Request) -> web.Response:
        return page_response(self.backend.list_device_types(request[PRINCIPAL], *paging(request)))

    async def get_device_type(self, request: web.Request) -> web.Response:
        return data(self.backend.get_device_type(request[PRINCIPAL], request.match_info["id"]))

    async def create_device(self, request: web.Request) -> web.Response:
        return data(self.backend.create_device(request[PRINCIPAL], await json_body(request)), 201)

    async def list_devices(self, request: web.Request) -> web.Response:
        return page_response(self.backend.list_devices(request[PRINCIPAL], *paging(request)))

    async def get_device(self, request: web.Request) -> web.Response:
        return data(self.backend.get_device(request[PRINCIPAL], request.match_info["id"]))

    async def update_device(self, request: web.Request) -> web.Response:
        return data(await self.backend.update_device(
            request[PRINCIPAL], request.match_info["id"], await json_body(request)))

    async def create_credentials(self, request: web.Request) -> web.Response:
        return data(self.backend.create_device_credentials(request[PRINCIPAL], request.match_info["id"]), 201)

    async def create_action(self, request: web.Request) -> web.Response:
        action = await self.backend.create_action(request[PRINCIPAL], request.match_info["id"],
                                                  await json_body(request))
        return data({"actionId": action["id"]}, 201)

    async def get_action(self, request: web.Request) -> web.Response:
        return data(self.backend.get_action(request[PRINCIPAL], request.match_info["id"],
                                            request.match_info["actionId"]))

    async def list_events(self, request: web.Request) -> web.Response:
        return page_response(self.backend.list_events(request[PRINCIPAL], request.match_info["id"],
                                                      *paging(request)))

    async def timeseries(self, request: web.Request) -> web.Response:
        path = request.query.get("path")
        if path is None:
            raise OltInputError("query parameter path (a reporting rule's path) is required")
        if not _TIMESERIES_PATH.search(path):
            raise OltInputError(f"query parameter path must be a reporting rule's path "
                                f"($.configuration.<field>… or $.attributes.<field>…), not {path[:80]!r}")
        start, end = (_time_query(request, name, default)
                      for name, default in (("from", float("-inf")), ("to", float("inf"))))
        return page_response(self.backend.timeseries(request[PRINCIPAL], request.match_info["id"],
                                                     path, start, end, *paging(request)))

    # -- firmware installations ------------------------------------------------------------------
    async def create_installation(self, request: web.Request) -> web.Response:
        return data(await self.backend.create_installation(
            request[PRINCIPAL], request.match_info["id"], await json_body(request)), 201)

    async def list_installations(self, request: web.Request) -> web.Response:
        status = request.query.get("status")
        if status is not None and status not in INSTALLATION_STATUSES:
            raise OltInputError(f"query parameter status must be one of "
                                f"{', '.join(INSTALLATION_STATUSES)}, not {status[:40]!r}")
        return page_response(self.backend.list_installations(
            request[PRINCIPAL], request.match_info["id"], *paging(request), status=status))

    async def get_installation(self, request: web.Request) -> web.Response:
        return data(self.backend.get_installation(request[PRINCIPAL], request.match_info["id"],
                                                  request.match_info["installationId"]))

    async def report_installation(self, request: web.Request) -> web.Response:
        return data(self.backend.report_installation(
            request[PRINCIPAL], request.match_info["id"], request.match_info["installationId"],
            await json_body(request)))

    async def cancel_installation(self, request: web.Request) -> web.Response:
        return data(await self.backend.cancel_installation(
            request[PRINCIPAL], request.match_info["id"], request.match_info["installationId"]))

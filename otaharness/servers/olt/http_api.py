"""HTTP side of the OLT back end (aiohttp): turns requests into backend calls and results into
``{"data": …}`` envelopes; errors become ``{"errors": [{status, title, detail, …}]}``.

Body limits: JSON bodies up to ``json_limit`` bytes, blobs up to ``blob_limit``; beyond → 413,
and nothing is stored. A blob upload is read completely before anything is written.
"""

from __future__ import annotations

import json
import logging
from urllib.parse import parse_qs
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from otaharness.servers.olt.backend import OltBackend, Page, Principal, parse_rfc3339
from otaharness.servers.olt.errors import (
    BodyTooLarge, OltError, OltInputError, RangeNotSatisfiable, Unauthorized)
from otaharness.servers.olt.openapi import openapi_document

log = logging.getLogger(__name__)

JSON_LIMIT = 64 * 1024
BLOB_LIMIT = 16 * 1024 * 1024
CHUNK = 64 * 1024
TOKEN_PATH = "/v1/id/auth/realms/olt/protocol/openid-connect/token"
PRINCIPAL = web.RequestKey("principal", Principal)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def data(value: Any, status: int = 200) -> web.Response:
    return web.json_response({"data": value}, status=status)


def page_response(page: Page, render: Callable[[dict[str, Any]], dict[str, Any]] = lambda d: d) -> web.Response:
    return web.json_response({"data": [render(item) for item in page.items],
                              "meta": {"page": page.page, "pageSize": page.page_size,
                                       "itemsTotal": page.total}})


def _int_query(request: web.Request, name: str, default: int, low: int, high: int) -> int:
    raw = request.query.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise OltInputError(f"query parameter {name} must be an integer, not {raw!r}") from None
    if not low <= value <= high:
        raise OltInputError(f"query parameter {name} must be between {low} and {high}")
    return value


def paging(request: web.Request) -> tuple[int, int]:
    """OLT paging: ``page`` from 0, ``pageSize`` 1..100 (default 10)."""
    return (_int_query(request, "page", 0, 0, 1_000_000),
            _int_query(request, "pageSize", 10, 1, 100))


async def json_body(request: web.Request) -> Any:
    if request.content_length is not None and request.content_length > JSON_LIMIT:
        raise BodyTooLarge(f"JSON bodies are limited to {JSON_LIMIT} bytes")
    try:
        raw = await request.read()
    except web.HTTPRequestEntityTooLarge:
        raise BodyTooLarge(f"JSON bodies are limited to {JSON_LIMIT} bytes") from None
    try:
        return json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise OltInputError(f"the body is not valid JSON: {exc}") from None


def _bearer(request: web.Request) -> str:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("an Authorization: Bearer token is required",
                           extra={"code": "invalid_request"})
    return token.strip()


class OltHttpApi:
    def __init__(self, backend: OltBackend, *, blob_limit: int = BLOB_LIMIT) -> None:
        self.backend = backend
        self.blob_limit = blob_limit

    def app(self) -> web.Application:
        app = web.Application(client_max_size=JSON_LIMIT, middlewares=[self._errors])
        get, post = web.get, web.post
        app.add_routes([
            get("/openapi.json", self.openapi),
            post(TOKEN_PATH, self.token),
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
            if request.path not in ("/openapi.json", TOKEN_PATH):
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

    # -- documents and tokens ------------------------------------------------------------------
    async def openapi(self, request: web.Request) -> web.Response:
        return web.json_response(openapi_document(self.backend.base_url))

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
        if not path:
            raise OltInputError("query parameter path (a reporting rule's path) is required")
        start, end = (_float_query(request, name, default)
                      for name, default in (("from", float("-inf")), ("to", float("inf"))))
        return page_response(self.backend.timeseries(request[PRINCIPAL], request.match_info["id"],
                                                     path, start, end, *paging(request)))

    # -- firmware installations ------------------------------------------------------------------
    async def create_installation(self, request: web.Request) -> web.Response:
        return data(await self.backend.create_installation(
            request[PRINCIPAL], request.match_info["id"], await json_body(request)), 201)

    async def list_installations(self, request: web.Request) -> web.Response:
        status = request.query.get("status")
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


def _float_query(request: web.Request, name: str, default: float) -> float:
    """A time bound: RFC 3339 or unix seconds."""
    raw = request.query.get(name)
    if raw is None:
        return default
    try:
        return float(raw)
    except ValueError:
        pass
    try:
        return parse_rfc3339(raw)
    except ValueError:
        raise OltInputError(f"query parameter {name} must be RFC 3339 or unix seconds") from None

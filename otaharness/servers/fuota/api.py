"""HTTP API of the FUOTA server (aiohttp). Its OpenAPI 3.1 document is ``openapi.py``, served
at ``/openapi.json``.

=======  =================================  ==================================================
POST     /campaigns                         ``{"config": {...}, "image": "<base64>"}`` → 201 ``{"id"}``
GET      /campaigns                         every campaign's progress
GET      /campaigns/{id}                    progress: state, stage, round, fragments, devices
DELETE   /campaigns/{id}                    204 removed; 202 a running campaign: stopped (with
                                            the stop cleanup), removed when the cleanup is over
POST     /campaigns/{id}/start              202
POST     /campaigns/{id}/stop               202 (cleanup traffic continues in the background)
GET      /campaigns/{id}/events[?kind=K]    the event log (stage, fragment, request, answer, ...)
GET      /campaigns/{id}/report             summary (stage intervals, fragments, outcomes)
GET      /campaigns/{id}/report.png         timeline plot
GET      /openapi.json                      the OpenAPI document of this API
=======  =================================  ==================================================

Every route but ``/openapi.json`` takes ``Authorization: Bearer <token>`` (the service's token,
``tokens()["fuota"]``): the check is the first middleware, so a missing or wrong token is 401
before any body is read, and changes nothing.

Bodies are read with the project's one JSON reader (``otaharness.protocols.json_input``: size,
nesting, NaN/Infinity and integer limits) and checked against ``schemas.CREATE_SCHEMA``.
Errors are JSON ``{"error": "...", "field": "$.config.redundancy"}`` (``field`` when one field is
at fault): 400 bad input (also an id that is not a decimal integer), 404 unknown campaign (also
an id out of range), 409 wrong state, or a stored campaign that cannot be read.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import logging
import re
import ssl
from typing import Any

from aiohttp import web

from otaharness.protocols.json_input import (
    MAX_BYTES,
    MAX_INTEGER,
    JsonInputError,
    parse_json_object,
    validate,
)
from otaharness.servers.http_errors import undecodable_body
from otaharness.servers.http_service import (
    API_DOCUMENT_PATH,
    HttpSite,
    bearer_token_required,
    requests_routed_to,
    serve_app,
)
from otaharness.servers.json_body import describe, read_body

from .campaign import CampaignConfig, CampaignError, CorruptCampaign, UnknownCampaign
from .openapi import openapi_document
from .report import campaign_plot, campaign_report
from .schemas import CREATE_SCHEMA
from .server import FuotaServer
from .store import EVENT_KINDS

log = logging.getLogger(__name__)

SERVER_KEY = web.AppKey("fuota", FuotaServer)
_DECIMAL = re.compile(r"[0-9]+")


def _json_error(status: int, message: str, field: str | None = None,
                headers: dict[str, str] | None = None) -> web.Response:
    body: dict[str, Any] = {"error": message}
    if field is not None:
        body["field"] = field
    return web.json_response(body, status=status, headers=headers)


class ApiError(Exception):
    """Raised by the handlers; the middleware answers it as JSON."""

    def __init__(self, status: int, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.field = field


@web.middleware
async def json_errors(request: web.Request, handler: Any) -> web.StreamResponse:
    """Every error is JSON ``{"error": ...}``: the handlers' ApiError, aiohttp's own 404/405, and
    (logged) anything unexpected."""
    try:
        return await handler(request)
    except ApiError as error:
        return _json_error(error.status, error.message, error.field)
    except web.HTTPException as error:
        if error.status < 400:
            raise
        headers = {"Allow": error.headers["Allow"]} if "Allow" in error.headers else None
        return _json_error(error.status, error.reason, headers=headers)
    except asyncio.CancelledError:
        raise
    except Exception:
        log.exception("%s %s failed", request.method, request.path)
        return _json_error(500, "internal error")


def _campaign_id(request: web.Request) -> int:
    """The path's campaign id: a decimal integer (else 400) of a stored campaign (else 404)."""
    text = request.match_info["id"]
    if not _DECIMAL.fullmatch(text):
        raise ApiError(400, f"campaign id {text[:40]!r} is not a decimal integer", "id")
    campaign_id = int(text) if len(text) <= 20 else MAX_INTEGER + 1
    if not 1 <= campaign_id <= MAX_INTEGER or not request.app[SERVER_KEY].store.exists(campaign_id):
        raise ApiError(404, f"no campaign {text[:40]}")
    return campaign_id


async def _read_body(request: web.Request) -> dict[str, Any]:
    """The body with the project's JSON reader (otaharness/protocols/json_input.py), checked
    against CREATE_SCHEMA; a refusal is a 400 naming the field where there is one."""
    try:
        document = parse_json_object(await read_body(request, MAX_BYTES))
        validate(document, CREATE_SCHEMA)
    except JsonInputError as error:
        if error.where != "$":  # a field, also for a NaN or a number out of range
            raise ApiError(400, f"{error.where}: {error.reason}", error.where) from None
        raise ApiError(400, describe(error)) from None
    return document


async def create(request: web.Request) -> web.Response:
    document = await _read_body(request)
    try:
        image = base64.b64decode(document["image"], validate=True)
    except binascii.Error as error:
        raise ApiError(400, f"$.image: not base64 ({error})", "$.image") from None
    try:
        config = CampaignConfig.from_json(document["config"], "$.config")
        campaign_id = request.app[SERVER_KEY].create_campaign(config, image)
    except ValueError as error:  # CampaignError, UnknownDevice
        raise ApiError(400, str(error), getattr(error, "field", None)) from None
    return web.json_response({"id": campaign_id}, status=201)


async def list_campaigns(request: web.Request) -> web.Response:
    server = request.app[SERVER_KEY]
    return web.json_response([server.status(campaign_id) for campaign_id in server.store.ids()])


async def show(request: web.Request) -> web.Response:
    return web.json_response(request.app[SERVER_KEY].status(_campaign_id(request)))


async def delete(request: web.Request) -> web.Response:
    campaign_id = _campaign_id(request)
    try:
        removed = await request.app[SERVER_KEY].delete_campaign(campaign_id)
    except UnknownCampaign as error:  # removed while this request waited for a stop
        raise ApiError(404, str(error)) from None
    except CampaignError as error:
        raise ApiError(409, str(error)) from None
    if removed:
        return web.Response(status=204)
    return web.json_response({"id": campaign_id, "state": "stopping", "delete_requested": True}, status=202)


async def start(request: web.Request) -> web.Response:
    campaign_id = _campaign_id(request)
    try:
        request.app[SERVER_KEY].start_campaign(campaign_id)
    except CampaignError as error:  # wrong state, busy devices, unreadable rows
        raise ApiError(409, str(error)) from None
    return web.json_response({"id": campaign_id, "state": "running"}, status=202)


async def stop(request: web.Request) -> web.Response:
    campaign_id = _campaign_id(request)
    try:
        await request.app[SERVER_KEY].stop_campaign(campaign_id)
    except CampaignError as error:
        raise ApiError(409, str(error)) from None
    return web.json_response({"id": campaign_id, "state": "stopping"}, status=202)


def _summary(server: FuotaServer, campaign_id: int) -> dict[str, Any]:
    try:
        return campaign_report(server.store, campaign_id)
    except UnknownCampaign as error:
        raise ApiError(404, str(error)) from None
    except CorruptCampaign as error:
        raise ApiError(409, str(error)) from None
    except (KeyError, TypeError, ValueError) as error:  # stage events that do not read back
        raise ApiError(409, f"stored events of campaign {campaign_id} cannot be read: {error!r}") from None


async def events(request: web.Request) -> web.Response:
    campaign_id = _campaign_id(request)
    kind = request.query.get("kind")
    if kind is not None and kind not in EVENT_KINDS:
        raise ApiError(400, f"kind {kind[:40]!r} is not one of {', '.join(EVENT_KINDS)}", "kind")
    try:
        rows = request.app[SERVER_KEY].store.events(campaign_id, kind)
    except CorruptCampaign as error:
        raise ApiError(409, str(error)) from None
    return web.json_response([{**e.detail, "at": e.at, "kind": e.kind,
                               "dev_eui": None if e.dev_eui is None else f"{e.dev_eui:016X}"} for e in rows])


async def report(request: web.Request) -> web.Response:
    return web.json_response(_summary(request.app[SERVER_KEY], _campaign_id(request)))


async def report_png(request: web.Request) -> web.Response:
    data = _summary(request.app[SERVER_KEY], _campaign_id(request))
    png = await asyncio.get_running_loop().run_in_executor(None, campaign_plot, data)
    return web.Response(body=png, content_type="image/png")


async def openapi(request: web.Request) -> web.Response:
    return web.json_response(openapi_document())


def build_app(server: FuotaServer, token: str) -> web.Application:
    app = web.Application(middlewares=[bearer_token_required(token, exempt=requests_routed_to(API_DOCUMENT_PATH)),
                                       json_errors, undecodable_body])
    app[SERVER_KEY] = server
    app.add_routes([
        web.post("/campaigns", create), web.get("/campaigns", list_campaigns), web.get("/campaigns/{id}", show),
        web.delete("/campaigns/{id}", delete),
        web.post("/campaigns/{id}/start", start), web.post("/campaigns/{id}/stop", stop),
        web.get("/campaigns/{id}/events", events), web.get("/campaigns/{id}/report", report),
        web.get("/campaigns/{id}/report.png", report_png), web.get("/openapi.json", openapi),
    ])
    return app


async def serve(server: FuotaServer, host: str = "127.0.0.1", port: int = 0, *, token: str,
                ssl_context: ssl.SSLContext | None = None) -> HttpSite:
    """Start the API (HTTPS with ``ssl_context``), requiring ``token``; ``await site.stop()``."""
    return await serve_app(build_app(server, token), host, port, ssl_context=ssl_context,
                           actor="fuota")

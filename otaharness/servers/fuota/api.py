"""HTTP API of the FUOTA server (aiohttp).

=======  =================================  ==================================================
POST     /campaigns                         ``{"config": {...}, "image": "<base64>"}`` → 201 ``{"id"}``
GET      /campaigns                         every campaign's progress
GET      /campaigns/{id}                    progress: state, stage, round, fragments, devices
POST     /campaigns/{id}/start              202
POST     /campaigns/{id}/stop               202 (cleanup traffic continues in the background)
GET      /campaigns/{id}/events[?kind=K]    the event log (stage, fragment, request, answer, ...)
GET      /campaigns/{id}/report             summary (stage intervals, fragments, outcomes)
GET      /campaigns/{id}/report.png         timeline plot
=======  =================================  ==================================================

Errors are JSON ``{"error": "..."}``: 400 bad input, 404 unknown campaign, 409 wrong state.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
from typing import Any

from aiohttp import web

from .campaign import CampaignConfig, CampaignError
from .report import summary, timeline_png
from .server import FuotaServer

SERVER_KEY = web.AppKey("fuota", FuotaServer)


def _error(status: type[web.HTTPException], message: str) -> web.HTTPException:
    return status(text=json.dumps({"error": message}), content_type="application/json")


def _campaign_id(request: web.Request) -> int:
    server = request.app[SERVER_KEY]
    try:
        campaign_id = int(request.match_info["id"])
        server.store.get(campaign_id)
    except (ValueError, CampaignError):
        raise _error(web.HTTPNotFound, f"no campaign {request.match_info['id']}") from None
    return campaign_id


async def create(request: web.Request) -> web.Response:
    try:
        document: Any = await request.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise _error(web.HTTPBadRequest, "the body is not JSON") from None
    if not isinstance(document, dict) or not isinstance(document.get("config"), dict):
        raise _error(web.HTTPBadRequest, "expected {\"config\": {...}, \"image\": \"<base64>\"}")
    try:
        image = base64.b64decode(document.get("image", ""), validate=True)
        config = CampaignConfig.from_json(document["config"])
        campaign_id = request.app[SERVER_KEY].create_campaign(config, image)
    except (binascii.Error, TypeError):
        raise _error(web.HTTPBadRequest, "image must be base64") from None
    except ValueError as error:  # CampaignError, UnknownDevice
        raise _error(web.HTTPBadRequest, str(error)) from None
    return web.json_response({"id": campaign_id}, status=201)


async def list_campaigns(request: web.Request) -> web.Response:
    server = request.app[SERVER_KEY]
    return web.json_response([server.status(campaign_id) for campaign_id in server.store.ids()])


async def show(request: web.Request) -> web.Response:
    return web.json_response(request.app[SERVER_KEY].status(_campaign_id(request)))


async def start(request: web.Request) -> web.Response:
    campaign_id = _campaign_id(request)
    try:
        request.app[SERVER_KEY].start_campaign(campaign_id)
    except CampaignError as error:
        raise _error(web.HTTPConflict, str(error)) from None
    return web.json_response({"id": campaign_id, "state": "running"}, status=202)


async def stop(request: web.Request) -> web.Response:
    campaign_id = _campaign_id(request)
    try:
        await request.app[SERVER_KEY].stop_campaign(campaign_id)
    except CampaignError as error:
        raise _error(web.HTTPConflict, str(error)) from None
    return web.json_response({"id": campaign_id, "state": "stopping"}, status=202)


async def events(request: web.Request) -> web.Response:
    campaign_id = _campaign_id(request)
    kind = request.query.get("kind")
    rows = request.app[SERVER_KEY].store.events(campaign_id, kind)
    return web.json_response([{"at": e.at, "dev_eui": None if e.dev_eui is None else f"{e.dev_eui:016X}",
                               "kind": e.kind, **e.detail} for e in rows])


async def report(request: web.Request) -> web.Response:
    return web.json_response(summary(request.app[SERVER_KEY].store, _campaign_id(request)))


async def report_png(request: web.Request) -> web.Response:
    campaign_id = _campaign_id(request)
    data = summary(request.app[SERVER_KEY].store, campaign_id)
    png = await asyncio.get_running_loop().run_in_executor(None, timeline_png, data)
    return web.Response(body=png, content_type="image/png")


def build_app(server: FuotaServer) -> web.Application:
    app = web.Application()
    app[SERVER_KEY] = server
    app.add_routes([
        web.post("/campaigns", create), web.get("/campaigns", list_campaigns), web.get("/campaigns/{id}", show),
        web.post("/campaigns/{id}/start", start), web.post("/campaigns/{id}/stop", stop),
        web.get("/campaigns/{id}/events", events), web.get("/campaigns/{id}/report", report),
        web.get("/campaigns/{id}/report.png", report_png),
    ])
    return app


async def serve(server: FuotaServer, host: str = "127.0.0.1", port: int = 0) -> tuple[web.AppRunner, str]:
    """Start the API; returns the runner (``await runner.cleanup()`` to stop) and its base URL."""
    runner = web.AppRunner(build_app(server), handle_signals=False, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    bound: int = runner.addresses[0][1]
    return runner, f"http://{host}:{bound}"

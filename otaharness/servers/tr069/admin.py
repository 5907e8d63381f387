"""The ACS's admin HTTP API (JSON): files, groups, devices, batches, actions.
Documented in docs/tr069-acs.md and by its OpenAPI document at ``/openapi.json``; each handler
is a thin call into :class:`Acs`.

Input is checked at the door: JSON bodies are read with the project's JSON reader and checked
against api_schemas.py; names and ids in the path and query against names.py; file metadata
headers against their schemas. A refusal is 400 naming the field, an unknown resource 404, and
nothing is stored from a refused request.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from otaharness.servers.http_errors import undecodable_body
from otaharness.servers.http_service import (
    API_DOCUMENT_PATH,
    bearer_token_required,
    requests_routed_to,
)

from . import api_schemas
from .acs import Acs, AcsError, NotFound
from .names import (
    MAX_DEVICE_ID,
    MAX_GROUP_NAME,
    check_file_name,
    check_text,
    parse_batch_id,
)
from .openapi import openapi_json

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

MAX_DOWNLOAD_URL = 256  # Download's URL (cwmp-1-*.xsd)
MAX_UPLOAD_BYTES = 256 << 20


@web.middleware
async def _errors_as_json(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except NotFound as error:
        return web.json_response({"error": str(error)}, status=404)
    except ValueError as error:  # AcsError, ScheduleError, InvalidName, bad JSON
        return web.json_response({"error": str(error)}, status=400)
    except web.HTTPException as error:  # aiohttp's own 4xx (413, 405, 404 no route): as JSON
        if error.status < 400:
            raise
        text = error.text if error.status == 413 else error.reason  # 413 says the limit
        return web.json_response({"error": text}, status=error.status,
                                 headers={k: v for k, v in error.headers.items()
                                          if k.lower() == "allow"})


class AdminApi:
    def __init__(self, acs: Acs, token: str) -> None:
        self.acs = acs
        self.store = acs.store
        self.token = token

    def application(self) -> web.Application:
        # The token is checked first: nothing of an unauthenticated request's body is read.
        app = web.Application(middlewares=[bearer_token_required(self.token, exempt=requests_routed_to(API_DOCUMENT_PATH)), _errors_as_json,
                                           undecodable_body],
                              client_max_size=MAX_UPLOAD_BYTES)
        routes = [
            ("GET", "/openapi.json", self.openapi),
            ("GET", "/files", self.list_files),
            ("PUT", "/files/{name}", self.put_file),
            ("GET", "/files/{name}", self.get_file),
            ("DELETE", "/files/{name}", self.delete_file),
            ("GET", "/groups", self.list_groups),
            ("PUT", "/groups/{name}", self.put_group),
            ("DELETE", "/groups/{name}", self.delete_group),
            ("GET", "/devices", self.list_devices),
            ("GET", "/devices/{device}", self.get_device),
            ("GET", "/devices/{device}/events", self.device_events),
            ("GET", "/devices/{device}/tasks", self.device_tasks),
            ("POST", "/devices/{device}/reboot", self.reboot),
            ("POST", "/devices/{device}/connection-request", self.connection_request),
            ("GET", "/batches", self.list_batches),
            ("POST", "/batches", self.create_batch),
            ("GET", "/batches/{batch}", self.get_batch),
            ("PATCH", "/batches/{batch}", self.update_batch),
            ("DELETE", "/batches/{batch}", self.delete_batch),
            ("POST", "/batches/{batch}/find-new-devices", self.find_new_devices),
            ("POST", "/batches/{batch}/devices/{device}/force", self.force_upgrade),
            ("POST", "/batches/{batch}/devices/{device}/discard", self.discard_upgrade),
            ("POST", "/actions/upgrade", self.upgrade_action),
        ]
        for method, path, handler in routes:
            app.router.add_route(method, path, handler)
        return app

    async def openapi(self, request: web.Request) -> web.Response:
        return web.Response(text=openapi_json(), content_type="application/json")

    # -- files ---------------------------------------------------------------------------------
    async def list_files(self, request: web.Request) -> web.Response:
        group = request.query.get("group")
        if group is not None:
            check_text(group, "the group query parameter", MAX_GROUP_NAME)
        return web.json_response(self.acs.files_for_group(group))

    async def put_file(self, request: web.Request) -> web.Response:
        name = _file_name(request)
        url = self.acs.download_url(name)
        if len(url) > MAX_DOWNLOAD_URL:
            raise AcsError(f"file name too long for a Download: its URL {url[:60]}… would be "
                           f"{len(url)} characters, CWMP allows {MAX_DOWNLOAD_URL}")
        metadata = {column: api_schemas.check_header(header, request.headers.get(header, ""), schema)
                    for header, (column, schema) in api_schemas.FILE_HEADERS.items()}
        content = await request.read()  # 413 beyond MAX_UPLOAD_BYTES
        if not content:
            raise AcsError("an empty file: a Download's FileSize 0 would mean 'size unknown'")
        self.store.save_file(name, content, uploaded=self.acs.now(), **metadata)
        return web.json_response(self.store.file(name), status=201)

    async def get_file(self, request: web.Request) -> web.Response:
        return web.json_response(self._found(self.store.file(_file_name(request)), "file"))

    async def delete_file(self, request: web.Request) -> web.Response:
        name = _file_name(request)
        if not self.store.delete_file(name):
            raise NotFound(f"no file {name!r}")
        return web.json_response({})

    # -- groups --------------------------------------------------------------------------------
    async def list_groups(self, request: web.Request) -> web.Response:
        return web.json_response(self.store.groups())

    async def put_group(self, request: web.Request) -> web.Response:
        name = _group_name(request)
        spec = await api_schemas.read_body(request, api_schemas.GROUP, "group")
        with self.store.transaction():
            self.store.save_group(name, oui=spec.get("oui", ""),
                                  product_class=spec.get("product_class", ""),
                                  devices=spec.get("devices", []))
        return web.json_response(self.store.group(name))

    async def delete_group(self, request: web.Request) -> web.Response:
        self.store.delete_group(_group_name(request))
        return web.json_response({})

    # -- devices -------------------------------------------------------------------------------
    async def list_devices(self, request: web.Request) -> web.Response:
        return web.json_response(self.store.devices())

    async def get_device(self, request: web.Request) -> web.Response:
        device = self._found(self.store.device(_device_id(request)), "device")
        device["groups"] = self.store.groups_of(device["id"])
        return web.json_response(device)

    async def device_events(self, request: web.Request) -> web.Response:
        return web.json_response(self.store.events(_device_id(request)))  # unknown: []

    async def device_tasks(self, request: web.Request) -> web.Response:
        return web.json_response(self.store.tasks(device_id=_device_id(request)))

    async def reboot(self, request: web.Request) -> web.Response:
        reached = await self.acs.reboot(_device_id(request))
        return web.json_response({"connection_request": reached}, status=200 if reached else 202)

    async def connection_request(self, request: web.Request) -> web.Response:
        reached = await self.acs.connection_request(self._known_device(request))
        # 202: not reached now; the device opens its session at its next periodic Inform.
        return web.json_response({"connection_request": reached}, status=200 if reached else 202)

    # -- batches -------------------------------------------------------------------------------
    async def list_batches(self, request: web.Request) -> web.Response:
        return web.json_response([self.acs.batch_view(b["id"]) for b in self.store.batches()])

    async def create_batch(self, request: web.Request) -> web.Response:
        spec = await api_schemas.read_body(request, api_schemas.BATCH_CREATE, "batch")
        batch_id = self.acs.create_batch(spec)
        return web.json_response(self.acs.batch_view(batch_id), status=201)

    async def get_batch(self, request: web.Request) -> web.Response:
        return web.json_response(self.acs.batch_view(_batch_id(request)))

    async def update_batch(self, request: web.Request) -> web.Response:
        batch_id = _batch_id(request)
        spec = await api_schemas.read_body(request, api_schemas.BATCH_PATCH, "batch")
        self.acs.update_batch(batch_id, spec)
        return web.json_response(self.acs.batch_view(batch_id))

    async def delete_batch(self, request: web.Request) -> web.Response:
        self.acs.delete_batch(_batch_id(request))
        return web.json_response({})

    async def find_new_devices(self, request: web.Request) -> web.Response:
        return web.json_response({"added": self.acs.find_new_devices(_batch_id(request))})

    async def force_upgrade(self, request: web.Request) -> web.Response:
        reached = await self.acs.force_upgrade(_batch_id(request), _device_id(request))
        return web.json_response({"connection_request": reached}, status=200 if reached else 202)

    async def discard_upgrade(self, request: web.Request) -> web.Response:
        self.acs.discard_upgrade(_batch_id(request), _device_id(request))
        return web.json_response({})

    # -- actions -------------------------------------------------------------------------------
    async def upgrade_action(self, request: web.Request) -> web.Response:
        spec = await api_schemas.read_body(request, api_schemas.UPGRADE_ACTION, "upgrade")
        devices = list(dict.fromkeys(spec["devices"]))  # one Download per device
        return web.json_response({"connection_request": await self.acs.upgrade_devices(
            devices, spec["file"], spec.get("delay_seconds", 0))}, status=202)

    def _known_device(self, request: web.Request) -> str:
        device_id = _device_id(request)
        if self.store.device(device_id) is None:
            raise NotFound(f"no device {device_id!r}")
        return device_id

    @staticmethod
    def _found(record: dict[str, Any] | None, what: str) -> dict[str, Any]:
        if record is None:
            raise NotFound(f"no {what}")
        return record


def _file_name(request: web.Request) -> str:
    return check_file_name(request.match_info["name"])


def _group_name(request: web.Request) -> str:
    return check_text(request.match_info["name"], "a group name", MAX_GROUP_NAME)


def _device_id(request: web.Request) -> str:
    return check_text(request.match_info["device"], "a device id", MAX_DEVICE_ID)


def _batch_id(request: web.Request) -> int:
    return parse_batch_id(request.match_info["batch"])

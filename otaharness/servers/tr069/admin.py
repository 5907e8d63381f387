"""The ACS's admin HTTP API (JSON): files, groups, devices, batches, actions.
Documented in docs/tr069-acs.md; each handler is a thin call into :class:`Acs`."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from .acs import Acs, AcsError, NotFound

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

FILE_METADATA_HEADERS = {"fileType": "file_type", "oui": "oui", "productClass": "product_class",
                         "version": "version"}  # GenieACS NBI: PUT /files/<name> + headers


@web.middleware
async def _errors_as_json(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except NotFound as error:
        return web.json_response({"error": str(error)}, status=404)
    except ValueError as error:  # AcsError, ScheduleError, bad JSON
        return web.json_response({"error": str(error)}, status=400)


class AdminApi:
    def __init__(self, acs: Acs) -> None:
        self.acs = acs
        self.store = acs.store

    def application(self) -> web.Application:
        app = web.Application(middlewares=[_errors_as_json], client_max_size=256 << 20)
        routes = [
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

    # -- files ---------------------------------------------------------------------------------
    async def list_files(self, request: web.Request) -> web.Response:
        return web.json_response(self.acs.files_for_group(request.query.get("group")))

    async def put_file(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        metadata = {column: request.headers.get(header, "")
                    for header, column in FILE_METADATA_HEADERS.items()}
        self.store.save_file(name, await request.read(), uploaded=self.acs.now(), **metadata)
        return web.json_response(self.store.file(name), status=201)

    async def get_file(self, request: web.Request) -> web.Response:
        return web.json_response(self._found(self.store.file(request.match_info["name"]), "file"))

    async def delete_file(self, request: web.Request) -> web.Response:
        if not self.store.delete_file(request.match_info["name"]):
            raise NotFound(f"no file {request.match_info['name']!r}")
        return web.json_response({})

    # -- groups --------------------------------------------------------------------------------
    async def list_groups(self, request: web.Request) -> web.Response:
        return web.json_response(self.store.groups())

    async def put_group(self, request: web.Request) -> web.Response:
        spec = await _json(request)
        self.store.save_group(request.match_info["name"], oui=spec.get("oui", ""),
                              product_class=spec.get("product_class", ""),
                              devices=spec.get("devices", []))
        return web.json_response(self.store.group(request.match_info["name"]))

    async def delete_group(self, request: web.Request) -> web.Response:
        self.store.delete_group(request.match_info["name"])
        return web.json_response({})

    # -- devices -------------------------------------------------------------------------------
    async def list_devices(self, request: web.Request) -> web.Response:
        return web.json_response(self.store.devices())

    async def get_device(self, request: web.Request) -> web.Response:
        device = self._found(self.store.device(request.match_info["device"]), "device")
        device["groups"] = self.store.groups_of(device["id"])
        return web.json_response(device)

    async def device_events(self, request: web.Request) -> web.Response:
        return web.json_response(self.store.events(request.match_info["device"]))

    async def device_tasks(self, request: web.Request) -> web.Response:
        return web.json_response(self.store.tasks(device_id=request.match_info["device"]))

    async def reboot(self, request: web.Request) -> web.Response:
        reached = await self.acs.reboot(request.match_info["device"])
        return web.json_response({"connection_request": reached}, status=200 if reached else 202)

    async def connection_request(self, request: web.Request) -> web.Response:
        reached = await self.acs.connection_request(request.match_info["device"])
        return web.json_response({"connection_request": reached}, status=200 if reached else 504)

    # -- batches -------------------------------------------------------------------------------
    async def list_batches(self, request: web.Request) -> web.Response:
        return web.json_response([self.acs.batch_view(b["id"]) for b in self.store.batches()])

    async def create_batch(self, request: web.Request) -> web.Response:
        batch_id = self.acs.create_batch(await _json(request))
        return web.json_response(self.acs.batch_view(batch_id), status=201)

    async def get_batch(self, request: web.Request) -> web.Response:
        return web.json_response(self.acs.batch_view(_batch_id(request)))

    async def update_batch(self, request: web.Request) -> web.Response:
        self.acs.update_batch(_batch_id(request), await _json(request))
        return web.json_response(self.acs.batch_view(_batch_id(request)))

    async def delete_batch(self, request: web.Request) -> web.Response:
        self.acs.delete_batch(_batch_id(request))
        return web.json_response({})

    async def find_new_devices(self, request: web.Request) -> web.Response:
        return web.json_response({"added": self.acs.find_new_devices(_batch_id(request))})

    async def force_upgrade(self, request: web.Request) -> web.Response:
        reached = await self.acs.force_upgrade(_batch_id(request), request.match_info["device"])
        return web.json_response({"connection_request": reached}, status=200 if reached else 202)

    async def discard_upgrade(self, request: web.Request) -> web.Response:
        self.acs.discard_upgrade(_batch_id(request), request.match_info["device"])
        return web.json_response({})

    # -- actions -------------------------------------------------------------------------------
    async def upgrade_action(self, request: web.Request) -> web.Response:
        spec = await _json(request)
        devices, file_name = spec.get("devices"), spec.get("file")
        delay = spec.get("delay_seconds", 0)
        if (not isinstance(devices, list) or not devices or not isinstance(file_name, str)
                or not isinstance(delay, int) or delay < 0):
            raise AcsError('give {"devices": [device ids], "file": name, "delay_seconds": n}')
        return web.json_response({"connection_request": await self.acs.upgrade_devices(
            devices, file_name, delay)}, status=202)

    @staticmethod
    def _found(record: dict[str, Any] | None, what: str) -> dict[str, Any]:
        if record is None:
            raise NotFound(f"no {what}")
        return record


async def _json(request: web.Request) -> dict[str, Any]:
    data = await request.json()
    if not isinstance(data, dict):
        raise AcsError("expected a JSON object")
    return data


def _batch_id(request: web.Request) -> int:
    try:
        return int(request.match_info["batch"])
    except ValueError:
        raise NotFound(f"no batch {request.match_info['batch']!r}") from None

"""The OpenAPI 3.1 document of the network server's application interface (:mod:`.app_api`),
built from the schemas that check the requests (:mod:`.schemas`), served at
``GET /openapi.json`` on the ``lorawan-app`` URL."""

from __future__ import annotations

from typing import Any

from otaharness.servers.basics_station.openapi import JSON_LIMITS

from . import schemas

_REF = "#/components/schemas/"
_JSON = "application/json"

_ERRORS = {
    400: "bad input: a malformed EUI, group name or FPort, or a body that is not a JSON object of the "
         "documented fields, types and ranges (the message names the field), or a frame the network "
         "server cannot send (no gateway, payload too long for the group's DR or for every data rate "
         "the device's class and settings allow, the group's 32-bit frame counter used up)",
    404: "unknown device or multicast group (or no such path)",
    409: "the device or group exists",
}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": _REF + name}


def _json(description: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"description": description, "content": {_JSON: {"schema": schema}}}


UNAUTHORIZED = "no bearer token, or not this API's (checked before the body is read; nothing changes)"


def _operation(summary: str, code: int, description: str, answer: str, errors: tuple[int, ...] = (),
               body: str | None = None, params: tuple[dict[str, Any], ...] = ()) -> dict[str, Any]:
    responses = {str(code): _json(description, _ref(answer))}
    for error in (400, 404, *errors):  # 404 also for a path that names nothing (an empty {eui})
        responses[str(error)] = _json(_ERRORS[error], _ref("Error"))
    responses["401"] = _json(UNAUTHORIZED, _ref("Error"))
    operation: dict[str, Any] = {"summary": summary, "responses": responses}
    if body is not None:
        operation["requestBody"] = {"required": True, "content": {_JSON: {"schema": _ref(body)}}}
    if params:
        operation["parameters"] = list(params)
    return operation


def _path(name: str, schema: dict[str, Any], description: str = "") -> dict[str, Any]:
    parameter = {"name": name, "in": "path", "required": True, "schema": schema}
    if description:
        parameter["description"] = description
    return parameter


DEV_EUI = _path("eui", schemas.EUI_TEXT, "DevEUI")
GROUP = _path("name", schemas.GROUP_NAME, "multicast group name")
FPORT = _path("fport", schemas.FPORT)
SINCE = {"name": "since", "in": "query", "required": False,
         "schema": {"type": "integer", "minimum": 0, "maximum": schemas.MAX_SINCE, "default": 0},
         "description": "the first event sequence number wanted (the previous answer's next)"}


def _paths() -> dict[str, Any]:
    return {
        "/api/devices/{eui}": {
            "parameters": [DEV_EUI],
            "put": _operation("register an OTAA or ABP device", 201, "registered", "Device", (409,), "DevicePut"),
            "get": _operation("the device, its session and counters", 200, "the device", "Device")},
        "/api/devices/{eui}/queue": {
            "parameters": [DEV_EUI],
            "post": _operation("queue an application downlink", 201, "queued", "Queued", (), "DownlinkPost"),
            "get": _operation("downlinks not yet sent", 200, "the queue", "Queue")},
        "/api/uplinks/{fport}": {"parameters": [FPORT], "get": _operation(
            "uplink events on one FPort", 200, "events and the next sequence number", "Uplinks", params=(SINCE,))},
        "/api/multicast-groups/{name}": {"parameters": [GROUP], "put": _operation(
            "create a class C multicast group", 201, "created", "Group", (409,), "GroupPut")},
        "/api/multicast-groups/{name}/queue": {
            "parameters": [GROUP],
            "post": _operation("queue a multicast frame", 202, "queued", "Queued", (), "MulticastPost"),
            "get": _operation("the group's frames and who sent them", 200, "frames", "MulticastFrames")},
        "/openapi.json": {"get": {"summary": "this document (no token needed)", "security": [],
                                  "responses": {"200": _json("OpenAPI 3.1", {"type": "object"})}}},
    }


def openapi_document(base_url: str = "") -> dict[str, Any]:
    document: dict[str, Any] = {
        "openapi": "3.1.0",
        "info": {"title": "otaharness LoRaWAN network server: application interface", "version": "1.0.0",
                 "description": "See docs/lorawan.md. " + JSON_LIMITS},
        "paths": _paths(),
        "components": {"schemas": {
            "Error": {"type": "object", "required": ["error"], "properties": {"error": {"type": "string"}}},
            "DevicePut": schemas.DEVICE_PUT,
            "Device": schemas.DEVICE,
            "DownlinkPost": schemas.DOWNLINK_POST,
            "Queued": {"type": "object", "required": ["id"], "properties": {"id": {"type": "integer"}}},
            "Queue": schemas.QUEUED,
            "Uplinks": schemas.UPLINKS,
            "GroupPut": schemas.GROUP_PUT,
            "Group": schemas.GROUP,
            "MulticastPost": schemas.MULTICAST_POST,
            "MulticastFrames": schemas.MULTICAST_FRAMES,
        }, "securitySchemes": {"bearer": {
            "type": "http", "scheme": "bearer",
            "description": "the API's token: `otaharness serve lorawan --json` prints it under "
                           "tokens.lorawan-app"}}},
        "security": [{"bearer": []}],
    }
    if base_url:
        document["servers"] = [{"url": base_url}]
    return document

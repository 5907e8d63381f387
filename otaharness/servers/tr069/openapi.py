"""The OpenAPI 3.1 document of the ACS's admin API, served at ``/openapi.json``. Request bodies
are the schemas the API checks its input with (api_schemas.py); the rules JSON Schema cannot
state (a file name's UTF-8 length and percent-decoded form, the Download URL's 256 characters,
hour ranges whose start is after their end) are in the descriptions, and breaking them is a 400
like any other refusal."""

from __future__ import annotations

import copy
import functools
import json
from typing import Any

from . import api_schemas as s
from .acs import BATCH_EVENTS, DISCARDED, DOWNLOADING, ERROR, INSTALLED, QUEUED, READY
from .names import MAX_BATCH_ID, MAX_FILE_NAME_BYTES, MAX_GROUP_NAME
from .schedule import DAY_NAMES

_REF = "#/components/schemas/"
_STR = {"type": "string"}
_OPT_STR = {"type": ["string", "null"]}
_NUM = {"type": "number"}
_OPT_NUM = {"type": ["number", "null"]}
_INT = {"type": "integer"}
_OBJ = {"type": "object"}
_NOT_A_DOT_SEGMENT = "^(?!\\.{1,2}$)[^/\\\\\\u0000-\\u001f\\u007f-\\u009f]+$"


def _ref(name: str) -> dict[str, str]:
    return {"$ref": _REF + name}


def _object(required: list[str] | None = None, **properties: Any) -> dict[str, Any]:
    return {"type": "object", "required": required if required is not None else list(properties),
            "properties": properties}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


REFUSED = _json(_ref("Error"), "refused: what is wrong and where (e.g. `$.hours[0]: …`)")
NOT_FOUND = _json(_ref("Error"), "no such device, file, group or batch")
UNAUTHENTICATED = _json(_ref("Error"), "no bearer token, or not this API's (WWW-Authenticate: Bearer)")
CONNECTION_REQUEST = _object(connection_request={"type": "boolean"})


def _parameter(name: str, schema: dict[str, Any], description: str,
               where: str = "path") -> dict[str, Any]:
    return {"name": name, "in": where, "required": where == "path", "schema": schema,
            "description": description}


FILE_NAME = _parameter("name", {"type": "string", "minLength": 1, "maxLength": MAX_FILE_NAME_BYTES,
                                "pattern": _NOT_A_DOT_SEGMENT},
                       f"file name: at most {MAX_FILE_NAME_BYTES} UTF-8 bytes; not `.` or `..`, no `/` or "
                       "`\\`, no control characters, also once percent-decoded; its Download URL "
                       "(files URL + `/` + percent-encoded name) at most 256 characters")
GROUP_NAME = _parameter("name", {**s.GROUP_NAME}, f"group name, 1 to {MAX_GROUP_NAME} characters, "
                        "no control characters")
DEVICE = _parameter("device", {**s.DEVICE_ID},
                    "device id `OUI-ProductClass-Serial` (each part percent-encoded)")
BATCH = _parameter("batch", {"type": "integer", "minimum": 0, "maximum": MAX_BATCH_ID},
                   "batch id (decimal digits; anything else is a 400)")


def _operation(summary: str, responses: dict[str, Any], *, parameters: list[Any] = (),
               body: dict[str, Any] | None = None, body_type: str = "application/json"
               ) -> dict[str, Any]:
    # Every operation needs the bearer token (the document says so once, globally).
    operation: dict[str, Any] = {"summary": summary,
                                 "responses": {**responses, "401": UNAUTHENTICATED}}
    if parameters:
        operation["parameters"] = list(parameters)
    if body is not None:
        operation["requestBody"] = {"required": True, "content": {body_type: {"schema": body}}}
    if parameters or body is not None:
        operation["responses"] = {**operation["responses"], "400": REFUSED}
    return operation


def _components() -> dict[str, Any]:
    batch_patch = copy.deepcopy(s.BATCH_PATCH)
    batch_patch["properties"]["timezone"] = _ref("TimeZone")
    batch_create = copy.deepcopy(s.BATCH_CREATE)
    batch_create["properties"] = batch_patch["properties"]
    return {
        "Error": _object(error=_STR),
        # Not an enum of the ~600 names: the tz database is the server's, and a generator
        # would try every one of them. A name it does not hold is a 400.
        "TimeZone": {"description": "an IANA time zone name from the server's tz database "
                                    "(e.g. Europe/Berlin); empty or null = UTC",
                     "type": ["string", "null"], "maxLength": 64,
                     "pattern": "^[A-Za-z0-9_+/-]*$",
                     "examples": ["UTC", "Europe/Berlin", "America/Argentina/Buenos_Aires"]},
        "File": _object(name=_STR, file_type=_OPT_STR, oui=_OPT_STR, product_class=_OPT_STR,
                        version=_OPT_STR, size={"type": "integer", "minimum": 0},
                        md5={"type": "string", "pattern": "^[0-9a-f]{32}$"}, uploaded=_OPT_NUM),
        "Group": _object(name=_STR, oui=_STR, product_class=_STR,
                         devices={"type": "array", "items": _STR}),
        "GroupUpdate": s.GROUP,
        "Device": _object(
            ["id"], id=_STR, oui=_OPT_STR, product_class=_OPT_STR, serial_number=_OPT_STR,
            manufacturer=_OPT_STR, software_version=_OPT_STR, connection_request_url=_OPT_STR,
            parameters={"type": "object", "additionalProperties": _STR}, last_inform=_OPT_NUM,
            last_events={"type": "array", "items": {"type": "array", "items": _STR}},
            registered=_OPT_NUM, groups={"type": "array", "items": _STR}),
        "Event": _object(time=_NUM, kind=_STR, detail=_OBJ),
        "Task": _object(id=_INT, device_id=_STR, kind={"enum": ["download", "reboot"]},
                        args=_OBJ, state={"enum": ["pending", "sent", "transferring", "done",
                                                   "failed", "cancelled"]},
                        created=_NUM, command_key=_OPT_STR, batch_id={"type": ["integer", "null"]},
                        result={"type": ["object", "null"]}, attempts=_INT),
        "BatchDevice": _object(
            batch_id=_INT, device_id=_STR,
            state={"enum": [QUEUED, DOWNLOADING, INSTALLED, READY, ERROR, DISCARDED]},
            attempts=_INT, command_key=_OPT_STR, forced=_INT, download_sent=_OPT_NUM,
            transfer_complete=_OPT_NUM, check_due=_OPT_NUM,
            last_fault={"type": ["object", "null"]}, updated=_OPT_NUM),
        "Batch": _object(
            id=_INT, group_name=_STR, original_version=_STR, file=_STR, new_version=_STR,
            days={"type": "array", "items": {"enum": list(DAY_NAMES)}},
            hours={"type": "array", "items": {"type": "integer", "minimum": 0, "maximum": 23}},
            event={"enum": list(BATCH_EVENTS)}, max_attempts=_INT, max_devices_per_day=_INT,
            timezone=_STR, created=_NUM,
            devices={"type": "array", "items": _ref("BatchDevice")}),
        "BatchCreate": batch_create,
        "BatchUpdate": batch_patch,
        "UpgradeAction": s.UPGRADE_ACTION,
    }


def _paths() -> dict[str, Any]:
    ok = lambda schema, what="OK": {"200": _json(schema, what)}  # noqa: E731
    found = lambda schema: {"200": _json(schema, "OK"), "404": NOT_FOUND}  # noqa: E731
    listed = lambda name: {"type": "array", "items": _ref(name)}  # noqa: E731
    empty = {"type": "object", "maxProperties": 0}
    reached = {"200": _json(CONNECTION_REQUEST, "the Connection Request reached the device"),
               "202": _json(CONNECTION_REQUEST, "queued; the device takes it at its next Inform"),
               "404": NOT_FOUND}
    file_headers = [_parameter(header, schema, f"the file's {column}", "header")
                    for header, (column, schema) in s.FILE_HEADERS.items()]
    return {
        "/openapi.json": {"get": {"summary": "this document (no token needed)", "security": [],
                                  "responses": ok(_OBJ)}},
        "/files": {"get": _operation(
            "files; with `group`, those whose OUI/ProductClass fit a device of the group",
            found(listed("File")),
            parameters=[_parameter("group", {**s.GROUP_NAME}, "group name", "query")])},
        "/files/{name}": {
            "put": _operation("upload (raw bytes) or replace a file",
                              {"201": _json(_ref("File"), "stored"),
                               "413": REFUSED},
                              parameters=[FILE_NAME, *file_headers],
                              body={"type": "string", "format": "binary"},
                              body_type="application/octet-stream"),
            "get": _operation("a file's record", found(_ref("File")), parameters=[FILE_NAME]),
            "delete": _operation("delete a file", found(empty), parameters=[FILE_NAME]),
        },
        "/groups": {"get": _operation("groups", ok(listed("Group")))},
        "/groups/{name}": {
            "put": _operation("create or replace a group", ok(_ref("Group")),
                              parameters=[GROUP_NAME], body=_ref("GroupUpdate")),
            "delete": _operation("delete a group", ok(empty), parameters=[GROUP_NAME]),
        },
        "/devices": {"get": _operation("devices", ok(listed("Device")))},
        "/devices/{device}": {"get": _operation("a device and its groups", found(_ref("Device")),
                                                parameters=[DEVICE])},
        "/devices/{device}/events": {"get": _operation(
            "the device's log (empty for an unknown device)", ok(listed("Event")),
            parameters=[DEVICE])},
        "/devices/{device}/tasks": {"get": _operation(
            "the device's tasks (empty for an unknown device)", ok(listed("Task")),
            parameters=[DEVICE])},
        "/devices/{device}/reboot": {"post": _operation(
            "queue a Reboot and send a Connection Request", reached, parameters=[DEVICE])},
        "/devices/{device}/connection-request": {"post": _operation(
            "send a Connection Request", reached, parameters=[DEVICE])},
        "/batches": {
            "get": _operation("upgrade batches", ok(listed("Batch"))),
            "post": _operation("create a batch (lists the group's devices at the original "
                               "version)", {"201": _json(_ref("Batch"), "created"),
                                            "404": NOT_FOUND}, body=_ref("BatchCreate")),
        },
        "/batches/{batch}": {
            "get": _operation("a batch", found(_ref("Batch")), parameters=[BATCH]),
            "patch": _operation("change a batch's fields", found(_ref("Batch")),
                                parameters=[BATCH], body=_ref("BatchUpdate")),
            "delete": _operation("delete a batch", found(empty), parameters=[BATCH]),
        },
        "/batches/{batch}/find-new-devices": {"post": _operation(
            "add the group's devices at the original version",
            found(_object(added={"type": "array", "items": _STR})), parameters=[BATCH])},
        "/batches/{batch}/devices/{device}/force": {"post": _operation(
            "start the device's upgrade now", reached, parameters=[BATCH, DEVICE])},
        "/batches/{batch}/devices/{device}/discard": {"post": _operation(
            "discard the device's upgrade", found(empty), parameters=[BATCH, DEVICE])},
        "/actions/upgrade": {"post": _operation(
            "a Download of one file to each device, and Connection Requests",
            {"202": _json(_object(connection_request={
                "type": "object", "additionalProperties": {"type": "boolean"}}), "queued"),
             "404": NOT_FOUND}, body=_ref("UpgradeAction"))},
    }


@functools.cache
def _document() -> dict[str, Any]:
    return {
        "openapi": "3.1.0",
        "info": {"title": "otaharness TR-069 ACS admin API", "version": "1",
                 "description": "docs/tr069-acs.md. Every request but GET /openapi.json needs "
                                "`Authorization: Bearer <token>` (401 otherwise, before the body is read). Every "
                                "refusal is `{\"error\": …}`: 400 for invalid input (the field "
                                "named), 404 for an unknown resource."},
        "paths": _paths(),
        "security": [{"bearer": []}],
        "components": {"schemas": _components(),
                       "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}},
    }


def openapi_document() -> dict[str, Any]:
    """A fresh copy (callers may change it)."""
    return copy.deepcopy(_document())


@functools.cache
def openapi_json() -> str:
    return json.dumps(_document())

"""The OpenAPI 3.1 document of the FUOTA HTTP API (``api.py``), served at ``/openapi.json``.
Request schemas are the ones that validate requests (``schemas.py``); response schemas describe
what ``FuotaServer.status``, the event log and ``report.summary`` produce.

``python -m otaharness.servers.fuota.openapi`` prints it.
"""

from __future__ import annotations

import copy
import json
from typing import Any

from otaharness.protocols.json_input import MAX_INTEGER

from .campaign import CampaignState, DeviceStatus, Stage
from .schemas import CONFIG_SCHEMA, CREATE_SCHEMA, KINDS
from .store import EVENT_KINDS

_REF = "#/components/schemas/"
_STR = {"type": "string"}
_NUMBER = {"type": "number"}
_COUNT = {"type": "integer", "minimum": 0}
_DEV_EUI = {"type": "string", "pattern": "^[0-9A-F]{16}$"}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": _REF + name}


def _object(required: list[str], **properties: Any) -> dict[str, Any]:
    return {"type": "object", "required": required, "properties": properties}


def _config_schema() -> dict[str, Any]:
    """CONFIG_SCHEMA as a client sends it: a DevEUI as an integer only up to 2^63 - 1 (the JSON
    reader refuses larger integers; send those as 16 hex digits)."""
    schema = copy.deepcopy(CONFIG_SCHEMA)
    schema["properties"]["devices"]["items"]["properties"]["dev_eui"]["anyOf"][0]["maximum"] = MAX_INTEGER
    return schema


def _component_schemas() -> dict[str, Any]:
    create = copy.deepcopy(CREATE_SCHEMA)
    create["properties"]["config"] = _ref("CampaignConfig")
    return {
        "Error": {**_object(["error"], error=_STR, field={
            "type": "string", "description": "the offending field: $.config.redundancy, id, kind"}),
            "description": "what was wrong"},
        "CampaignConfig": _config_schema(),
        "CampaignCreate": create,
        "Created": _object(["id"], id={"type": "integer", "minimum": 1}),
        "Started": _object(["id", "state"], id={"type": "integer"}, state={"const": "running"}),
        "Stopping": _object(["id", "state"], id={"type": "integer"}, state={"const": "stopping"}),
        "DeleteAccepted": _object(["id", "state", "delete_requested"], id={"type": "integer"},
                                  state={"const": "stopping"}, delete_requested={"const": True}),
        "Campaign": _object(
            ["id", "name", "kind", "state", "stage", "round", "fragments_sent", "fragments_total",
             "delete_requested", "devices", "device_states"],
            id={"type": "integer", "minimum": 1}, name=_STR, kind={"enum": list(KINDS)},
            state={"enum": [state.value for state in CampaignState]},
            stage={"type": ["integer", "null"], "minimum": int(min(Stage)), "maximum": int(max(Stage))},
            round={"type": "integer", "minimum": 1}, fragments_sent=_COUNT,
            fragments_total={"type": ["integer", "null"], "minimum": 1},
            delete_requested={"type": "boolean"},
            devices=_object([status.value for status in DeviceStatus],
                            **{status.value: _COUNT for status in DeviceStatus}),
            device_states={"type": "array", "items": _object(
                ["dev_eui", "status", "reason", "done"], dev_eui=_DEV_EUI,
                status={"enum": [status.value for status in DeviceStatus]}, reason=_STR,
                done={"type": "object", "additionalProperties": _NUMBER})}),
        "UnreadableCampaign": {**_object(["id", "state", "error"], id={"type": "integer"},
                                         state={"const": "unreadable"}, error=_STR),
                               "description": "a stored campaign whose rows cannot be read back"},
        "CampaignOrUnreadable": {"oneOf": [_ref("Campaign"), _ref("UnreadableCampaign")]},
        "Event": {**_object(["at", "kind", "dev_eui"], at=_NUMBER, kind={"enum": list(EVENT_KINDS)},
                            dev_eui={"anyOf": [_DEV_EUI, {"type": "null"}]}),
                  "description": "plus the event's own fields (stage, command, payload, ...)"},
        "Report": _object(
            ["id", "name", "state", "duration_s", "stages", "fragments", "devices", "notes"],
            id={"type": "integer"}, name=_STR, state={"enum": [state.value for state in CampaignState]},
            duration_s=_NUMBER,
            stages={"type": "array", "items": _object(["stage", "name", "round", "start", "end"],
                                                      stage={"type": "integer"}, name=_STR,
                                                      round={"type": "integer"}, start=_NUMBER, end=_NUMBER)},
            fragments={"type": "array", "items": _object(["at"], at=_NUMBER)},
            devices={"type": "array", "items": _object(
                ["dev_eui", "label", "status", "reason", "answers_at", "losses", "rejected"], dev_eui=_DEV_EUI,
                label=_STR, status={"enum": [status.value for status in DeviceStatus]}, reason=_STR,
                answers_at={"type": "array", "items": _NUMBER},
                losses={"type": "array", "items": _object(
                    ["round", "sent", "received", "lost", "missing"], round={"type": "integer"},
                    sent={"type": "integer"}, received={"type": ["integer", "null"]},
                    lost={"type": ["integer", "null"]}, missing={"type": ["integer", "null"]})},
                rejected={"type": "array", "items": _STR})},
            notes={"type": "array", "items": _object(["at", "text"], at=_NUMBER, text=_STR)}),
    }


_ERRORS = {
    400: "bad input: not JSON, breaks the schema (the error names the field), an impossible "
         "configuration, an unknown device, a campaign id that is not a decimal integer",
    404: "no campaign with this id (also an id out of range)",
    409: "the campaign's state does not allow it, or its stored rows cannot be read",
    401: "no bearer token, or not this API's (checked before the body is read; nothing changes)",
}


def _response(description: str, schema: dict[str, Any] | None = None,
              media: str = "application/json") -> dict[str, Any]:
    response: dict[str, Any] = {"description": description}
    if schema is not None:
        response["content"] = {media: {"schema": schema}}
    return response


def _operation(summary: str, ok: dict[int, dict[str, Any]], errors: tuple[int, ...] = (),
               body: str | None = None, params: tuple[dict[str, Any], ...] = ()) -> dict[str, Any]:
    responses = {str(code): response for code, response in ok.items()}
    for code in (*errors, 401):
        responses[str(code)] = _response(_ERRORS[code], _ref("Error"))
    operation: dict[str, Any] = {"summary": summary, "responses": responses}
    if params:
        operation["parameters"] = list(params)
    if body is not None:
        operation["requestBody"] = {"required": True, "content": {"application/json": {"schema": _ref(body)}}}
    return operation


ID = {"name": "id", "in": "path", "required": True, "description": "campaign id",
      "schema": {"type": "integer", "minimum": 1, "maximum": MAX_INTEGER}}
KIND = {"name": "kind", "in": "query", "required": False, "description": "only events of this kind",
        "schema": {"enum": list(EVENT_KINDS)}}
ON_A_CAMPAIGN = (400, 404, 409)


def _paths() -> dict[str, Any]:
    return {
        "/campaigns": {
            "post": _operation("create a campaign (state created)", {201: _response("created", _ref("Created"))},
                               (400,), body="CampaignCreate"),
            "get": _operation("every campaign's progress (an unreadable one is reported as such)",
                              {200: _response("campaigns", {"type": "array",
                                                            "items": _ref("CampaignOrUnreadable")})})},
        "/campaigns/{id}": {
            "parameters": [ID],
            "get": _operation("progress: state, stage, round, fragments, devices",
                              {200: _response("progress", _ref("CampaignOrUnreadable"))}, (400, 404)),
            "delete": _operation(
                "remove the campaign; a running one is stopped first with the stop cleanup of its "
                "stage and removed when that is over",
                {204: _response("removed"),
                 202: _response("stopping: removed when the stop cleanup is over", _ref("DeleteAccepted"))},
                ON_A_CAMPAIGN)},
        "/campaigns/{id}/start": {"parameters": [ID], "post": _operation(
            "start a created campaign", {202: _response("running", _ref("Started"))}, ON_A_CAMPAIGN)},
        "/campaigns/{id}/stop": {"parameters": [ID], "post": _operation(
            "stop a running campaign (the cleanup traffic runs on)",
            {202: _response("stopping", _ref("Stopping"))}, ON_A_CAMPAIGN)},
        "/campaigns/{id}/events": {"parameters": [ID], "get": _operation(
            "the event log", {200: _response("events", {"type": "array", "items": _ref("Event")})},
            ON_A_CAMPAIGN, params=(KIND,))},
        "/campaigns/{id}/report": {"parameters": [ID], "get": _operation(
            "summary: stage intervals, fragments, outcomes", {200: _response("summary", _ref("Report"))},
            ON_A_CAMPAIGN)},
        "/campaigns/{id}/report.png": {"parameters": [ID], "get": _operation(
            "timeline plot", {200: _response("PNG", {"type": "string", "format": "binary"}, "image/png")},
            ON_A_CAMPAIGN)},
        "/openapi.json": {"get": {"summary": "this document (no token needed)", "security": [],
                                  "responses": {"200": _response("OpenAPI 3.1", {"type": "object"})}}},
    }


def openapi_document(base_url: str = "") -> dict[str, Any]:
    document: dict[str, Any] = {
        "openapi": "3.1.0",
        "info": {"title": "otaharness FUOTA campaign server", "version": "1.0.0",
                 "description": "LoRaWAN FUOTA campaigns (TS003/TS004/TS005/TS006). See docs/fuota.md."},
        "paths": _paths(),
        "components": {"schemas": _component_schemas(), "securitySchemes": {"bearer": {
            "type": "http", "scheme": "bearer",
            "description": "the API's token: `otaharness serve fuota --json` prints it under tokens.fuota"}}},
        "security": [{"bearer": []}],
    }
    if base_url:
        document["servers"] = [{"url": base_url}]
    return document


if __name__ == "__main__":  # python -m otaharness.servers.fuota.openapi > fuota-openapi.json
    print(json.dumps(openapi_document(), indent=2))

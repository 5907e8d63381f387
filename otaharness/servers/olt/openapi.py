"""The OpenAPI 3.1 document of the OLT back end, built from the same schemas that validate
requests (``schemas.py``), served at ``/openapi.json``."""

from __future__ import annotations

import copy
import json
from typing import Any

from otaharness.protocols.json_input import MAX_DEPTH
from otaharness.servers.olt import schemas

_STR = {"type": "string"}
_TIME = {"type": "string", "format": "date-time"}
_REF = "#/components/schemas/"


def _ref(name: str) -> dict[str, str]:
    return {"$ref": _REF + name}


def _object(required: list[str], **properties: Any) -> dict[str, Any]:
    return {"type": "object", "required": required, "properties": properties}


def _envelope(schema: dict[str, Any]) -> dict[str, Any]:
    return _object(["data"], data=schema)


def _list_of(name: str) -> dict[str, Any]:
    return _object(["data", "meta"], data={"type": "array", "items": _ref(name)}, meta=_ref("PageMeta"))


HASHES = _object(["sha256", "sha1", "md5"], **{
    name: {"type": "string", "pattern": f"^[0-9a-f]{{{length}}}$"}
    for name, length in (("sha256", 64), ("sha1", 40), ("md5", 32))})

STATUS = {"enum": list(schemas.INSTALLATION_STATUSES)}


def _component_schemas() -> dict[str, Any]:
    # The device-type schema's internal $defs move to components (refs are document-global here).
    device_type = copy.deepcopy(schemas.DEVICE_TYPE_SCHEMA)
    fragments = device_type.pop("$defs")["fragments"]
    for key in ("$schema", "$id"):
        device_type.pop(key)
    device_type = json.loads(json.dumps(device_type).replace("#/$defs/fragments", _REF + "SchemaFragments"))
    return {
        "Error": _object(["errors"], errors={"type": "array", "minItems": 1, "items": _object(
            ["status", "title", "detail"], status={"type": "integer"}, title=_STR, detail=_STR,
            pointer=_STR, code=_STR, currentStatus=STATUS)}),
        "OAuthError": _object(["error"], error=_STR, error_description=_STR),
        "Token": _object(["access_token", "token_type", "expires_in"], access_token=_STR,
                         token_type={"enum": ["Bearer"]}, expires_in={"type": "integer"}),
        "PageMeta": _object(["page", "pageSize", "itemsTotal"],
                            page={"type": "integer", "minimum": 0, "maximum": schemas.MAX_PAGE},
                            pageSize={"type": "integer", "minimum": 1, "maximum": schemas.MAX_PAGE_SIZE},
                            itemsTotal={"type": "integer", "minimum": 0}),
        "TenantCreate": schemas.TENANT_CREATE,
        "Tenant": _object(["id", "name", "clientId", "clientSecret"], id=_STR, name=_STR,
                          clientId=_STR, clientSecret=_STR),
        "FirmwareCreate": schemas.FIRMWARE_CREATE,
        "Firmware": _object(
            ["id", "name", "version", "createdAt"], id=_STR, name=_STR, version=_STR,
            description=_STR, kind=schemas.FIRMWARE_CREATE["properties"]["kind"], createdAt=_TIME,
            blob=_object(["size", "contentType", "hashes", "attachedAt"],
                         size={"type": "integer", "minimum": 1}, contentType=_STR, hashes=HASHES,
                         attachedAt=_TIME),
            links=_object(["download"], download={"type": "string", "format": "uri"})),
        "SchemaFragments": fragments,
        "DeviceTypeCreate": device_type,
        "DeviceType": _object(["id", "name", "schema", "createdAt"], id=_STR, name=_STR,
                              schema={"type": "object"}, slots={"type": "object"}, createdAt=_TIME),
        "DeviceCreate": schemas.DEVICE_CREATE,
        "DevicePatch": schemas.DEVICE_PATCH,
        "Device": _object(
            ["id", "info", "configuration", "attributes", "slots", "createdAt", "updatedAt"],
            id=_STR, info=_object(["name", "deviceTypeId"], name=_STR, deviceTypeId=_STR,
                                  connectedBy=_STR),
            configuration={"type": "object"}, attributes={"type": "object"},
            desiredConfiguration={"type": "object"},
            slots={"type": "object", "additionalProperties": _object(
                ["firmwareId", "version", "installationId", "installedAt"], firmwareId=_STR,
                version=_STR, installationId=_STR, installedAt=_TIME)},
            lastRejectedReport=_object(["type", "detail", "at"], type=_STR, detail=_STR, at=_TIME),
            createdAt=_TIME, updatedAt=_TIME),
        "DeviceCredentials": _object(["clientId", "clientSecret", "deviceId"], clientId=_STR,
                                     clientSecret=_STR, deviceId=_STR),
        "ActionCreate": schemas.ACTION_CREATE,
        "ActionCreated": _object(["actionId"], actionId=_STR),
        "Action": _object(["id", "deviceId", "action", "payload", "status", "createdAt"], id=_STR,
                          deviceId=_STR, action=_STR, payload={}, description=_STR,
                          status={"enum": ["sent", "answered"]}, answeredBy=_STR, createdAt=_TIME),
        "Event": _object(["id", "deviceId", "event", "payload", "time"], id=_STR, deviceId=_STR,
                         event=_STR, payload={}, actionId=_STR, time=_TIME),
        "TimeseriesPoint": _object(["time", "value"], time=_TIME, value={}),
        "InstallationCreate": schemas.INSTALLATION_CREATE,
        "InstallationPatch": schemas.INSTALLATION_PATCH,
        "Installation": _object(
            ["id", "deviceId", "firmwareId", "slot", "status", "details", "history", "createdAt",
             "updatedAt"],
            id=_STR, deviceId=_STR, firmwareId=_STR, slot={"enum": list(schemas.SLOT_KINDS)},
            status=STATUS, details={"type": "array", "items": _STR},
            progress=schemas.INSTALLATION_PATCH["properties"]["progress"],
            schedule=schemas.INSTALLATION_CREATE["properties"]["schedule"],
            maintenanceWindow=schemas.INSTALLATION_CREATE["properties"]["maintenanceWindow"],
            instructedAt=_TIME, createdAt=_TIME, updatedAt=_TIME,
            history={"type": "array", "items": _object(["status", "at"], status=STATUS, at=_TIME,
                                                         details={"type": "array", "items": _STR})}),
    }


_ERROR_TEXT = {
    400: ("bad syntax: a body that is not JSON, not valid Unicode or beyond the JSON limits "
          "(see info.description); a query parameter outside its schema"),
    401: "missing, unknown or expired bearer token",
    403: "a device-scoped token cannot do this",
    404: "not found, or another tenant's (OLT answers both alike)",
    409: "conflicts with the resource's state",
    410: "the installation is no longer active (succeeded, failed or canceled)",
    413: "body larger than the limit",
    416: "range outside the blob",
    422: "JSON that breaks the schema or a rule",
    423: "the firmware's blob is already attached",
}


def _response(description: str, schema: dict[str, Any] | None = None,
              media: str = "application/json") -> dict[str, Any]:
    response: dict[str, Any] = {"description": description}
    if schema is not None:
        response["content"] = {media: {"schema": schema}}
    return response


def _operation(summary: str, ok: dict[int, dict[str, Any]], errors: tuple[int, ...],
               body: str | None = None, params: tuple[dict[str, Any], ...] = ()) -> dict[str, Any]:
    responses = {str(code): response for code, response in ok.items()}
    for code in (400, 401, *errors):
        responses[str(code)] = _response(_ERROR_TEXT[code], _ref("Error"))
    operation: dict[str, Any] = {"summary": summary, "responses": responses}
    if params:
        operation["parameters"] = list(params)
    if body is not None:
        operation["requestBody"] = {"required": True,
                                    "content": {"application/json": {"schema": _ref(body)}}}
        responses.setdefault("413", _response(_ERROR_TEXT[413], _ref("Error")))
        responses.setdefault("422", _response(_ERROR_TEXT[422], _ref("Error")))
    return operation


def _path_param(name: str) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "schema": _STR}


def _query(name: str, schema: dict[str, Any], required: bool = False) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": required, "schema": schema}


PAGING = (_query("page", schemas.PAGE_QUERY), _query("pageSize", schemas.PAGE_SIZE_QUERY))
ID, INSTALLATION_ID, ACTION_ID = _path_param("id"), _path_param("installationId"), _path_param("actionId")


def _ok(code: int, name: str, description: str = "OK") -> dict[int, dict[str, Any]]:
    return {code: _response(description, _envelope(_ref(name)))}


def _paged(name: str) -> dict[int, dict[str, Any]]:
    return {200: _response("one page", _list_of(name))}


def _paths() -> dict[str, Any]:
    token_form = _object(["grant_type", "client_id", "client_secret"],
                         grant_type={"enum": ["client_credentials"]}, client_id=_STR, client_secret=_STR)
    blob_body = {"required": True, "content": {"application/octet-stream": {
        "schema": {"type": "string", "format": "binary"}}}}
    attach = _operation("attach the blob (once)", _ok(200, "Firmware"), (403, 404, 413, 423))
    attach["requestBody"] = blob_body
    download = _operation(
        "download the blob (Range and If-Range supported)",
        {200: _response("the whole blob", {"type": "string", "format": "binary"}, "application/octet-stream"),
         206: _response("one byte range", {"type": "string", "format": "binary"}, "application/octet-stream")},
        (404, 416), params=(_query("Range", _STR) | {"in": "header"},))
    installations = "/v1/devices/{id}/firmware-installations"
    create_tenant = _operation(
        "create a tenant and its client credentials (the secret is returned this once)",
        _ok(201, "Tenant", "created"), (403,), body="TenantCreate")
    create_tenant["security"] = [{"operator": []}]
    create_tenant["responses"]["401"] = _response("missing or unknown bearer token", _ref("Error"))
    create_tenant["responses"]["403"] = _response("a tenant's or device's token, not the operator's",
                                                  _ref("Error"))
    return {
        "/v1/id/auth/realms/olt/protocol/openid-connect/token": {"post": {
            "summary": "OAuth 2.0 client credentials grant (RFC 6749 §4.4)", "security": [],
            "requestBody": {"required": True, "content": {
                "application/x-www-form-urlencoded": {"schema": token_form}}},
            "responses": {"200": _response("access token", _ref("Token")),
                          "400": _response("bad grant", _ref("OAuthError")),
                          "401": _response("bad client credentials", _ref("OAuthError"))}}},
        "/v1/tenants": {"post": create_tenant},
        "/v1/firmwares": {
            "post": _operation("create firmware metadata", _ok(201, "Firmware", "created"), (403,),
                               body="FirmwareCreate"),
            "get": _operation("list firmwares", _paged("Firmware"), (403,), params=PAGING)},
        "/v1/firmwares/{id}": {
            "parameters": [ID],
            "get": _operation("firmware details", _ok(200, "Firmware"), (404,)),
            "delete": _operation("delete; cancels its not-yet-writing installations",
                                 {204: _response("deleted")}, (403, 404, 409))},
        "/v1/firmwares/{id}/blob": {"parameters": [ID], "put": attach, "post": attach, "get": download},
        "/v1/device-types": {
            "post": _operation("create a device type", _ok(201, "DeviceType", "created"), (403,),
                               body="DeviceTypeCreate"),
            "get": _operation("list device types", _paged("DeviceType"), (403,), params=PAGING)},
        "/v1/device-types/{id}": {"parameters": [ID], "get": _operation(
            "device type", _ok(200, "DeviceType"), (404,))},
        "/v1/devices": {
            "post": _operation("create a device", _ok(201, "Device", "created"), (403, 404),
                               body="DeviceCreate"),
            "get": _operation("list devices", _paged("Device"), (), params=PAGING)},
        "/v1/devices/{id}": {
            "parameters": [ID],
            "get": _operation("device", _ok(200, "Device"), (404,)),
            "patch": _operation("change info or configuration (sent to the device)",
                                _ok(200, "Device"), (403, 404), body="DevicePatch")},
        "/v1/devices/{id}/credentials": {"parameters": [ID], "post": _operation(
            "client credentials for a device-scoped token", _ok(201, "DeviceCredentials", "created"),
            (403, 404))},
        "/v1/devices/{id}/actions": {"parameters": [ID], "post": _operation(
            "send an action to the device over MQTT", _ok(201, "ActionCreated", "sent"), (403, 404),
            body="ActionCreate")},
        "/v1/devices/{id}/actions/{actionId}": {"parameters": [ID, ACTION_ID], "get": _operation(
            "action and whether an event answered it", _ok(200, "Action"), (404,))},
        "/v1/devices/{id}/events": {"parameters": [ID], "get": _operation(
            "events the device sent", _paged("Event"), (404,), params=PAGING)},
        "/v1/devices/{id}/timeseries": {"parameters": [ID], "get": _operation(
            "time series of one reporting rule's path", _paged("TimeseriesPoint"), (404,),
            params=(_query("path", schemas.TIMESERIES_PATH_QUERY, required=True),
                    _query("from", schemas.TIME_BOUND_QUERY), _query("to", schemas.TIME_BOUND_QUERY),
                    *PAGING))},
        installations: {
            "parameters": [ID],
            "post": _operation("install a firmware into a slot", _ok(201, "Installation", "created"),
                               (403, 404, 409), body="InstallationCreate"),
            "get": _operation("the device's installations", _paged("Installation"), (404,),
                              params=(*PAGING, _query("status", schemas.INSTALLATION_STATUS_QUERY)))},
        installations + "/{installationId}": {
            "parameters": [ID, INSTALLATION_ID],
            "get": _operation("installation status", _ok(200, "Installation"), (404,)),
            "patch": _operation("report installation status (an installing installation "
                                "without a report for install_timeout seconds, 3600 by "
                                "default, fails; a report after that gets 410)",
                                _ok(200, "Installation"), (404, 409, 410),
                                body="InstallationPatch")},
        installations + "/{installationId}/cancel": {
            "parameters": [ID, INSTALLATION_ID],
            "post": _operation("cancel", _ok(200, "Installation"), (403, 404, 409, 410))},
    }


def openapi_document(base_url: str = "") -> dict[str, Any]:
    document: dict[str, Any] = {
        "openapi": "3.1.0",
        "info": {"title": "otaharness OLT-style firmware API", "version": "1.0.0",
                 "description": "See docs/olt-api.md. OLT conventions where documented; "
                                "installation states, resources and MQTT layout are harness choices. "
                                f"JSON bodies: at most {schemas.JSON_LIMIT} bytes (else 413), nested at most "
                                f"{MAX_DEPTH} levels, integers within the signed 64-bit range, strings "
                                "valid Unicode (no lone surrogate escapes), no NaN/Infinity (else 400). "
                                "Authentication: a tenant's or device's access token from the token "
                                "endpoint (client credentials grant) on every path but this document "
                                "and the token endpoint, checked before any body is read (401); more "
                                "tenants come from POST /v1/tenants with the operator's token "
                                "(`otaharness serve olt --json` prints a ready tenant's credentials and "
                                "the operator's token under tokens)."},
        "paths": _paths(),
        "components": {"schemas": _component_schemas(),
                       "securitySchemes": {
                           "bearer": {"type": "http", "scheme": "bearer", "description": (
                               "a tenant's or device's access token from the token endpoint "
                               "(client credentials grant); expires after expires_in seconds")},
                           "operator": {"type": "http", "scheme": "bearer", "description": (
                               "the operator's token (`otaharness serve olt --json` prints it "
                               "under tokens.olt-operator): manages tenants only")}}},
        "security": [{"bearer": []}],
    }
    if base_url:
        document["servers"] = [{"url": base_url}]
    return document


if __name__ == "__main__":  # python -m otaharness.servers.olt.openapi > docs/olt-openapi.json
    print(json.dumps(openapi_document(), indent=2))

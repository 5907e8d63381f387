"""The OpenAPI 3.1 document of the CUPS port: the station's ``POST /update-info`` and the admin
API (:mod:`.admin`), built from the schemas that check the requests (:mod:`.schemas`), served
at ``GET /openapi.json``."""

from __future__ import annotations

from typing import Any

from otaharness.protocols.basics_station import UPDATE_INFO_PATH

from . import schemas

_REF = "#/components/schemas/"
JSON_LIMITS = ("Every JSON body is read with one JSON reader whose limits JSON Schema cannot state: at most 32 "
               "levels of nesting, integers within a signed 64-bit range, finite numbers (no NaN or Infinity), "
               "no lone UTF-16 surrogates; beyond them a body is refused with 400 (in fields the schemas leave "
               "open too, such as a CUPS request's unknown keys). A number of integral value (5.0) is the "
               "integer it is.")
_JSON = "application/json"
_OCTETS = {"type": "string", "format": "binary"}
_TEXT = {"text/plain": {"schema": {"type": "string"}}}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": _REF + name}


def _json(description: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"description": description, "content": {_JSON: {"schema": schema}}}


_ERRORS = {
    400: "bad input: a malformed EUI or firmware name, or a body that is not a JSON object of the "
         "documented fields, types and ranges (the message names the field)",
    401: "no or a wrong Authorization: Bearer token (the admin API's token: serve --json \"tokens\")",
    404: "unknown station or firmware (or no such path)",
    409: "a firmware of that name exists (files are never overwritten); credentials: the server runs "
         "without TLS",
    413: "firmware body over 16 MiB",
}


def _operation(summary: str, ok: dict[int, dict[str, Any]], errors: tuple[int, ...],
               body: str | None = None) -> dict[str, Any]:
    responses = {str(code): response for code, response in ok.items()}
    for code in (400, 401, 404, *errors):  # 404 also for a path that names nothing (an empty {eui})
        responses[str(code)] = _json(_ERRORS[code], _ref("Error"))
    operation: dict[str, Any] = {"summary": summary, "responses": responses}
    if body is not None:
        operation["requestBody"] = {"required": True, "content": {_JSON: {"schema": _ref(body)}}}
    return operation


EUI = {"name": "eui", "in": "path", "required": True, "schema": schemas.EUI_TEXT,
       "description": "station EUI: 16 hex digits, '-' or ':' separated, or ID6 (::1)"}
NAME = {"name": "name", "in": "path", "required": True, "schema": schemas.FIRMWARE_NAME}
TWIN = {200: _json("the station's twin", _ref("Twin"))}


def _paths() -> dict[str, Any]:
    update_info = {
        "summary": "the station's CUPS request: the reply says what to change (URIs, credentials, update)",
        "requestBody": {"required": True, "description": "at most 2048 bytes, sent with Content-Length",
                        "content": {_JSON: {"schema": _ref("UpdateInfoRequest")}}},
        "responses": {
            "200": {"description": "the binary CUPS reply (14 zero bytes: nothing to do)",
                    "content": {"application/octet-stream": {"schema": _OCTETS}}},
            "400": {"description": "not a valid CUPS request (the text names the field)", "content": _TEXT},
            "401": {"description": "with TLS: no station client certificate or known station token",
                    "content": _TEXT},
            "403": {"description": "with TLS: the credential of another station", "content": _TEXT},
            "404": {"description": "unknown station", "content": _TEXT},
            "411": {"description": "no Content-Length (chunked)", "content": _TEXT},
            "413": {"description": "body over 2048 bytes", "content": _TEXT},
        },
    }
    firmware_upload = _operation("store an update file under this name (never overwrites)",
                                 {201: _json("stored", _ref("FirmwareStored"))}, (409, 413))
    firmware_upload["requestBody"] = {"required": True, "content": {"application/octet-stream": {
        "schema": {"type": "string", "format": "binary", "minLength": 1}}}}
    return {
        UPDATE_INFO_PATH: {"post": {**update_info, "security": [{}, {"stationCertificate": []}, {"stationToken": []}]}},
        "/admin/stations/{eui}": {
            "parameters": [EUI],
            "put": _operation("create the station or merge these fields into its twin", TWIN, (), "StationPut"),
            "get": _operation("the station's twin", TWIN, ())},
        "/admin/stations/{eui}/cups": {"parameters": [EUI], "put": _operation(
            "set the desired firmware", TWIN, (), "DesiredFirmware")},
        "/admin/stations/{eui}/credentials": {"parameters": [EUI], "post": _operation(
            "issue the station a credential set (certificate and key, or token) and return its home files",
            {200: _json("the files", _ref("StationFiles"))}, (409,), "CredentialsPost")},
        "/admin/stations/{eui}/reject": {
            "parameters": [EUI],
            "put": _operation("the LNS rejects the station from now on (its live connection is closed)", TWIN,
                              (), "Reject"),
            "delete": _operation("accept the station again", TWIN, ())},
        "/admin/firmware/{name}": {
            "parameters": [NAME],
            "put": firmware_upload,
            "get": _operation("the stored file", {200: {"description": "the file",
                                                         "content": {"application/octet-stream": {"schema": _OCTETS}}}},
                              ()),
            "delete": _operation("remove the file", {204: {"description": "removed"}}, ())},
        "/openapi.json": {"get": {"summary": "this document (no token needed)", "security": [],
                                  "responses": {"200": _json("OpenAPI 3.1", {"type": "object"})}}},
    }


def openapi_document(base_url: str = "") -> dict[str, Any]:
    document: dict[str, Any] = {
        "openapi": "3.1.0",
        "info": {"title": "otaharness CUPS server and Basics Station admin API", "version": "1.0.0",
                 "description": "See docs/cups.md. POST /update-info is the station's CUPS request "
                                "(basicstation 2.0.6); /admin/ stands in for the Azure device twin and "
                                "firmware container. " + JSON_LIMITS},
        "paths": _paths(),
        # /admin/ takes the admin token (`serve cups --json` prints it under tokens.cups); a
        # station's CUPS request authenticates as the station instead (without TLS: nothing).
        "security": [{"adminToken": []}],
        "components": {"securitySchemes": {
            "adminToken": {"type": "http", "scheme": "bearer"},
            "stationCertificate": {"type": "mutualTLS",
                                   "description": "a client certificate of the station CA naming the station's EUI"},
            "stationToken": {"type": "http", "scheme": "bearer",
                             "description": "the token of the station's cups.key (basicstation's token form)"},
        }, "schemas": {
            "Error": {"type": "object", "required": ["error"], "properties": {"error": {"type": "string"}}},
            "Twin": schemas.TWIN,
            "StationPut": schemas.STATION_PUT,
            "DesiredFirmware": schemas.DESIRED_FIRMWARE_PUT,
            "Reject": schemas.REJECT_PUT,
            "CredentialsPost": schemas.CREDENTIALS_POST,
            "StationFiles": schemas.STATION_FILES,
            "FirmwareStored": {"type": "object", "required": ["fwUrl"],
                               "properties": {"fwUrl": {"type": "string", "format": "uri"}}},
            "UpdateInfoRequest": schemas.UPDATE_INFO_REQUEST,
        }},
    }
    if base_url:
        document["servers"] = [{"url": base_url}]
    return document

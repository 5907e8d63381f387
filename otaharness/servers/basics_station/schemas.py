"""JSON Schemas (draft 2020-12) of what clients send to the CUPS port: the admin API bodies,
checked at the door by ``otaharness.servers.json_body.read_json_object`` before anything is
stored, and the station's ``POST /update-info`` body (checked by the codec,
``UpdateInfoRequest.decode``; the schema documents the same rules). The OpenAPI document
(:mod:`.openapi`, served at ``/openapi.json``) is built from these.

Bounds follow what the station and the CUPS reply can carry: a URI segment holds 255 ASCII
bytes, a credential blob 65,535 bytes (2-byte length prefix), a signature 4..128 bytes
(``cups_sig_t``), a key checksum 32 bits.
"""

from __future__ import annotations

from typing import Any

from otaharness.protocols.basics_station.eui import EUI_TEXT_PATTERN

CRC32_MAX = 0xFFFFFFFF
MAX_URI_LENGTH = 255  # one length octet in the CUPS reply
MAX_CREDENTIALS = 0xFFFF  # two length octets in the CUPS reply
MIN_SIGNATURE, MAX_SIGNATURE = 4, 128  # FirmwareSignature: the station keeps at most 128 bytes
MAX_PACKAGE_LENGTH = 255
MAX_FW_URL_LENGTH = 2048
MAX_REASON_LENGTH = 1000


def base64_length(octets: int) -> int:
    """Characters of the padded base64 text of ``octets`` bytes."""
    return 4 * -(-octets // 3)


# Path parameters: exactly what ``parse_eui`` reads (16 hex digits, '-' or ':' separated, ID6)
# and the firmware store's names (FirmwareStore._path).
EUI_TEXT = {"type": "string", "pattern": EUI_TEXT_PATTERN,
            "description": "1..16 hex digits, '-' or ':' separated (not both, at most 7), or ID6 (::1)"}
FIRMWARE_NAME = {"type": "string", "pattern": r"^(?!.*\.\.)[A-Za-z0-9][A-Za-z0-9._-]{0,127}$"}

# Padded base64 (what base64.b64decode(validate=True) takes); _B64_TAIL is a last group of 1 or 2 bytes.
_B64, _B64_TAIL = "[A-Za-z0-9+/]", "(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)"
BASE64_PATTERN = f"^(?:{_B64}{{4}})*{_B64_TAIL}?$"
_PRINTABLE = "^[!-~]*$"
_URI = {"type": ["string", "null"], "maxLength": MAX_URI_LENGTH, "pattern": _PRINTABLE,
        "description": "printable ASCII without spaces, at most 255 characters (one CUPS reply segment); "
                       "the station itself drops URIs over 127 characters"}
_CREDENTIALS = {"type": ["string", "null"], "maxLength": base64_length(MAX_CREDENTIALS), "contentEncoding": "base64",
                "pattern": BASE64_PATTERN,
                "description": "base64 of a credential blob (trust, certificate, key or token) of at most "
                               f"{MAX_CREDENTIALS} bytes; null or empty: none"}
_SIGNATURE_GROUPS = MAX_SIGNATURE // 3  # 42 whole groups and a tail of 2 bytes: 128
_SIGNATURE = {"type": ["string", "null"], "contentEncoding": "base64",
              "pattern": f"^(?:|{_B64}{{4}}{_B64_TAIL}|(?:{_B64}{{4}}){{2,{_SIGNATURE_GROUPS}}}{_B64_TAIL}?)$",
              "description": f"base64 DER ECDSA signature of {MIN_SIGNATURE}..{MAX_SIGNATURE} bytes; "
                             "null or empty: none"}
_CRC32 = {"type": "integer", "minimum": 0, "maximum": CRC32_MAX}

STATION_PUT: dict[str, Any] = {
    "type": "object", "additionalProperties": False,
    "description": "fields to create or merge into the station's twin; a field left out is kept",
    "properties": {"cupsUri": _URI, "tcUri": _URI, "cupsCredentials": _CREDENTIALS, "tcCredentials": _CREDENTIALS},
}

DESIRED_FIRMWARE_PUT: dict[str, Any] = {
    "type": "object", "additionalProperties": False, "required": ["package"],
    "properties": {
        "package": {"type": "string", "minLength": 1, "maxLength": MAX_PACKAGE_LENGTH},
        "fwUrl": {"type": ["string", "null"], "maxLength": MAX_FW_URL_LENGTH, "pattern": _PRINTABLE,
                  "description": "the fwUrl the firmware upload answered with (another URL: no update is sent)"},
        "fwKeyChecksum": {"type": ["integer", "null"], "minimum": 0, "maximum": CRC32_MAX,
                          "description": "CRC32 of the sig-N.key that verifies the signature"},
        "fwSignature": _SIGNATURE,
    },
}

CREDENTIALS_POST: dict[str, Any] = {
    "type": "object", "additionalProperties": False,
    "properties": {"auth": {"enum": ["certificate", "token"],
                            "description": "a client certificate bound to the station EUI (default) or a token"}},
}

STATION_FILES: dict[str, Any] = {
    "type": "object", "required": ["stationEui", "auth", "files"],
    "properties": {
        "stationEui": {"type": "string"}, "auth": {"enum": ["certificate", "token"]},
        "files": {"type": "object", "additionalProperties": {"type": "string", "contentEncoding": "base64"},
                  "description": "station home files by name (cups.uri, cups.trust|crt|key, tc.trust|crt|key), "
                                 "base64 of their exact bytes"},
    },
}

REJECT_PUT: dict[str, Any] = {
    "type": "object", "additionalProperties": False,
    "properties": {"reason": {"type": ["string", "null"], "maxLength": MAX_REASON_LENGTH}},
}

TWIN: dict[str, Any] = {
    "type": "object",
    "required": ["stationEui", "cupsUri", "tcUri", "cupsCredCrc", "tcCredCrc", "cupsCredentials", "tcCredentials",
                 "package", "fwUrl", "fwKeyChecksum", "fwSignature", "reportedPackage", "lnsRejectReason",
                 "lastCupsDecision"],
    "properties": {
        "stationEui": {"type": "string", "pattern": "^[0-9A-F]{16}$"},
        "cupsUri": {"type": ["string", "null"]}, "tcUri": {"type": ["string", "null"]},
        "cupsCredCrc": {"type": ["integer", "null"], "minimum": 0, "maximum": CRC32_MAX},
        "tcCredCrc": {"type": ["integer", "null"], "minimum": 0, "maximum": CRC32_MAX},
        "cupsCredentials": {"type": "string"}, "tcCredentials": {"type": "string"},
        "package": {"type": ["string", "null"]}, "fwUrl": {"type": ["string", "null"]},
        "fwKeyChecksum": {"type": ["integer", "null"], "minimum": 0, "maximum": CRC32_MAX},
        "fwSignature": {"type": "string"}, "reportedPackage": {"type": ["string", "null"]},
        "lnsRejectReason": {"type": ["string", "null"]}, "lastCupsDecision": {"type": ["string", "null"]},
    },
}

# What UpdateInfoRequest.decode accepts (basicstation 2.0.6 cups_update_info); unknown keys are
# ignored as by the reference servers. The whole body is at most 2,048 bytes.
UPDATE_INFO_REQUEST: dict[str, Any] = {
    "type": "object",
    "required": ["router", "cupsUri", "tcUri", "cupsCredCrc", "tcCredCrc", "station", "model", "package", "keys"],
    "properties": {
        "router": {"type": ["string", "integer"], "pattern": EUI_TEXT_PATTERN,
                   "minimum": -(2**63), "maximum": 2**63 - 1,
                   "description": "the station EUI: ID6 (as the station sends it), EUI text, or a number"},
        "cupsUri": {"type": ["string", "null"]}, "tcUri": {"type": ["string", "null"]},
        "cupsCredCrc": _CRC32, "tcCredCrc": _CRC32,
        "station": {"type": "string"}, "model": {"type": "string"}, "package": {"type": ["string", "null"]},
        "keys": {"type": "array", "items": _CRC32},
    },
}

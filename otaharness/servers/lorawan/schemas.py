"""JSON Schemas (draft 2020-12) of the application interface (:mod:`.app_api`): the request
bodies, checked at the door by ``otaharness.servers.json_body.read_json_object`` before the
network server stores anything, the path and query parameters, and the answers. The OpenAPI
document (:mod:`.openapi`, served at ``/openapi.json``) is built from these.

Bounds: EUIs as ``parse_eui`` reads them (16 hex digits, ``-``/``:`` separators, ID6), keys 16
octets, DevAddr/McAddr 4 octets, an application payload at most the largest EU868 FRMPayload
(222 octets), FPort 1..255, counters 32 bits, EU868 frequencies and data rates.
"""

from __future__ import annotations

from typing import Any

from otaharness.protocols.basics_station.eui import EUI_TEXT_PATTERN
from otaharness.protocols.lorawan import EU868

U32_MAX = 0xFFFFFFFF
MAX_PAYLOAD = max(rate.max_frm_payload_size() for rate in EU868.data_rates)
MAX_DATA_RATE = len(EU868.data_rates) - 1
MAX_GATEWAYS = 64
MAX_SINCE = 2**63 - 1

EUI_TEXT = {"type": "string", "pattern": EUI_TEXT_PATTERN,
            "description": "1..16 hex digits, '-' or ':' separated (not both, at most 7), or ID6 (::1)"}
GROUP_NAME = {"type": "string", "minLength": 1, "maxLength": 64, "pattern": "^[A-Za-z0-9._-]+$"}
FPORT = {"type": "integer", "minimum": 1, "maximum": 255}
KEY = {"type": "string", "pattern": "^[0-9A-Fa-f]{32}$", "description": "16 octets, hex"}
ADDRESS = {"type": "string", "pattern": "^[0-9A-Fa-f]{8}$", "description": "4 octets, hex, big-endian as written"}
PAYLOAD = {"type": "string", "maxLength": 2 * MAX_PAYLOAD, "pattern": "^(?:[0-9A-Fa-f]{2})*$",
           "description": f"hex, at most {MAX_PAYLOAD} octets (EU868's largest FRMPayload)"}
DEVICE_CLASS = {"enum": ["A", "C"], "default": "A"}
U32 = {"type": "integer", "minimum": 0, "maximum": U32_MAX}

DEVICE_PUT: dict[str, Any] = {
    "oneOf": [
        {"title": "OTAA", "type": "object", "additionalProperties": False, "required": ["appKey"],
         "properties": {"joinEui": EUI_TEXT, "appKey": KEY, "class": DEVICE_CLASS}},
        {"title": "ABP", "type": "object", "additionalProperties": False,
         "required": ["devAddr", "nwkSKey", "appSKey"],
         "properties": {"devAddr": ADDRESS, "nwkSKey": KEY, "appSKey": KEY, "class": DEVICE_CLASS}},
    ],
}

DOWNLINK_POST: dict[str, Any] = {
    "type": "object", "additionalProperties": False, "required": ["fPort", "payload"],
    "properties": {"fPort": FPORT, "payload": PAYLOAD, "confirmed": {"type": "boolean", "default": False}},
}

GROUP_PUT: dict[str, Any] = {
    "type": "object", "additionalProperties": False,
    "required": ["mcAddr", "mcNwkSKey", "mcAppSKey", "frequency", "dr"],
    "properties": {
        "mcAddr": ADDRESS, "mcNwkSKey": KEY, "mcAppSKey": KEY,
        "frequency": {"type": "integer", "description": "Hz, inside an EU868 duty-cycle sub-band",
                      "anyOf": [{"minimum": band.low_hz, "exclusiveMaximum": band.high_hz, "title": band.name}
                                for band in EU868.sub_bands]},
        "dr": {"type": "integer", "minimum": 0, "maximum": MAX_DATA_RATE},
        "fCnt": U32 | {"default": 0},
    },
}

MULTICAST_POST: dict[str, Any] = {
    "type": "object", "additionalProperties": False, "required": ["fPort", "payload"],
    "properties": {"fPort": FPORT, "payload": PAYLOAD,
                   "gateways": {"type": "array", "maxItems": MAX_GATEWAYS, "items": EUI_TEXT,
                                "description": "default: every station connected to the LNS"}},
}

# Answers

_EUI_OUT = {"type": "string", "pattern": "^[0-9A-F]{16}$"}
_HEX = {"type": "string", "pattern": "^(?:[0-9a-f]{2})*$"}
DEVICE: dict[str, Any] = {
    "type": "object",
    "required": ["devEui", "class", "activation", "joined", "devAddr", "fCntUp", "nFCntDown", "lastGateway"],
    "properties": {
        "devEui": _EUI_OUT, "class": {"enum": ["A", "C"]}, "activation": {"enum": ["OTAA", "ABP"]},
        "joined": {"type": "boolean"}, "devAddr": {"type": ["string", "null"], "pattern": "^[0-9A-F]{8}$"},
        "fCntUp": {"type": ["integer", "null"], "minimum": 0, "maximum": U32_MAX},
        "nFCntDown": {"type": "integer", "minimum": 0}, "lastGateway": {"type": ["string", "null"]},
    },
}
QUEUED: dict[str, Any] = {
    "type": "object", "required": ["queue", "dropped"],
    "properties": {"queue": {"type": "array", "items": {
        "type": "object", "required": ["id", "fPort", "payload", "confirmed", "inFlight"],
        "properties": {"id": {"type": "integer"}, "fPort": FPORT, "payload": _HEX, "confirmed": {"type": "boolean"},
                       "inFlight": {"type": "boolean"}}}},
        # queued downlinks the server gave up (the last ones it keeps), oldest first
        "dropped": {"type": "array", "items": {
            "type": "object", "required": ["id", "size", "reason", "at"],
            "properties": {"id": {"type": "integer"}, "size": {"type": "integer", "minimum": 0},
                           "reason": {"type": "string"}, "at": {"type": "number"}}}}},
}
UPLINKS: dict[str, Any] = {
    "type": "object", "required": ["events", "next"],
    "properties": {"next": {"type": "integer", "minimum": 0}, "events": {"type": "array", "items": {
        "type": "object",
        "required": ["seq", "devEui", "fPort", "payload", "fCnt", "confirmed", "gateway", "gateways", "rssi", "snr",
                     "dr", "frequency", "gpsTime"],
        "properties": {"seq": {"type": "integer"}, "devEui": _EUI_OUT, "fPort": FPORT, "payload": _HEX,
                       "fCnt": U32, "confirmed": {"type": "boolean"}, "gateway": _EUI_OUT,
                       "gateways": {"type": "integer", "minimum": 1}, "rssi": {"type": "number"},
                       "snr": {"type": "number"}, "dr": {"type": "integer"}, "frequency": {"type": "integer"},
                       "gpsTime": {"type": ["number", "null"]}}}}},
}
GROUP: dict[str, Any] = {
    "type": "object", "required": ["name", "mcAddr", "frequency", "dr", "fCnt"],
    "properties": {"name": {"type": "string"}, "mcAddr": {"type": "string", "pattern": "^[0-9A-F]{8}$"},
                   "frequency": {"type": "integer"}, "dr": {"type": "integer"},
                   # the next McFCount: 2^32 once the group has used FCnt 2^32 - 1 (set it up again)
                   "fCnt": {"type": "integer", "minimum": 0, "maximum": U32_MAX + 1}},
}
MULTICAST_FRAMES: dict[str, Any] = {
    "type": "object", "required": ["group", "frames"],
    "properties": {"group": GROUP, "frames": {"type": "array", "items": {
        "type": "object", "required": ["id", "fPort", "payload", "fCnt", "gateways", "transmittedBy"],
        "properties": {"id": {"type": "integer"}, "fPort": FPORT, "payload": _HEX,
                       "fCnt": {"type": ["integer", "null"]}, "gateways": {"type": "array", "items": _EUI_OUT},
                       "transmittedBy": {"type": ["array", "null"], "items": _EUI_OUT}}}}},
}

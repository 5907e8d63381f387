"""JSON Schemas (draft 2020-12) of what a client sends the FUOTA server: the campaign
configuration and the ``POST /campaigns`` body. The same schemas validate requests
(``api.py``), every configuration the server stores (``FuotaServer.create_campaign``), every
configuration it reads back (``CampaignConfig.from_json``), and go into the OpenAPI document
(``openapi.py``).

Ranges come from what the fields become on the air (TS004/TS005/TS006 field widths) or from the
server's limits; checks that depend on the region or on other fields (the data rate's largest
fragment, the frequency's sub-band, a LoRa data rate, the image's fragment count, the devices
the network server knows) are made when the campaign is created (``FuotaServer.create_campaign``).
"""

from __future__ import annotations

import math
from typing import Any

from otaharness.protocols.fuota.fec import MAX_FRAG_SIZE, MAX_N
from otaharness.protocols.json_input import JsonInputError, validate

GPS_EPOCH_UNIX = 315_964_800  # 1980-01-06T00:00:00Z
LAST_REBOOT_TIME_UNIX = 4_607_280_000  # 2116-01-01: GPS seconds still fit the 32 bits TS006 carries
MAX_WAIT_S = 7 * 24 * 3600  # unicast and verification waits
MAX_SESSION_START_DELAY_S = (1 << 24) - 1  # TS005 TimeToStart is 24 bits of seconds
MAX_ROUNDS = 100
MAX_UNICAST_ATTEMPTS = 100
MAX_DEVICES = 10_000
MAX_NAME_LENGTH = 200
MAX_DEV_EUI = (1 << 64) - 1
PROFILES = ("specification", "loramac-node")
KINDS = ("firmware", "binary")


def _integer(low: int, high: int, *, nullable: bool = False) -> dict[str, Any]:
    return {"type": ["integer", "null"] if nullable else "integer", "minimum": low, "maximum": high}


def _number(low: float, high: float, *, nullable: bool = False, exclusive_low: bool = False) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": ["number", "null"] if nullable else "number", "maximum": high}
    schema["exclusiveMinimum" if exclusive_low else "minimum"] = low
    return schema


DEVICE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["dev_eui", "gen_app_key"],
    "additionalProperties": False,
    "properties": {
        # an integer, or 16 hex digits (over HTTP a DevEUI above 2^63 - 1 only as hex: the JSON
        # reader refuses larger integers, otaharness/protocols/json_input.py)
        "dev_eui": {"anyOf": [{"type": "integer", "minimum": 0, "maximum": MAX_DEV_EUI},
                              {"type": "string", "pattern": "^[0-9A-Fa-f]{16}$"}]},
        "gen_app_key": {"type": "string", "pattern": "^[0-9A-Fa-f]{32}$"},
        "profile": {"enum": list(PROFILES)},
    },
}

CONFIG_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["name", "devices", "firmware_version"],
    "additionalProperties": False,
    "properties": {
        "name": {"type": "string", "minLength": 1, "maxLength": MAX_NAME_LENGTH},
        "devices": {"type": "array", "minItems": 1, "maxItems": MAX_DEVICES, "items": DEVICE_SCHEMA},
        "firmware_version": _integer(0, 0xFFFF_FFFF),  # TS006 version words are 32 bits
        "kind": {"enum": list(KINDS)},
        "fec": {"type": "boolean"},
        "redundancy": _number(0, MAX_N),  # coded fragments are capped at 16383 - M anyway
        "data_rate": _integer(0, 15),
        "frequency": {"type": "integer", "minimum": 100, "maximum": ((1 << 24) - 1) * 100, "multipleOf": 100},
        "session_class": {"enum": ["B", "C"]},
        "ping_slot_periodicity": _integer(0, 7),
        "session_start_delay_s": _number(0, MAX_SESSION_START_DELAY_S, nullable=True),
        "session_timeout_exponent": _integer(0, 15, nullable=True),
        "frag_size": _integer(1, MAX_FRAG_SIZE, nullable=True),
        "mc_group_id": _integer(0, 3),
        "frag_index": _integer(0, 3),
        "block_ack_delay": _integer(0, 7),
        "reboot_time": _number(GPS_EPOCH_UNIX, LAST_REBOOT_TIME_UNIX, nullable=True, exclusive_low=True),
        "reboot_countdown_s": _integer(0, 0xFF_FFFE),  # 0xFFFFFF means "cancel"
        "success_threshold": _number(0, 1, exclusive_low=True),
        "max_rounds": _integer(1, MAX_ROUNDS),
        "unicast_timeout_s": _number(0, MAX_WAIT_S, exclusive_low=True),
        "unicast_attempts": _integer(1, MAX_UNICAST_ATTEMPTS),
        "verification_timeout_s": _number(0, MAX_WAIT_S),
    },
}

CREATE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["config", "image"],
    "additionalProperties": False,
    "properties": {
        "config": CONFIG_SCHEMA,
        "image": {"type": "string", "minLength": 4, "pattern": "^[A-Za-z0-9+/]+={0,2}$"},  # base64
    },
}

INTEGER_FIELDS = tuple(name for name, schema in CONFIG_SCHEMA["properties"].items()
                       if "integer" in (schema.get("type") or ()))


def _finite(value: Any, path: str) -> None:
    """NaN and infinities pass JSON Schema's minimum/maximum (every comparison is false): the JSON
    reader never produces them, but a configuration built in Python could hold them."""
    stack = [(value, path)]
    while stack:
        item, where = stack.pop()
        if isinstance(item, float) and not math.isfinite(item):
            raise JsonInputError(f"{item} is not a finite number", where)
        if isinstance(item, dict):
            stack.extend((child, f"{where}.{key}") for key, child in item.items())
        elif isinstance(item, list):
            stack.extend((child, f"{where}[{index}]") for index, child in enumerate(item))


def check_config(document: Any, where: str = "$") -> dict[str, Any]:
    """``document`` checked against :data:`CONFIG_SCHEMA`, with whole floats in integer fields
    (JSON Schema counts ``2.0`` as an integer) turned into ints. Raises :class:`JsonInputError`
    naming the field (``where`` is the configuration's own place, e.g. ``$.config``)."""
    try:
        _finite(document, "$")
        validate(document, CONFIG_SCHEMA)
    except JsonInputError as error:
        raise JsonInputError(error.reason, where + error.path[1:]) from None
    values = dict(document)
    for name in INTEGER_FIELDS:
        if isinstance(values.get(name), float):
            values[name] = int(values[name])
    values["devices"] = [dict(device, dev_eui=int(device["dev_eui"])) if isinstance(device["dev_eui"], float)
                         else dict(device) for device in values["devices"]]
    try:
        values["name"].encode("utf-8")
    except UnicodeEncodeError:
        raise JsonInputError("is not valid Unicode (a lone surrogate)", where + ".name") from None
    return values

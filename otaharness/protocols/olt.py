"""OLT wire codec: the MQTT topic layout and payload shapes between the OLT back end
(``otaharness/servers/olt``) and devices/gateways (``emulators/olt_gateway``), shared by both.

OLT documents ``data-ingest``/``event-ingest`` (device → cloud) and ``devices/{id}/actions``,
``devices/{id}/configuration`` (cloud → device). Identity there comes from the device's TLS
certificate; our loopback broker has none, so every ingest payload names its ``deviceId`` (as a
gateway does when it speaks for a device behind it). The installation and error topics are this
harness's choice (OLT never specified them). Pure functions: no I/O.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from otaharness.protocols.json_input import JsonInputError, parse_json_object

DATA_INGEST = "data-ingest"
EVENT_INGEST = "event-ingest"
REPORT_TYPES = ("attributes", "configuration")


class TopicError(ValueError):
    """An MQTT payload that is not what the topic layout defines."""


def actions_topic(device_id: str) -> str:
    return f"devices/{device_id}/actions"


def configuration_topic(device_id: str) -> str:
    return f"devices/{device_id}/configuration"


def installations_topic(device_id: str) -> str:
    return f"devices/{device_id}/firmware-installations"


def errors_topic(device_id: str) -> str:
    return f"devices/{device_id}/errors"


def device_filter(device_id: str) -> str:
    """Everything the cloud sends to one device."""
    return f"devices/{device_id}/+"


def decode_json_object(payload: bytes, topic: str) -> dict[str, Any]:
    """The payload as a JSON object, read with the project's JSON reader (size, nesting,
    NaN/Infinity, 64-bit integers, lone surrogates: otaharness.protocols.json_input); TopicError
    else."""
    try:
        return parse_json_object(payload)
    except JsonInputError as exc:
        raise TopicError(f"{topic}: payload refused: {exc}") from None


def decode_data_report(payload: bytes) -> tuple[str, str, dict[str, Any]]:
    """``{"deviceId", "type": "attributes"|"configuration", "value": {...}}`` → its three parts."""
    document = decode_json_object(payload, DATA_INGEST)
    device_id, kind, value = document.get("deviceId"), document.get("type"), document.get("value")
    if not isinstance(device_id, str) or not device_id:
        raise TopicError(f"{DATA_INGEST}: deviceId must be a non-empty string")
    if kind not in REPORT_TYPES:
        raise TopicError(f"{DATA_INGEST}: type must be one of {', '.join(REPORT_TYPES)}")
    if not isinstance(value, dict):
        raise TopicError(f"{DATA_INGEST}: value must be an object")
    return device_id, kind, value


def decode_event(payload: bytes) -> dict[str, Any]:
    """``{"deviceId", "event": name, "payload"?: any, "actionId"?: str}``."""
    document = decode_json_object(payload, EVENT_INGEST)
    if not isinstance(document.get("deviceId"), str) or not document["deviceId"]:
        raise TopicError(f"{EVENT_INGEST}: deviceId must be a non-empty string")
    if not isinstance(document.get("event"), str) or not document["event"]:
        raise TopicError(f"{EVENT_INGEST}: event must be a non-empty string")
    if "actionId" in document and not isinstance(document["actionId"], str):
        raise TopicError(f"{EVENT_INGEST}: actionId must be a string")
    return document


def seconds_until_window(epoch: float, window: dict[str, str] | None) -> float:
    """How long until a daily UTC maintenance window ``{"start": "HH:MM", "end": "HH:MM"}``
    (as in an installation instruction) is open: 0 inside it; no window is always open.
    ``end`` before ``start`` spans midnight; ``end`` equal to ``start`` is the whole day (a
    window of no time would never open, and a gateway told to wait for it would wait forever)."""
    if window is None or window["start"] == window["end"]:
        return 0.0
    moment = dt.datetime.fromtimestamp(epoch, dt.UTC)
    now = moment.hour * 3600 + moment.minute * 60 + moment.second + moment.microsecond / 1e6
    start, end = (int(t[:2]) * 3600 + int(t[3:]) * 60 for t in (window["start"], window["end"]))
    inside = start <= now < end if start <= end else (now >= start or now < end)
    return 0.0 if inside else (start - now) % 86400

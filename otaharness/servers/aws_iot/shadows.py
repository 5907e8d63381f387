"""Device Shadow MQTT operations on moto's iot-data shadows (one store: boto3's
get_thing_shadow sees what a tracker reported). Messages per AWS `device-shadow-mqtt`."""

from __future__ import annotations

import copy
import json
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from moto.core.exceptions import JsonRESTError
from moto.iotdata.models import FakeShadow, IoTDataPlaneBackend

from otaharness.protocols.aws_iot_jobs import ShadowRejection, ShadowUpdateRequest, shadow_response
from otaharness.servers.aws_iot.jobs import Clock


@dataclass(frozen=True)
class ShadowUpdateResult:
    accepted: dict[str, Any]
    documents: dict[str, Any]
    delta: dict[str, Any] | None  # only when the update leaves desired != reported


def _document(shadow: FakeShadow) -> dict[str, Any]:
    """state (without delta), metadata and version, as in `update/documents`; a deep copy,
    since moto's update merges into the previous shadow's nested dicts."""
    document = copy.deepcopy(shadow.to_dict(include_delta=False))
    document.pop("timestamp", None)
    return document


class ShadowService:
    def __init__(self, backend: Callable[[], IoTDataPlaneBackend], clock: Clock, lock: threading.RLock) -> None:
        self._backend = backend
        self._clock = clock
        self._lock = lock

    def _now(self) -> int:
        return int(self._clock.epoch())

    def _existing(self, backend: IoTDataPlaneBackend, thing_name: str, shadow_name: str | None) -> FakeShadow | None:
        try:
            thing = backend.iot_backend.describe_thing(thing_name)
        except JsonRESTError:
            raise ShadowRejection(404, f"Thing not found: '{thing_name}'") from None
        shadow = thing.thing_shadows.get(shadow_name)
        return None if shadow is None or shadow.deleted else shadow

    @staticmethod
    def _not_found(thing_name: str, shadow_name: str | None) -> ShadowRejection:
        return ShadowRejection(404, f"No shadow exists with name: '{shadow_name or thing_name}'")

    def update(self, thing_name: str, shadow_name: str | None, request: ShadowUpdateRequest) -> ShadowUpdateResult:
        with self._lock:
            backend = self._backend()
            previous = self._existing(backend, thing_name, shadow_name)
            if request.version is not None and (previous is None or previous.version != request.version):
                raise ShadowRejection(409, "Version conflict")
            previous_document = _document(previous) if previous is not None else None
            try:
                shadow = backend.update_thing_shadow(thing_name, json.dumps(request.to_document()), shadow_name)
            except JsonRESTError as error:
                raise ShadowRejection(error.code, error.message) from None
        now, token = self._now(), request.client_token
        accepted = shadow_response(shadow.to_response_dict(), now, token)
        documents_body: dict[str, Any] = {"current": _document(shadow)}
        if previous_document is not None:
            documents_body["previous"] = previous_document
        delta_state = shadow.parse_payload(shadow.desired, shadow.reported)
        delta = None
        if request.state and request.state.get("desired") and delta_state:
            metadata = shadow.metadata_desired or {}
            delta = shadow_response(
                {
                    "version": shadow.version,
                    "state": delta_state,
                    "metadata": {key: metadata[key] for key in delta_state if key in metadata},
                },
                now,
                token,
            )
        return ShadowUpdateResult(accepted, shadow_response(documents_body, now, token), delta)

    def get(self, thing_name: str, shadow_name: str | None, client_token: str | None) -> dict[str, Any]:
        with self._lock:
            shadow = self._existing(self._backend(), thing_name, shadow_name)
            if shadow is None:
                raise self._not_found(thing_name, shadow_name)
            document = shadow.to_dict()  # with delta
        document.pop("timestamp", None)
        return shadow_response(document, self._now(), client_token)

    def delete(self, thing_name: str, shadow_name: str | None, client_token: str | None) -> dict[str, Any]:
        with self._lock:
            backend = self._backend()
            if self._existing(backend, thing_name, shadow_name) is None:
                raise self._not_found(thing_name, shadow_name)
            shadow = backend.delete_thing_shadow(thing_name, shadow_name)
        return shadow_response({"version": shadow.version}, self._now(), client_token)

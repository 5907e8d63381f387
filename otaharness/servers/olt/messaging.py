"""MQTT side of the OLT back end: ``data-ingest`` and ``event-ingest`` into the backend.

The client is injected (``otaharness.runtime.mqtt.MqttClient`` in production): anything with
``subscribe(filter, qos)``, ``add_handler(filter, callback)`` and ``publish(topic, payload, qos)``.
The same client is the backend's publisher.
"""

from __future__ import annotations

import collections
import logging
from typing import Any, Protocol

from otaharness.protocols import olt
from otaharness.runtime import timeline
from otaharness.servers.olt.backend import OltBackend

log = logging.getLogger(__name__)

DROPPED_KEPT = 100  # reasons of dropped messages kept


class PubSub(Protocol):
    async def subscribe(self, topic_filter: str, qos: int = 1) -> Any: ...

    def add_handler(self, topic_filter: str, handler: Any) -> None: ...

    async def publish(self, topic: str, payload: Any, qos: int = 0) -> Any: ...


class OltMessaging:
    def __init__(self, backend: OltBackend, client: PubSub) -> None:
        self.backend = backend
        self.client = client
        # Why the last malformed messages were dropped (for tests and logs) and how many in all:
        # a client publishing garbage for hours costs no memory.
        self.dropped: collections.deque[str] = collections.deque(maxlen=DROPPED_KEPT)
        self.dropped_count = 0

    async def start(self) -> None:
        self.backend.publisher = self.client
        self.client.add_handler(olt.DATA_INGEST, self.on_data)
        self.client.add_handler(olt.EVENT_INGEST, self.on_event)
        await self.client.subscribe(olt.DATA_INGEST, qos=1)
        await self.client.subscribe(olt.EVENT_INGEST, qos=1)

    async def on_data(self, topic: str, payload: bytes) -> None:
        timeline.exchange("olt", "mqtt", f"→ PUBLISH {topic}", payload)
        try:
            device_id, kind, value = olt.decode_data_report(payload)
        except olt.TopicError as exc:
            self._drop(str(exc))
            return
        await self.backend.ingest_report(device_id, kind, value)

    async def on_event(self, topic: str, payload: bytes) -> None:
        timeline.exchange("olt", "mqtt", f"→ PUBLISH {topic}", payload)
        try:
            event = olt.decode_event(payload)
        except olt.TopicError as exc:
            self._drop(str(exc))
            return
        await self.backend.ingest_event(event)

    def _drop(self, why: str) -> None:
        log.info("dropped: %s", why)
        self.dropped.append(why)
        self.dropped_count += 1

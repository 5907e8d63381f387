"""Malformed MQTT ingest messages are dropped and counted; only the last reasons are kept, so a
client publishing garbage for hours costs the back end no memory."""

from __future__ import annotations

import asyncio
from pathlib import Path

from olt_world import ShiftedClock

from otaharness.servers.olt.backend import OltBackend
from otaharness.servers.olt.messaging import DROPPED_KEPT, OltMessaging
from otaharness.servers.olt.store import Store


def test_dropped_messages_are_counted_and_their_reasons_bounded(tmp_path: Path) -> None:
    store = Store(tmp_path / "olt.sqlite3")
    try:
        messaging = OltMessaging(OltBackend(store, ShiftedClock()), client=None)  # type: ignore[arg-type]
        sent = DROPPED_KEPT * 3

        async def publish_garbage() -> None:
            for number in range(sent):
                await messaging.on_data("data-ingest", b"not json %d" % number)
                await messaging.on_event("event-ingest", b"[]")

        asyncio.run(publish_garbage())
        assert messaging.dropped_count == 2 * sent
        assert len(messaging.dropped) == DROPPED_KEPT
    finally:
        store.close()

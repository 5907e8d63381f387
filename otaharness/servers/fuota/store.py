"""SQLite persistence of campaigns, per-device state and the event log (stages, fragments,
requests, answers, rejected input), so that a restarted server resumes where it was."""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .campaign import CampaignConfig, CampaignError, CampaignState, DeviceState

SCHEMA = """
CREATE TABLE IF NOT EXISTS campaigns (
    id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT NOT NULL, config TEXT NOT NULL, image BLOB NOT NULL,
    state TEXT NOT NULL, progress TEXT NOT NULL, created_at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS devices (
    campaign_id INTEGER NOT NULL, dev_eui TEXT NOT NULL, state TEXT NOT NULL,
    PRIMARY KEY (campaign_id, dev_eui));
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY AUTOINCREMENT, campaign_id INTEGER NOT NULL, at REAL NOT NULL,
    dev_eui TEXT, kind TEXT NOT NULL, detail TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS events_by_campaign ON events (campaign_id, kind);
"""


@dataclass
class CampaignRecord:
    id: int
    config: CampaignConfig
    image: bytes
    state: CampaignState
    progress: dict[str, Any]  # stage, round, session times, next fragment, multicast key, ...
    created_at: float


@dataclass(frozen=True)
class Event:
    at: float
    dev_eui: int | None
    kind: str  # stage, fragment, request, answer, rejected, note
    detail: dict[str, Any]


class CampaignStore:
    def __init__(self, path: Path | str) -> None:
        self._db = sqlite3.connect(str(path))
        self._db.row_factory = sqlite3.Row
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(SCHEMA)

    def close(self) -> None:
        self._db.close()

    def create(self, config: CampaignConfig, image: bytes, devices: list[DeviceState], at: float) -> int:
        with self._db:
            cursor = self._db.execute(
                "INSERT INTO campaigns (name, config, image, state, progress, created_at) VALUES (?, ?, ?, ?, ?, ?)",
                (config.name, json.dumps(config.to_json()), image, CampaignState.CREATED.value, "{}", at))
            campaign_id = int(cursor.lastrowid or 0)
            self._db.executemany("INSERT INTO devices VALUES (?, ?, ?)",
                                 [(campaign_id, f"{d.dev_eui:016X}", json.dumps(d.to_json())) for d in devices])
        return campaign_id

    def get(self, campaign_id: int) -> CampaignRecord:
        row = self._db.execute("SELECT * FROM campaigns WHERE id = ?", (campaign_id,)).fetchone()
        if row is None:
            raise CampaignError(f"no campaign {campaign_id}")
        return CampaignRecord(row["id"], CampaignConfig.from_json(json.loads(row["config"])), bytes(row["image"]),
                              CampaignState(row["state"]), json.loads(row["progress"]), row["created_at"])

    def ids(self, *states: CampaignState) -> list[int]:
        rows = self._db.execute("SELECT id, state FROM campaigns ORDER BY id").fetchall()
        return [row["id"] for row in rows if not states or CampaignState(row["state"]) in states]

    def save(self, campaign_id: int, state: CampaignState, progress: dict[str, Any]) -> None:
        with self._db:
            self._db.execute("UPDATE campaigns SET state = ?, progress = ? WHERE id = ?",
                             (state.value, json.dumps(progress), campaign_id))

    def devices(self, campaign_id: int) -> list[DeviceState]:
        rows = self._db.execute("SELECT state FROM devices WHERE campaign_id = ? ORDER BY dev_eui",
                                (campaign_id,)).fetchall()
        return [DeviceState.from_json(json.loads(row["state"])) for row in rows]

    def save_device(self, campaign_id: int, device: DeviceState) -> None:
        with self._db:
            self._db.execute("UPDATE devices SET state = ? WHERE campaign_id = ? AND dev_eui = ?",
                             (json.dumps(device.to_json()), campaign_id, f"{device.dev_eui:016X}"))

    def log(self, campaign_id: int, at: float, kind: str, detail: dict[str, Any], dev_eui: int | None = None) -> None:
        with self._db:
            self._db.execute("INSERT INTO events (campaign_id, at, dev_eui, kind, detail) VALUES (?, ?, ?, ?, ?)",
                             (campaign_id, at, None if dev_eui is None else f"{dev_eui:016X}", kind,
                              json.dumps(detail)))

    def events(self, campaign_id: int, kind: str | None = None) -> list[Event]:
        query = "SELECT * FROM events WHERE campaign_id = ?" + (" AND kind = ?" if kind else "") + " ORDER BY id"
        rows = self._db.execute(query, (campaign_id, kind) if kind else (campaign_id,)).fetchall()
        return [Event(row["at"], None if row["dev_eui"] is None else int(row["dev_eui"], 16), row["kind"],
                      json.loads(row["detail"])) for row in rows]

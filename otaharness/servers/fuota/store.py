"""SQLite persistence of campaigns, per-device state and the event log (stages, fragments,
requests, answers, rejected input), so that a restarted server resumes where it was."""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .campaign import CampaignConfig, CampaignState, CorruptCampaign, DeviceState, Stage, UnknownCampaign

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


# what the server logs (``CampaignRun.log``); GET /campaigns/{id}/events?kind= takes these
EVENT_KINDS = ("stage", "fragment", "request", "answer", "rejected", "note", "started", "round", "stop",
               "cleanup", "stopped", "finished", "resumed", "delete")


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

    def exists(self, campaign_id: int) -> bool:
        return self._db.execute("SELECT 1 FROM campaigns WHERE id = ?", (campaign_id,)).fetchone() is not None

    def get(self, campaign_id: int) -> CampaignRecord:
        """The campaign; :class:`UnknownCampaign` if there is none, :class:`CorruptCampaign` if its
        row cannot be read back (the row stays: ``delete`` removes it)."""
        row = self._db.execute("SELECT * FROM campaigns WHERE id = ?", (campaign_id,)).fetchone()
        if row is None:
            raise UnknownCampaign(f"no campaign {campaign_id}")
        try:
            progress = _progress(json.loads(row["progress"]))
            if not isinstance(row["image"], bytes):
                raise TypeError("the image is not a BLOB")
            if not isinstance(row["created_at"], (int, float)):
                raise TypeError("created_at is not a number")
            return CampaignRecord(row["id"], CampaignConfig.from_json(json.loads(row["config"])), row["image"],
                                  CampaignState(row["state"]), progress, float(row["created_at"]))
        except (TypeError, ValueError, KeyError) as error:  # CampaignError from from_json is a ValueError
            raise CorruptCampaign(f"stored campaign {campaign_id} cannot be read: {error}") from None

    def ids(self, *states: CampaignState) -> list[int]:
        """Every campaign's id, or those in ``states`` (a row whose state is unreadable is in none)."""
        rows = self._db.execute("SELECT id, state FROM campaigns ORDER BY id").fetchall()
        wanted = {state.value for state in states}
        return [row["id"] for row in rows if not states or row["state"] in wanted]

    def delete(self, campaign_id: int) -> None:
        """Remove the campaign, its devices and its event log (ids are never reused)."""
        with self._db:
            for table, column in (("events", "campaign_id"), ("devices", "campaign_id"), ("campaigns", "id")):
                self._db.execute(f"DELETE FROM {table} WHERE {column} = ?", (campaign_id,))

    def save(self, campaign_id: int, state: CampaignState, progress: dict[str, Any]) -> None:
        with self._db:
            self._db.execute("UPDATE campaigns SET state = ?, progress = ? WHERE id = ?",
                             (state.value, json.dumps(progress), campaign_id))

    def devices(self, campaign_id: int) -> list[DeviceState]:
        rows = self._db.execute("SELECT state FROM devices WHERE campaign_id = ? ORDER BY dev_eui",
                                (campaign_id,)).fetchall()
        try:
            return [DeviceState.from_json(json.loads(row["state"])) for row in rows]
        except (TypeError, ValueError, KeyError, AttributeError) as error:
            raise CorruptCampaign(f"stored devices of campaign {campaign_id} cannot be read: {error!r}") from None

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
        try:
            return [Event(float(row["at"]), None if row["dev_eui"] is None else int(row["dev_eui"], 16),
                          str(row["kind"]), _detail(json.loads(row["detail"]))) for row in rows]
        except (TypeError, ValueError) as error:
            raise CorruptCampaign(f"stored events of campaign {campaign_id} cannot be read: {error!r}") from None


def _progress(value: Any) -> dict[str, Any]:
    """A stored progress record, with the fields the status shows in range."""
    if not isinstance(value, dict):
        raise TypeError(f"progress is {type(value).__name__}, not an object")
    Stage(value.get("stage", Stage.MC_GROUP_SETUP))
    for key, low in (("round", 1), ("next_fragment", 0)):
        number = value.get(key, low)
        if not isinstance(number, int) or isinstance(number, bool) or number < low:
            raise ValueError(f"progress {key} {number!r} is not an integer >= {low}")
    return value


def _detail(value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise TypeError(f"event detail is {type(value).__name__}, not an object")
    return value

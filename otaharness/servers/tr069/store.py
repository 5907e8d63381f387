"""The ACS's state in SQLite: devices, groups, files, tasks, transfers, batches.

Every change is committed at once, so a restarted ACS (same ``state_dir``) continues where the
old one stopped: pending tasks, batch queues, the 30-minute checks (re-armed from ``check_due``).
File contents live beside the database, one file per upload, so the file server can answer
Range requests from disk.

A file's name is checked (names.py: no dot segments, separators or control characters, at most
255 UTF-8 bytes) before it becomes a path: ``files/<percent-encoded name>.file`` (a long
encoding is replaced by ``%sha256-<hash of the name>``). Every stored file ends in ``.file``, so
no stored file is the ``.gz``/``.br`` sibling the HTTP file response would serve instead of
another (aiohttp's FileResponse looks for those), and uploads are written to a temporary file
in ``files/`` (``%upload-*.tmp``: a name no percent-encoding produces) and renamed into place.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import quote

from .names import check_file_name, file_name_problem

SCHEMA = """
CREATE TABLE IF NOT EXISTS devices (
    id TEXT PRIMARY KEY, oui TEXT, product_class TEXT, serial_number TEXT, manufacturer TEXT,
    software_version TEXT, connection_request_url TEXT, parameters TEXT NOT NULL DEFAULT '{}',
    last_inform REAL, last_events TEXT NOT NULL DEFAULT '[]', registered REAL);
CREATE TABLE IF NOT EXISTS groups (
    name TEXT PRIMARY KEY, oui TEXT NOT NULL DEFAULT '', product_class TEXT NOT NULL DEFAULT '');
CREATE TABLE IF NOT EXISTS group_members (
    group_name TEXT, device_id TEXT, PRIMARY KEY (group_name, device_id));
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY, device_id TEXT, time REAL, kind TEXT, detail TEXT);
CREATE TABLE IF NOT EXISTS files (
    name TEXT PRIMARY KEY, file_type TEXT, oui TEXT, product_class TEXT, version TEXT,
    size INTEGER, md5 TEXT, uploaded REAL);
CREATE TABLE IF NOT EXISTS tasks (
    id INTEGER PRIMARY KEY, device_id TEXT, kind TEXT, args TEXT, state TEXT, created REAL,
    command_key TEXT, batch_id INTEGER, result TEXT, attempts INTEGER NOT NULL DEFAULT 0);
CREATE TABLE IF NOT EXISTS batches (
    id INTEGER PRIMARY KEY, group_name TEXT, original_version TEXT, file TEXT,
    new_version TEXT, days TEXT, hours TEXT, event TEXT, max_attempts INTEGER,
    max_devices_per_day INTEGER, timezone TEXT, created REAL);
CREATE TABLE IF NOT EXISTS batch_devices (
    batch_id INTEGER, device_id TEXT, state TEXT, attempts INTEGER NOT NULL DEFAULT 0,
    command_key TEXT, forced INTEGER NOT NULL DEFAULT 0, download_sent REAL,
    transfer_complete REAL, check_due REAL, last_fault TEXT, updated REAL,
    PRIMARY KEY (batch_id, device_id));
CREATE TABLE IF NOT EXISTS batch_starts (
    batch_id INTEGER, device_id TEXT, started REAL);
-- What every Inform and session looks up by device, command key or batch: without these each
-- lookup scans the table, and a fleet's upgrade costs grow with the square of its size.
CREATE INDEX IF NOT EXISTS tasks_by_device ON tasks (device_id, state);
CREATE INDEX IF NOT EXISTS tasks_by_command_key ON tasks (command_key);
CREATE INDEX IF NOT EXISTS events_by_device ON events (device_id);
CREATE INDEX IF NOT EXISTS batch_devices_by_device ON batch_devices (device_id);
CREATE INDEX IF NOT EXISTS batch_starts_by_batch ON batch_starts (batch_id, started);
"""

LAYOUT_VERSION = 1  # PRAGMA user_version: 1 = stored files carry DISK_SUFFIX
DISK_SUFFIX = ".file"
TEMPORARY_PREFIX = "%upload-"  # "%u" is no percent-encoding: never a stored file's name
_MAX_ENCODED_NAME = 200  # longer percent-encodings are stored under a hash of the name

JSON_COLUMNS = {"parameters", "last_events", "args", "result", "detail", "days", "hours",
                "last_fault"}


def _row(row: sqlite3.Row | None) -> dict[str, Any] | None:
    if row is None:
        return None
    record = dict(row)
    for key in JSON_COLUMNS & record.keys():
        if record[key] is not None:
            record[key] = json.loads(record[key])
    return record


def _encode(value: Any, column: str) -> Any:
    return json.dumps(value) if column in JSON_COLUMNS and value is not None else value


class Store:
    def __init__(self, state_dir: Path) -> None:
        self.state_dir = Path(state_dir)
        self.files_dir = self.state_dir / "files"
        self.files_dir.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(self.state_dir / "acs.sqlite3", isolation_level=None)
        self.db.row_factory = sqlite3.Row
        # WAL + NORMAL: a crashed process loses nothing committed; only an OS crash may lose
        # the last commits, and thousands of small commits stay cheap.
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.executescript(SCHEMA)
        self._add_missing_columns()
        self._upgrade_file_layout()
        for leftover in self.files_dir.glob(f"{TEMPORARY_PREFIX}*"):  # an upload cut by a crash
            leftover.unlink(missing_ok=True)

    def _add_missing_columns(self) -> None:
        """Columns newer than a state directory's database (CREATE TABLE IF NOT EXISTS keeps
        an old table as it was)."""
        columns = {r["name"] for r in self._all("PRAGMA table_info(tasks)")}
        if "attempts" not in columns:  # tasks.attempts: how often the RPC was sent
            self.db.execute("ALTER TABLE tasks ADD COLUMN attempts INTEGER NOT NULL DEFAULT 0")

    def _upgrade_file_layout(self) -> None:
        """Rename files stored by older versions (``files/<percent-encoded name>``)."""
        if self.db.execute("PRAGMA user_version").fetchone()[0] >= LAYOUT_VERSION:
            return
        names = [r["name"] for r in self._all("SELECT name FROM files")]
        # Longest first: an old name may equal another file's new name (``a.file`` vs ``a``).
        for name in sorted(names, key=lambda n: len(quote(n, safe="")), reverse=True):
            legacy = self.files_dir / quote(name, safe="")
            if file_name_problem(name) is None and legacy.is_file():
                legacy.replace(self.file_path(name))
        self.db.execute(f"PRAGMA user_version={LAYOUT_VERSION}")

    def close(self) -> None:
        self.db.close()

    @contextmanager
    def transaction(self) -> Iterator[None]:
        self.db.execute("BEGIN")
        try:
            yield
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")

    # -- generic helpers -------------------------------------------------------------------
    def _one(self, sql: str, *args: Any) -> dict[str, Any] | None:
        return _row(self.db.execute(sql, args).fetchone())

    def _all(self, sql: str, *args: Any) -> list[dict[str, Any]]:
        return [_row(r) for r in self.db.execute(sql, args).fetchall()]  # type: ignore[misc]

    def _select(self, table: str, order: str, **equal: Any) -> list[dict[str, Any]]:
        """Rows whose columns equal the given values (None = any)."""
        wanted = {column: value for column, value in equal.items() if value is not None}
        where = " AND ".join(f"{column}=?" for column in wanted) or "1=1"
        return self._all(f"SELECT * FROM {table} WHERE {where} ORDER BY {order}", *wanted.values())

    def _upsert(self, table: str, key: dict[str, Any], values: dict[str, Any]) -> None:
        columns = {**key, **values}
        names = ", ".join(columns)
        marks = ", ".join("?" for _ in columns)
        updates = ", ".join(f"{c}=excluded.{c}" for c in values) or None
        conflict = f"ON CONFLICT ({', '.join(key)}) DO " + (f"UPDATE SET {updates}" if updates
                                                              else "NOTHING")
        self.db.execute(f"INSERT INTO {table} ({names}) VALUES ({marks}) {conflict}",
                        [_encode(v, c) for c, v in columns.items()])

    def _update(self, table: str, where: dict[str, Any], values: dict[str, Any]) -> None:
        sets = ", ".join(f"{c}=?" for c in values)
        conditions = " AND ".join(f"{c}=?" for c in where)
        self.db.execute(f"UPDATE {table} SET {sets} WHERE {conditions}",
                        [*(_encode(v, c) for c, v in values.items()), *where.values()])

    # -- devices -----------------------------------------------------------------------------
    def device(self, device_id: str) -> dict[str, Any] | None:
        return self._one("SELECT * FROM devices WHERE id=?", device_id)

    def devices(self) -> list[dict[str, Any]]:
        return self._all("SELECT * FROM devices ORDER BY id")

    def save_device(self, device_id: str, **values: Any) -> None:
        self._upsert("devices", {"id": device_id}, values)

    def add_event(self, device_id: str, time: float, kind: str, **detail: Any) -> None:
        self.db.execute("INSERT INTO events (device_id, time, kind, detail) VALUES (?,?,?,?)",
                        (device_id, time, kind, json.dumps(detail)))

    def events(self, device_id: str) -> list[dict[str, Any]]:
        return self._all("SELECT time, kind, detail FROM events WHERE device_id=? ORDER BY id",
                         device_id)

    # -- groups ------------------------------------------------------------------------------
    def save_group(self, name: str, oui: str = "", product_class: str = "",
                   devices: Iterable[str] = ()) -> None:
        self._upsert("groups", {"name": name}, {"oui": oui, "product_class": product_class})
        for device_id in devices:
            self._upsert("group_members", {"group_name": name, "device_id": device_id}, {})

    def group(self, name: str) -> dict[str, Any] | None:
        group = self._one("SELECT * FROM groups WHERE name=?", name)
        if group is not None:
            group["devices"] = self.group_devices(name)
        return group

    def groups(self) -> list[dict[str, Any]]:
        return [self.group(g["name"]) for g in self._all("SELECT name FROM groups ORDER BY name")]  # type: ignore[misc]

    def delete_group(self, name: str) -> None:
        self.db.execute("DELETE FROM groups WHERE name=?", (name,))
        self.db.execute("DELETE FROM group_members WHERE group_name=?", (name,))

    def group_devices(self, name: str) -> list[str]:
        """Members: devices added by hand plus devices matching the group's OUI/ProductClass."""
        group = self._one("SELECT * FROM groups WHERE name=?", name)
        if group is None:
            return []
        members = {r["device_id"] for r in self._all(
            "SELECT device_id FROM group_members WHERE group_name=?", name)}
        if group["oui"] or group["product_class"]:
            members.update(row[0] for row in self.db.execute(
                "SELECT id FROM devices WHERE (?1 = '' OR oui = ?1) AND (?2 = '' OR product_class = ?2)",
                (group["oui"], group["product_class"])))
        return sorted(members)

    def groups_of(self, device_id: str) -> list[str]:
        return [g["name"] for g in self._all("SELECT name FROM groups")
                if device_id in self.group_devices(g["name"])]

    # -- files -------------------------------------------------------------------------------
    def file_path(self, name: str) -> Path:
        """Where file ``name`` is stored: always directly in ``files/`` (raises
        :class:`~.names.InvalidName` for a name that could be anything else)."""
        check_file_name(name)
        encoded = quote(name, safe="")
        if len(encoded) > _MAX_ENCODED_NAME:
            encoded = "%sha256-" + hashlib.sha256(name.encode("utf-8")).hexdigest()
        path = self.files_dir / (encoded + DISK_SUFFIX)
        if path.parent != self.files_dir:  # unreachable while check_file_name holds
            raise AssertionError(f"file name {name!r} escapes the file store")
        return path

    def save_file(self, name: str, content: bytes, **metadata: Any) -> None:
        path = self.file_path(name)
        descriptor, temporary = tempfile.mkstemp(dir=self.files_dir, prefix=TEMPORARY_PREFIX,
                                                 suffix=".tmp")
        try:
            with os.fdopen(descriptor, "wb") as stream:
                stream.write(content)
            os.replace(temporary, path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
        self._upsert("files", {"name": name}, {**metadata, "size": len(content),
                                                "md5": hashlib.md5(content).hexdigest()})

    def file(self, name: str) -> dict[str, Any] | None:
        return self._one("SELECT * FROM files WHERE name=?", name)

    def files(self) -> list[dict[str, Any]]:
        return self._all("SELECT * FROM files ORDER BY name")

    def delete_file(self, name: str) -> bool:
        if file_name_problem(name) is None:  # a record from an older version may hold any name
            self.file_path(name).unlink(missing_ok=True)
        return self.db.execute("DELETE FROM files WHERE name=?", (name,)).rowcount > 0

    # -- tasks and transfers -----------------------------------------------------------------
    def add_task(self, device_id: str, kind: str, args: dict[str, Any], now: float,
                 batch_id: int | None = None) -> int:
        cursor = self.db.execute(
            "INSERT INTO tasks (device_id, kind, args, state, created, batch_id) "
            "VALUES (?,?,?,?,?,?)", (device_id, kind, json.dumps(args), "pending", now, batch_id))
        return int(cursor.lastrowid)  # type: ignore[arg-type]

    def task(self, task_id: int) -> dict[str, Any] | None:
        return self._one("SELECT * FROM tasks WHERE id=?", task_id)

    def task_by_key(self, command_key: str) -> dict[str, Any] | None:
        return self._one("SELECT * FROM tasks WHERE command_key=?", command_key)

    def tasks(self, device_id: str | None = None, state: str | None = None) -> list[dict[str, Any]]:
        return self._select("tasks", "id", device_id=device_id, state=state)

    def update_task(self, task_id: int, **values: Any) -> None:
        self._update("tasks", {"id": task_id}, values)

    # -- batches -----------------------------------------------------------------------------
    def add_batch(self, **values: Any) -> int:
        names = ", ".join(values)
        cursor = self.db.execute(
            f"INSERT INTO batches ({names}) VALUES ({', '.join('?' for _ in values)})",
            [_encode(v, c) for c, v in values.items()])
        return int(cursor.lastrowid)  # type: ignore[arg-type]

    def batch(self, batch_id: int) -> dict[str, Any] | None:
        return self._one("SELECT * FROM batches WHERE id=?", batch_id)

    def batches(self) -> list[dict[str, Any]]:
        return self._all("SELECT * FROM batches ORDER BY id")

    def update_batch(self, batch_id: int, **values: Any) -> None:
        self._update("batches", {"id": batch_id}, values)

    def delete_batch(self, batch_id: int) -> None:
        for table, column in (("batches", "id"), ("batch_devices", "batch_id"),
                              ("batch_starts", "batch_id")):
            self.db.execute(f"DELETE FROM {table} WHERE {column}=?", (batch_id,))

    def batch_device(self, batch_id: int, device_id: str) -> dict[str, Any] | None:
        return self._one("SELECT * FROM batch_devices WHERE batch_id=? AND device_id=?",
                         batch_id, device_id)

    def batch_devices(self, batch_id: int | None = None,
                      device_id: str | None = None) -> list[dict[str, Any]]:
        return self._select("batch_devices", "batch_id, device_id", batch_id=batch_id,
                            device_id=device_id)

    def add_batch_device(self, batch_id: int, device_id: str, now: float) -> None:
        self._upsert("batch_devices", {"batch_id": batch_id, "device_id": device_id},
                     {"state": "queued", "updated": now})

    def update_batch_device(self, batch_id: int, device_id: str, **values: Any) -> None:
        self._update("batch_devices", {"batch_id": batch_id, "device_id": device_id}, values)

    def record_start(self, batch_id: int, device_id: str, now: float) -> None:
        self.db.execute("INSERT INTO batch_starts VALUES (?,?,?)", (batch_id, device_id, now))

    def devices_started_between(self, batch_id: int, start: float, end: float) -> set[str]:
        rows = self._all("SELECT DISTINCT device_id FROM batch_starts "
                         "WHERE batch_id=? AND started>=? AND started<?", batch_id, start, end)
        return {r["device_id"] for r in rows}

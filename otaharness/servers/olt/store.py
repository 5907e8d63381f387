"""SQLite persistence of the OLT back end (stdlib sqlite3, one file, nothing kept only in RAM).

Resources are JSON documents in a ``doc`` column beside the columns queries filter on. Every
change is one transaction (``with self.db:``), so a request that fails half-way stores nothing and
a restart on the same file sees exactly what was acknowledged.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

SCHEMA = """
CREATE TABLE IF NOT EXISTS tenants (id TEXT PRIMARY KEY, name TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS clients (
    client_id TEXT PRIMARY KEY, secret_sha256 TEXT NOT NULL,
    tenant_id TEXT NOT NULL, device_id TEXT);
CREATE TABLE IF NOT EXISTS tokens (
    token_sha256 TEXT PRIMARY KEY, tenant_id TEXT NOT NULL, device_id TEXT,
    expires_at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS firmwares (
    id TEXT PRIMARY KEY, tenant_id TEXT NOT NULL, seq INTEGER NOT NULL, doc TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS blobs (firmware_id TEXT PRIMARY KEY, data BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS device_types (
    id TEXT PRIMARY KEY, tenant_id TEXT NOT NULL, seq INTEGER NOT NULL, doc TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS devices (
    id TEXT PRIMARY KEY, tenant_id TEXT NOT NULL, seq INTEGER NOT NULL,
    gateway_id TEXT, doc TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS installations (
    id TEXT PRIMARY KEY, tenant_id TEXT NOT NULL, seq INTEGER NOT NULL, device_id TEXT NOT NULL,
    firmware_id TEXT NOT NULL, slot TEXT NOT NULL, status TEXT NOT NULL, doc TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS actions (
    id TEXT PRIMARY KEY, tenant_id TEXT NOT NULL, seq INTEGER NOT NULL, device_id TEXT NOT NULL,
    doc TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS events (
    id TEXT PRIMARY KEY, tenant_id TEXT NOT NULL, seq INTEGER NOT NULL, device_id TEXT NOT NULL,
    doc TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS timeseries (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, device_id TEXT NOT NULL, path TEXT NOT NULL,
    time REAL NOT NULL, value TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS tokens_by_expiry ON tokens (expires_at);
CREATE INDEX IF NOT EXISTS tokens_by_principal ON tokens (tenant_id, device_id, expires_at);
CREATE INDEX IF NOT EXISTS installations_by_device ON installations (device_id, status);
CREATE INDEX IF NOT EXISTS timeseries_by_path ON timeseries (device_id, path, time);
"""

# Tables holding tenant-owned JSON documents, listed in creation order (seq).
DOCUMENT_TABLES = ("firmwares", "device_types", "devices", "installations", "actions", "events")


class Store:
    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        self.db = sqlite3.connect(self.path, isolation_level=None)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=FULL")
        self.db.executescript(SCHEMA)
        self.db.isolation_level = "DEFERRED"  # `with self.db:` is one transaction

    def close(self) -> None:
        self.db.close()

    # -- documents -----------------------------------------------------------------------------
    def insert(self, table: str, doc: dict[str, Any], tenant_id: str, **columns: Any) -> None:
        assert table in DOCUMENT_TABLES
        names = ["id", "tenant_id", "seq", "doc", *columns]
        seq = self.db.execute(f"SELECT COALESCE(MAX(seq), 0) + 1 FROM {table}").fetchone()[0]
        values = [doc["id"], tenant_id, seq, json.dumps(doc), *columns.values()]
        self.db.execute(f"INSERT INTO {table} ({', '.join(names)}) VALUES "
                        f"({', '.join('?' * len(names))})", values)

    def update(self, table: str, doc: dict[str, Any], **columns: Any) -> None:
        assignments = ", ".join(["doc = ?", *(f"{name} = ?" for name in columns)])
        self.db.execute(f"UPDATE {table} SET {assignments} WHERE id = ?",
                        [json.dumps(doc), *columns.values(), doc["id"]])

    def delete(self, table: str, doc_id: str) -> None:
        self.db.execute(f"DELETE FROM {table} WHERE id = ?", (doc_id,))

    def get(self, table: str, doc_id: str, tenant_id: str) -> dict[str, Any] | None:
        row = self.db.execute(f"SELECT doc FROM {table} WHERE id = ? AND tenant_id = ?",
                              (doc_id, tenant_id)).fetchone()
        return json.loads(row[0]) if row else None

    def page(self, table: str, tenant_id: str, page: int, page_size: int,
             **equal: Any) -> tuple[list[dict[str, Any]], int]:
        """One page of a tenant's documents (oldest first) and the total count."""
        where = " AND ".join(["tenant_id = ?", *(f"{name} = ?" for name in equal)])
        params = [tenant_id, *equal.values()]
        total = self.db.execute(f"SELECT COUNT(*) FROM {table} WHERE {where}", params).fetchone()[0]
        rows = self.db.execute(f"SELECT doc FROM {table} WHERE {where} ORDER BY seq LIMIT ? OFFSET ?",
                               [*params, page_size, page * page_size]).fetchall()
        return [json.loads(row[0]) for row in rows], total

    def select(self, table: str, where: str, params: tuple[Any, ...] = ()) -> list[dict[str, Any]]:
        rows = self.db.execute(f"SELECT doc FROM {table} WHERE {where} ORDER BY seq", params)
        return [json.loads(row[0]) for row in rows.fetchall()]

    # -- blobs -----------------------------------------------------------------------------------
    def put_blob(self, firmware_id: str, data: bytes) -> None:
        self.db.execute("INSERT INTO blobs (firmware_id, data) VALUES (?, ?)", (firmware_id, data))

    def read_blob(self, firmware_id: str, start: int, stop: int) -> bytes:
        rowid = self.db.execute("SELECT rowid FROM blobs WHERE firmware_id = ?",
                                (firmware_id,)).fetchone()[0]
        with self.db.blobopen("blobs", "data", rowid, readonly=True) as blob:
            blob.seek(start)
            return blob.read(stop - start)

    def delete_blob(self, firmware_id: str) -> None:
        self.db.execute("DELETE FROM blobs WHERE firmware_id = ?", (firmware_id,))

    # -- credentials -------------------------------------------------------------------------
    def add_tenant(self, tenant_id: str, name: str) -> None:
        self.db.execute("INSERT INTO tenants (id, name) VALUES (?, ?)", (tenant_id, name))

    def add_client(self, client_id: str, secret_sha256: str, tenant_id: str,
                   device_id: str | None) -> None:
        self.db.execute("INSERT INTO clients VALUES (?, ?, ?, ?)",
                        (client_id, secret_sha256, tenant_id, device_id))

    def client(self, client_id: str) -> tuple[str, str, str | None] | None:
        row: tuple[str, str, str | None] | None = self.db.execute(
            "SELECT secret_sha256, tenant_id, device_id FROM clients WHERE client_id = ?",
            (client_id,)).fetchone()
        return row

    def add_token(self, token_sha256: str, tenant_id: str, device_id: str | None,
                  expires_at: float) -> None:
        self.db.execute("INSERT INTO tokens VALUES (?, ?, ?, ?)",
                        (token_sha256, tenant_id, device_id, expires_at))

    def keep_newest_tokens(self, tenant_id: str, device_id: str | None, count: int) -> int:
        """Forget a principal's tokens but its ``count`` newest (by expiry, then by grant);
        how many went."""
        return self.db.execute(
            "DELETE FROM tokens WHERE token_sha256 IN (SELECT token_sha256 FROM tokens"
            " WHERE tenant_id = ? AND device_id IS ? ORDER BY expires_at DESC, rowid DESC LIMIT -1 OFFSET ?)",
            (tenant_id, device_id, count)).rowcount

    def forget_tokens_expired_before(self, moment: float) -> None:
        self.db.execute("DELETE FROM tokens WHERE expires_at < ?", (moment,))

    def token(self, token_sha256: str) -> tuple[str, str | None, float] | None:
        row: tuple[str, str | None, float] | None = self.db.execute(
            "SELECT tenant_id, device_id, expires_at FROM tokens WHERE token_sha256 = ?",
            (token_sha256,)).fetchone()
        return row

    # -- time series -------------------------------------------------------------------------
    def add_point(self, device_id: str, path: str, time: float, value: Any) -> None:
        self.db.execute("INSERT INTO timeseries (device_id, path, time, value) VALUES (?, ?, ?, ?)",
                        (device_id, path, time, json.dumps(value)))

    def points(self, device_id: str, path: str, start: float, end: float, page: int,
               page_size: int) -> tuple[Iterator[tuple[float, Any]], int]:
        where = "device_id = ? AND path = ? AND time >= ? AND time <= ?"
        params = (device_id, path, start, end)
        total = self.db.execute(f"SELECT COUNT(*) FROM timeseries WHERE {where}", params).fetchone()[0]
        rows = self.db.execute(f"SELECT time, value FROM timeseries WHERE {where} ORDER BY time, seq "
                               "LIMIT ? OFFSET ?", (*params, page_size, page * page_size)).fetchall()
        return ((time, json.loads(value)) for time, value in rows), total

"""Device registry of the network server (SQLite): devices, sessions, counters, DevNonces,
multicast groups and the unicast downlink queue.

Every state change is committed before the call returns, so a restart (a new
:class:`DeviceRegistry` on the same file) loses nothing -- but for :meth:`DeviceRegistry.update_deferred`,
the frame counters of uplinks that have caused nothing outside the server yet: their commit waits
for the next one (any other write, :meth:`DeviceRegistry.commit`, at most DEFERRED_UPDATES_KEPT of
them), and the server commits before anything an uplink caused leaves it, so a crash forgets only
uplinks nobody outside heard of (a replay of one is accepted as the first time it was heard). EUIs are stored as 16-digit hex text
(SQLite integers are signed 64-bit); DevAddr, counters and nonces as integers; keys as blobs.
sqlite3 calls run on the event loop: a local file, a few rows, microseconds per call.

Devices are read on every uplink (by DevAddr, then by DevEUI) and only this registry writes its
file, so it keeps them in memory too, written through: a read is a dict lookup of the immutable
:class:`Device` last written, and every change is written to SQLite before the memory copy
changes (a failed write leaves both as they were).
"""

from __future__ import annotations

import collections
import sqlite3
from dataclasses import dataclass, replace
from enum import Enum
from pathlib import Path
from typing import Any

from otaharness.protocols.lorawan import EU868, SessionKeys

NWK_ADDR_BITS = 25  # NetID type 0: DevAddr = NwkID(7) | NwkAddr(25) (LoRaWAN Backend Interfaces §13)
NWK_ID_BITS = 7
# Frame-counter updates of uplinks that caused nothing outside the server, written but not
# committed yet: a commit per uplink was a fifth of the server's time in a 1,000-device campaign
# (issue #18), one per this many costs a fraction of it
DEFERRED_UPDATES_KEPT = 64


class RegistryError(ValueError):
    """A registry request that cannot be carried out (unknown device, duplicate, bad value)."""


class UnknownDevice(RegistryError):
    pass


class DeviceClassName(str, Enum):
    A = "A"
    C = "C"


@dataclass(frozen=True)
class Device:
    """One end device and its current session.

    OTAA devices have ``join_eui``/``app_key`` and get a session at each join; ABP devices are
    created with ``dev_addr`` and session keys. ``fcnt_up`` is the last accepted 32-bit uplink
    counter (None: none since the session began); ``nfcnt_down`` the next downlink counter.
    """

    dev_eui: int
    device_class: DeviceClassName = DeviceClassName.A
    join_eui: int | None = None
    app_key: bytes | None = None
    dev_addr: int | None = None
    nwk_s_key: bytes | None = None
    app_s_key: bytes | None = None
    fcnt_up: int | None = None
    nfcnt_down: int = 0
    rx1_dr_offset: int = 0
    rx1_delay: int = EU868.receive_delay1_s
    rx2_data_rate: int = EU868.rx2_data_rate
    rx2_frequency: int = EU868.rx2_frequency_hz
    battery: int | None = None  # last DevStatusAns
    margin: int | None = None
    last_gateway: int | None = None  # the best gateway of the last uplink (class C downlinks go there)

    @property
    def is_otaa(self) -> bool:
        return self.app_key is not None

    @property
    def session_keys(self) -> SessionKeys | None:
        if self.nwk_s_key is None or self.app_s_key is None:
            return None
        return SessionKeys(nwk_s_key=self.nwk_s_key, app_s_key=self.app_s_key)

    @property
    def activated(self) -> bool:
        return self.dev_addr is not None and self.session_keys is not None


@dataclass(frozen=True)
class MulticastGroup:
    """A class C multicast group: McAddr, its session keys, the radio parameters of its
    session, and ``fcnt``, the next multicast downlink counter (McFCount)."""

    name: str
    mc_addr: int
    mc_nwk_s_key: bytes
    mc_app_s_key: bytes
    frequency: int
    data_rate: int
    fcnt: int = 0

    @property
    def session_keys(self) -> SessionKeys:
        return SessionKeys(nwk_s_key=self.mc_nwk_s_key, app_s_key=self.mc_app_s_key)


@dataclass(frozen=True)
class QueuedDownlink:
    """An application downlink waiting for a transmission; ``in_flight_diid`` is the ``diid`` of
    the ``dnmsg`` carrying it until its ``dntxed`` (or a timeout) settles it."""

    queue_id: int
    dev_eui: int
    fport: int
    payload: bytes
    confirmed: bool
    in_flight_diid: int | None = None


_SCHEMA = """
CREATE TABLE IF NOT EXISTS settings (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS devices (
    dev_eui TEXT PRIMARY KEY, device_class TEXT NOT NULL, join_eui TEXT, app_key BLOB,
    dev_addr INTEGER, nwk_s_key BLOB, app_s_key BLOB, fcnt_up INTEGER, nfcnt_down INTEGER NOT NULL,
    rx1_dr_offset INTEGER NOT NULL, rx1_delay INTEGER NOT NULL, rx2_data_rate INTEGER NOT NULL,
    rx2_frequency INTEGER NOT NULL, battery INTEGER, margin INTEGER, last_gateway TEXT);
CREATE INDEX IF NOT EXISTS devices_by_addr ON devices (dev_addr);
CREATE TABLE IF NOT EXISTS dev_nonces (
    dev_eui TEXT NOT NULL, dev_nonce INTEGER NOT NULL, PRIMARY KEY (dev_eui, dev_nonce));
CREATE TABLE IF NOT EXISTS multicast_groups (
    name TEXT PRIMARY KEY, mc_addr INTEGER NOT NULL, mc_nwk_s_key BLOB NOT NULL, mc_app_s_key BLOB NOT NULL,
    frequency INTEGER NOT NULL, data_rate INTEGER NOT NULL, fcnt INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS downlink_queue (
    queue_id INTEGER PRIMARY KEY AUTOINCREMENT, dev_eui TEXT NOT NULL, fport INTEGER NOT NULL,
    payload BLOB NOT NULL, confirmed INTEGER NOT NULL, in_flight_diid INTEGER);
"""

_EUI_COLUMNS = ("dev_eui", "join_eui", "last_gateway")


def _eui_text(eui: int | None) -> str | None:
    return None if eui is None else f"{eui:016x}"


def _to_row(device: Device) -> dict[str, Any]:
    row = dict(device.__dict__)  # every field of the dataclass, nothing else (no slots, no caches)
    for column in _EUI_COLUMNS:
        row[column] = _eui_text(row[column])
    row["device_class"] = device.device_class.value
    return row


def _column_value(column: str, value: Any) -> Any:
    """One field as _to_row stores it."""
    if column in _EUI_COLUMNS:
        return _eui_text(value)
    if column == "device_class":
        return DeviceClassName(value).value
    return value


def _from_row(row: sqlite3.Row) -> Device:
    values = dict(row)
    for column in _EUI_COLUMNS:
        values[column] = None if values[column] is None else int(values[column], 16)
    values["device_class"] = DeviceClassName(values["device_class"])
    return Device(**values)


class DeviceRegistry:
    """The SQLite file behind one network server; NetID is fixed when the file is created."""

    def __init__(self, path: Path | str, net_id: int = 0) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(self.path)
        self._db.row_factory = sqlite3.Row
        # Every uplink commits (frame counters): in the default rollback journal each commit is a
        # disk sync, which was most of a FUOTA scenario's time. WAL with NORMAL sync loses nothing
        # when the process is killed, only on a power loss of the machine (as the other stores).
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        with self._transaction():
            self._db.executescript(_SCHEMA)
            self._db.execute("INSERT OR IGNORE INTO settings VALUES ('net_id', ?)", (net_id,))
            self._db.execute("INSERT OR IGNORE INTO settings VALUES ('next_nwk_addr', 1)")
            # A downlink that was in flight when the server stopped is waiting again.
            self._db.execute("UPDATE downlink_queue SET in_flight_diid = NULL")
        self._devices: dict[int, Device] = {}
        self._update_statements: dict[tuple[str, ...], str] = {}
        self._deferred = 0  # update_deferred calls since the last commit
        self._by_dev_addr: dict[int, dict[int, None]] = {}  # DevAddr -> DevEUIs holding it, in order
        for row in self._db.execute("SELECT * FROM devices ORDER BY rowid"):
            self._remember(_from_row(row))
        # queue_id -> DevEUI of every queued downlink: a device with none (most uplinks) is
        # answered without a query
        self._queued_for: dict[int, int] = {
            queue_id: int(dev_eui, 16)
            for queue_id, dev_eui in self._db.execute("SELECT queue_id, dev_eui FROM downlink_queue")}
        self._queued_count: collections.Counter[int] = collections.Counter(self._queued_for.values())

    def _remember(self, device: Device) -> None:
        previous = self._devices.get(device.dev_eui)
        if previous is not None and previous.dev_addr != device.dev_addr and previous.dev_addr is not None:
            holders = self._by_dev_addr[previous.dev_addr]
            del holders[device.dev_eui]
            if not holders:
                del self._by_dev_addr[previous.dev_addr]
        self._devices[device.dev_eui] = device
        if device.dev_addr is not None:
            self._by_dev_addr.setdefault(device.dev_addr, {})[device.dev_eui] = None

    def close(self) -> None:
        self.commit()  # closing rolls back what is not committed
        self._db.close()

    # -- network settings ------------------------------------------------------------------
    def _setting(self, name: str) -> int:
        return self._db.execute("SELECT value FROM settings WHERE name = ?", (name,)).fetchone()[0]

    @property
    def net_id(self) -> int:
        return self._setting("net_id")

    def allocate_dev_addr(self) -> int:
        """The next free DevAddr of NetID type 0: NwkID = the 7 LSBs of NetID, NwkAddr counted up."""
        nwk_id = self.net_id & ((1 << NWK_ID_BITS) - 1)
        with self._transaction():
            while True:
                nwk_addr = self._setting("next_nwk_addr")
                if nwk_addr >= 1 << NWK_ADDR_BITS:
                    raise RegistryError("DevAddr space of this NetID is exhausted")
                self._db.execute("UPDATE settings SET value = ? WHERE name = 'next_nwk_addr'", (nwk_addr + 1,))
                dev_addr = nwk_id << NWK_ADDR_BITS | nwk_addr
                if not self.devices_by_dev_addr(dev_addr):  # an ABP device may hold it already
                    return dev_addr

    # -- devices ---------------------------------------------------------------------------
    def add(self, device: Device) -> Device:
        if self.find(device.dev_eui) is not None:
            raise RegistryError(f"device {device.dev_eui:016X} exists already")
        row = _to_row(device)
        columns = ", ".join(row)
        with self._transaction():
            self._db.execute(f"INSERT INTO devices ({columns}) VALUES ({', '.join('?' * len(row))})",
                             tuple(row.values()))
        self._remember(device)
        return device

    def find(self, dev_eui: int) -> Device | None:
        return self._devices.get(dev_eui)

    def get(self, dev_eui: int) -> Device:
        device = self.find(dev_eui)
        if device is None:
            raise UnknownDevice(f"unknown device {dev_eui:016X}")
        return device

    def update(self, dev_eui: int, **changes: Any) -> Device:
        """Commit ``changes`` (only those columns) and return the device as it now is."""
        with self._transaction():
            return self._write(dev_eui, changes)

    def update_deferred(self, dev_eui: int, **changes: Any) -> Device:
        """:meth:`update` whose commit may wait (see the module's docstring): for an uplink's
        frame counter. The caller commits (:meth:`commit`) before anything the uplink caused
        leaves the server."""
        if not self._db.in_transaction:
            self._deferred = 0
        device = self._write(dev_eui, changes)
        self._deferred += 1
        if self._deferred >= DEFERRED_UPDATES_KEPT:
            self.commit()
        return device

    def commit(self) -> None:
        """Commit the deferred updates, if any."""
        if self._db.in_transaction:
            self._db.commit()

    def _transaction(self) -> sqlite3.Connection:
        """The connection as a transaction for one change: the deferred updates committed
        first, so that a failing change rolls back only itself."""
        self.commit()
        return self._db

    def _write(self, dev_eui: int, changes: dict[str, Any]) -> Device:
        """Write ``changes`` in the open transaction and to the memory copy. Called on every
        uplink (its frame counter): the statement text is kept per set of columns, and only
        the changed values are converted to their column form."""
        device = replace(self.get(dev_eui), **changes)  # checks the field names
        columns = tuple(changes)
        if columns:
            statement = self._update_statements.get(columns)
            if statement is None:
                assignments = ", ".join(f"{column} = ?" for column in columns)
                statement = self._update_statements[columns] = f"UPDATE devices SET {assignments} WHERE dev_eui = ?"
            values = [_column_value(column, value) for column, value in changes.items()]
            self._db.execute(statement, (*values, _eui_text(dev_eui)))
        self._remember(device)
        return device

    def devices_by_dev_addr(self, dev_addr: int) -> list[Device]:
        devices = self._devices
        return [devices[dev_eui] for dev_eui in self._by_dev_addr.get(dev_addr, ())]

    def all_devices(self) -> list[Device]:
        return [self._devices[dev_eui] for dev_eui in sorted(self._devices)]

    def take_downlink_fcnt(self, dev_eui: int) -> int:
        """NFCntDown for a new frame, counted up and committed before the frame exists (a counter
        is never used twice, even if the frame is then not sent)."""
        fcnt = self.get(dev_eui).nfcnt_down
        self.update(dev_eui, nfcnt_down=fcnt + 1)
        return fcnt

    # -- DevNonces -------------------------------------------------------------------------
    def dev_nonce_used(self, dev_eui: int, dev_nonce: int) -> bool:
        row = self._db.execute("SELECT 1 FROM dev_nonces WHERE dev_eui = ? AND dev_nonce = ?",
                               (_eui_text(dev_eui), dev_nonce)).fetchone()
        return row is not None

    def record_join(self, dev_eui: int, dev_nonce: int, **session: Any) -> Device:
        """Store the DevNonce and the new session in one transaction."""
        with self._transaction():
            self._db.execute("INSERT INTO dev_nonces VALUES (?, ?)", (_eui_text(dev_eui), dev_nonce))
        return self.update(dev_eui, **session)

    # -- multicast groups ------------------------------------------------------------------
    def add_group(self, group: MulticastGroup) -> MulticastGroup:
        if self.find_group(group.name) is not None:
            raise RegistryError(f"multicast group {group.name!r} exists already")
        with self._transaction():
            self._db.execute("INSERT INTO multicast_groups VALUES (?, ?, ?, ?, ?, ?, ?)",
                             (group.name, group.mc_addr, group.mc_nwk_s_key, group.mc_app_s_key, group.frequency,
                              group.data_rate, group.fcnt))
        return group

    def find_group(self, name: str) -> MulticastGroup | None:
        row = self._db.execute("SELECT * FROM multicast_groups WHERE name = ?", (name,)).fetchone()
        return None if row is None else MulticastGroup(**dict(row))

    def take_group_fcnt(self, name: str) -> int:
        group = self.find_group(name)
        if group is None:
            raise RegistryError(f"unknown multicast group {name!r}")
        with self._transaction():
            self._db.execute("UPDATE multicast_groups SET fcnt = ? WHERE name = ?", (group.fcnt + 1, name))
        return group.fcnt

    # -- downlink queue --------------------------------------------------------------------
    def enqueue(self, dev_eui: int, fport: int, payload: bytes, confirmed: bool) -> QueuedDownlink:
        self.get(dev_eui)
        with self._transaction():
            cursor = self._db.execute(
                "INSERT INTO downlink_queue (dev_eui, fport, payload, confirmed) VALUES (?, ?, ?, ?)",
                (_eui_text(dev_eui), fport, payload, int(confirmed)))
        queue_id = int(cursor.lastrowid or 0)
        self._queued_for[queue_id] = dev_eui
        self._queued_count[dev_eui] += 1
        return QueuedDownlink(queue_id, dev_eui, fport, payload, confirmed)

    def devices_with_queued_downlinks(self) -> list[int]:
        rows = self._db.execute("SELECT DISTINCT dev_eui FROM downlink_queue ORDER BY dev_eui").fetchall()
        return [int(row[0], 16) for row in rows]

    def queued(self, dev_eui: int, *, waiting_only: bool = True) -> list[QueuedDownlink]:
        if not self._queued_count[dev_eui]:
            return []
        condition = " AND in_flight_diid IS NULL" if waiting_only else ""
        rows = self._db.execute(f"SELECT * FROM downlink_queue WHERE dev_eui = ?{condition} ORDER BY queue_id",
                                (_eui_text(dev_eui),)).fetchall()
        return [QueuedDownlink(row["queue_id"], int(row["dev_eui"], 16), row["fport"], row["payload"],
                               bool(row["confirmed"]), row["in_flight_diid"]) for row in rows]

    def mark_in_flight(self, queue_id: int, diid: int | None) -> None:
        with self._transaction():
            self._db.execute("UPDATE downlink_queue SET in_flight_diid = ? WHERE queue_id = ?", (diid, queue_id))

    def remove_queued(self, queue_id: int) -> None:
        with self._transaction():
            self._db.execute("DELETE FROM downlink_queue WHERE queue_id = ?", (queue_id,))
        dev_eui = self._queued_for.pop(queue_id, None)
        if dev_eui is not None:
            self._queued_count[dev_eui] -= 1
            if not self._queued_count[dev_eui]:
                del self._queued_count[dev_eui]

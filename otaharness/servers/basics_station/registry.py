"""Station registry (SQLite) and firmware store: the state behind the CUPS server and the LNS.

One row per station holds what the Azure starter kit keeps in the concentrator's device twin
(fact sheet §9.1): the target ``cupsUri``/``tcUri``, the credential blobs with their CRCs, and the
desired firmware (``package``, ``fwUrl``, ``fwKeyChecksum``, ``fwSignature``); plus what the LNS
saw (``reported_package``, the twin's reported ``Package``), an LNS rejection reason, and why
CUPS last answered as it did. The firmware store is a directory of files named
``<StationEui>-<package>`` (never overwritten, as the Azure CLI's ``overwrite = false``).

sqlite3 calls run on the event loop: a local file, a few rows, microseconds per call.
"""

from __future__ import annotations

import base64
import dataclasses
import re
import sqlite3
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from otaharness.protocols.basics_station import format_eui


class RegistryError(ValueError):
    """A registry request that cannot be carried out (unknown station, bad name, conflict)."""


class UnknownStation(RegistryError):
    pass


class FirmwareExists(RegistryError):
    pass


@dataclass(frozen=True)
class StationRecord:
    """A station's twin. ``eui`` is the 64-bit station EUI; CRCs are ``zlib.crc32`` of the blobs."""

    eui: int
    cups_uri: str | None = None
    tc_uri: str | None = None
    cups_credentials: bytes = b""
    tc_credentials: bytes = b""
    package: str | None = None  # desired firmware package
    fw_url: str | None = None
    fw_key_checksum: int | None = None
    fw_signature: bytes = b""
    reported_package: str | None = None
    lns_reject_reason: str | None = None
    last_cups_decision: str | None = None

    @property
    def cups_cred_crc(self) -> int | None:
        return zlib.crc32(self.cups_credentials) if self.cups_credentials else None

    @property
    def tc_cred_crc(self) -> int | None:
        return zlib.crc32(self.tc_credentials) if self.tc_credentials else None

    def to_dict(self) -> dict[str, Any]:
        """Twin-like JSON view (blobs in base64) for the admin API."""
        return {
            "stationEui": format_eui(self.eui, ""),
            "cupsUri": self.cups_uri,
            "tcUri": self.tc_uri,
            "cupsCredCrc": self.cups_cred_crc,
            "tcCredCrc": self.tc_cred_crc,
            "cupsCredentials": _base64(self.cups_credentials),
            "tcCredentials": _base64(self.tc_credentials),
            "package": self.package,
            "fwUrl": self.fw_url,
            "fwKeyChecksum": self.fw_key_checksum,
            "fwSignature": _base64(self.fw_signature),
            "reportedPackage": self.reported_package,
            "lnsRejectReason": self.lns_reject_reason,
            "lastCupsDecision": self.last_cups_decision,
        }


def _base64(blob: bytes) -> str:
    return base64.b64encode(blob).decode("ascii")


_COLUMNS = [field.name for field in dataclasses.fields(StationRecord)]
_SCHEMA = """
CREATE TABLE IF NOT EXISTS stations (
    eui TEXT PRIMARY KEY,            -- 16 uppercase hex digits (64-bit EUIs overflow INTEGER)
    cups_uri TEXT, tc_uri TEXT,
    cups_credentials BLOB NOT NULL, tc_credentials BLOB NOT NULL,
    package TEXT, fw_url TEXT, fw_key_checksum INTEGER, fw_signature BLOB NOT NULL,
    reported_package TEXT, lns_reject_reason TEXT, last_cups_decision TEXT
);
CREATE TABLE IF NOT EXISTS station_tokens (
    digest TEXT PRIMARY KEY,         -- SHA-256 of a station's bearer token (the token is not kept)
    eui TEXT NOT NULL
)
"""


class StationRegistry:
    def __init__(self, path: Path | str) -> None:
        self._db = sqlite3.connect(str(path))
        # WAL + NORMAL: a commit survives a crash of this process without an fsync per CUPS request.
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)
        self._db.commit()

    def close(self) -> None:
        self._db.close()

    def get(self, eui: int) -> StationRecord:
        row = self._db.execute(
            f"SELECT {', '.join(_COLUMNS)} FROM stations WHERE eui = ?", (format_eui(eui, ""),)
        ).fetchone()
        if row is None:
            raise UnknownStation(f"unknown station {format_eui(eui)}")
        values = dict(zip(_COLUMNS, row))
        values["eui"] = eui
        return StationRecord(**values)

    def find(self, eui: int) -> StationRecord | None:
        try:
            return self.get(eui)
        except UnknownStation:
            return None

    def all(self) -> list[StationRecord]:
        rows = self._db.execute("SELECT eui FROM stations ORDER BY eui").fetchall()
        return [self.get(int(eui, 16)) for (eui,) in rows]

    def put(self, record: StationRecord) -> StationRecord:
        values = dataclasses.asdict(record)
        values["eui"] = format_eui(record.eui, "")
        self._db.execute(
            f"INSERT OR REPLACE INTO stations ({', '.join(_COLUMNS)}) "
            f"VALUES ({', '.join('?' for _ in _COLUMNS)})",
            [values[name] for name in _COLUMNS],
        )
        self._db.commit()
        return record

    def update(self, eui: int, **changes: Any) -> StationRecord:
        """Change some fields of an existing station."""
        return self.put(dataclasses.replace(self.get(eui), **changes))

    def add_token(self, eui: int, digest: str) -> None:
        """Accept a bearer token (by its SHA-256 digest) for station ``eui``."""
        self._db.execute("INSERT OR REPLACE INTO station_tokens (digest, eui) VALUES (?, ?)",
                         (digest, format_eui(eui, "")))
        self._db.commit()

    def token_owner(self, digest: str) -> int | None:
        row = self._db.execute("SELECT eui FROM station_tokens WHERE digest = ?", (digest,)).fetchone()
        return int(row[0], 16) if row else None


_FIRMWARE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")


class FirmwareStore:
    """Firmware files by name in one directory (the Azure firmware blob container)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)

    def _path(self, name: str) -> Path:
        return self.directory / self.check_name(name)

    @staticmethod
    def check_name(name: str) -> str:
        """``name`` if the store can hold a file of that name, else RegistryError."""
        if not _FIRMWARE_NAME.fullmatch(name) or ".." in name:
            raise RegistryError(f"bad firmware name {name[:140]!r}: letters, digits, '.', '_', '-' only")
        return name

    def add(self, name: str, content: bytes) -> None:
        path = self._path(name)
        try:
            with path.open("xb") as file:  # never overwrite, as the Azure CLI
                file.write(content)
        except FileExistsError as error:
            raise FirmwareExists(f"firmware {name!r} already exists") from error

    def read(self, name: str) -> bytes | None:
        path = self._path(name)
        return path.read_bytes() if path.is_file() else None

    def remove(self, name: str) -> bool:
        path = self._path(name)
        existed = path.is_file()
        path.unlink(missing_ok=True)
        return existed

"""The station's home directory: its non-volatile state (basicstation 2.0.6, ``src/sys.c``).

=============================  ==================================================================
file                           meaning
=============================  ==================================================================
``cups.uri``, ``tc.uri``       REG set URIs (trailing whitespace trimmed on read, as ``sys_uri``)
``cups-bak.*``, ``tc-bak.*``   BAK set: a copy of REG taken at the first successful contact
                               (a CUPS 200 with REG, a TC connection), once in the home's life:
                               ``cups-bak.done`` / ``tc-bak.done`` mark it done and are read at
                               every start (``checkRollForward``), so later starts never refresh it
``cups-boot.*``, ``tc-boot.*`` BOOT set: the factory fallback
``{cups,tc}{set}.trust|crt|key``  credentials (a missing or empty file counts as 4×00 in the CRC)
``{cups,tc}-temp.*``           a CUPS reply's parts before they are renamed over REG
``version.txt``                the installed package (re-read on every use)
``sig-0.key``, ``sig-1.key``…  64-byte firmware signature keys, read up to the first missing
``update.bi_`` → ``update.bin`` the downloaded update (the real station uses ``/tmp``; here the
                               sandbox, so that several stations share one host)
``station.restart``            written by an update program to ask for a restart (the real update
                               kills the station and its supervisor starts it again)
=============================  ==================================================================
"""

from __future__ import annotations

import enum
import shutil
from pathlib import Path

from otaharness.protocols.basics_station import Credentials, credential_crc

UPDATE_PARTIAL = "update.bi_"
UPDATE_FILE = "update.bin"
RESTART_REQUEST = "station.restart"
VERSION_FILE = "version.txt"
CREDENTIAL_EXTENSIONS = ("trust", "crt", "key")


class CredentialSet(enum.IntEnum):
    REG = 0
    BAK = 1
    BOOT = 2


_SET_SUFFIX = {CredentialSet.REG: "", CredentialSet.BAK: "-bak", CredentialSet.BOOT: "-boot"}
_TEMP_SUFFIX = "-temp"


class StationHome:
    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    def file(self, category: str, credential_set: CredentialSet | str, extension: str) -> Path:
        suffix = credential_set if isinstance(credential_set, str) else _SET_SUFFIX[credential_set]
        return self.path / f"{category}{suffix}.{extension}"

    def _read(self, path: Path) -> bytes | None:
        return path.read_bytes() if path.is_file() else None

    # -- what the station reads ---------------------------------------------------------------
    def uri(self, category: str, credential_set: CredentialSet = CredentialSet.REG) -> str | None:
        content = self._read(self.file(category, credential_set, "uri"))
        text = content.decode("ascii", "replace").rstrip() if content else ""
        return text or None

    def credential_crc(self, category: str, credential_set: CredentialSet = CredentialSet.REG) -> int:
        return credential_crc(*(self._read(self.file(category, credential_set, ext))
                                for ext in CREDENTIAL_EXTENSIONS))

    def credential_files(self, category: str, credential_set: CredentialSet = CredentialSet.REG) -> tuple[bytes, ...]:
        return tuple(self._read(self.file(category, credential_set, ext)) or b"" for ext in CREDENTIAL_EXTENSIONS)

    def version(self) -> str | None:
        content = self._read(self.path / VERSION_FILE)
        text = content.decode("utf-8", "replace").rstrip() if content is not None else None
        return text

    def sig_key_files(self) -> list[bytes]:
        """``sig-0.key``, ``sig-1.key``, … up to the first missing one."""
        keys: list[bytes] = []
        while (content := self._read(self.path / f"sig-{len(keys)}.key")) is not None:
            keys.append(content)
        return keys

    # -- what CUPS changes ------------------------------------------------------------------------
    def backup_done(self, category: str) -> bool:
        """The BAK set was taken (``{cat}-bak.done`` exists): ``backupConfigFiles`` does nothing."""
        return (self.path / f"{category}-bak.done").exists()

    def backup(self, category: str) -> None:
        """``backupConfigFiles``: replace the BAK set by a copy of REG, then mark it done."""
        done = self.path / f"{category}-bak.done"
        done.unlink(missing_ok=True)
        for extension in ("uri", *CREDENTIAL_EXTENSIONS):
            self.file(category, CredentialSet.BAK, extension).unlink(missing_ok=True)
            source = self.file(category, CredentialSet.REG, extension)
            if source.is_file():
                shutil.copyfile(source, self.file(category, CredentialSet.BAK, extension))
        done.write_bytes(b"")

    def commit(self, category: str, uri: str | None, credentials: Credentials | None) -> None:
        """Write the temp files of a CUPS reply, then rename them over REG (``updateConfigFiles``)."""
        written = []
        if uri is not None:
            written.append(("uri", uri.encode("ascii")))
        if credentials is not None:
            written += list(zip(CREDENTIAL_EXTENSIONS, credentials.stored_files()))
        for extension, content in written:
            self.file(category, _TEMP_SUFFIX, extension).write_bytes(content)
        for extension, _ in written:
            self.file(category, _TEMP_SUFFIX, extension).replace(self.file(category, CredentialSet.REG, extension))

    # -- provisioning (what a factory or an installer puts there) -----------------------------------
    def store_credentials(self, category: str, credentials: Credentials,
                          credential_set: CredentialSet = CredentialSet.REG) -> None:
        """Write a credential set's ``.trust``/``.crt``/``.key`` files (an absent part: empty)."""
        self.path.mkdir(parents=True, exist_ok=True)
        for extension, content in zip(CREDENTIAL_EXTENSIONS, credentials.stored_files()):
            path = self.file(category, credential_set, extension)
            path.touch(0o600)
            path.write_bytes(content)

    def provision(self, *, cups_uri: str | None = None, tc_uri: str | None = None, version: str | None = None,
                  sig_keys: tuple[bytes, ...] = (), boot_cups_uri: str | None = None) -> StationHome:
        self.path.mkdir(parents=True, exist_ok=True)
        for name, content in (("cups.uri", cups_uri), ("tc.uri", tc_uri), (VERSION_FILE, version),
                              ("cups-boot.uri", boot_cups_uri)):
            if content is not None:
                (self.path / name).write_text(content + "\n")
        for index, key in enumerate(sig_keys):
            (self.path / f"sig-{index}.key").write_bytes(key)
        return self

"""Basics Station CUPS firmware upgrade tools, after the Azure starter kit (fact sheet §9.3).

* :func:`prepare_signature_key` — ``firmwarePrep.sh``: a new P-256 key as ``sig-N.key`` (the
  station's raw 64-byte X‖Y), ``sig-N.pem`` (the private key, PKCS#8 PEM, kept by the operator)
  and ``sig-N.crc`` (the decimal CRC32 of ``sig-N.key``, the twin's ``fwKeyChecksum``).
* :func:`write_firmware_digest` — base64 of the DER ECDSA-SHA512 signature of the update file
  (``openssl dgst -sha512 -sign key.pem | base64``).
* :func:`upgrade_firmware` — the CLI's ``upgrade-firmware``: upload the update to the server's
  firmware store as ``<StationEui>-<package>`` (never overwriting), then set the station's desired
  ``package``/``fwUrl``/``fwKeyChecksum``/``fwSignature``; when that fails the upload is removed.
  It talks to the admin API documented in :mod:`otaharness.servers.basics_station.admin`. The
  signature is checked before anything is uploaded (strict DER ECDSA P-256 with its key CRC).
* :func:`station_credentials` — ``station-credentials``: ask the server for a station's
  credential set and write the files into the station's home (``cups.uri``,
  ``cups.trust|crt|key`` and ``tc.trust|crt|key``, byte for byte), so that the real station binary
  and the emulator start the same way.

Every call takes the admin API's bearer ``token`` and, for an ``https`` server, the ``ca`` file
its certificate chains to (None: the system's trust store).
"""

from __future__ import annotations

import base64
import binascii
import os
import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

from otaharness.api_token_option import authorization_headers
from otaharness.protocols.basics_station import (
    BasicsStationCodecError,
    SigningKey,
    check_firmware_signature,
    format_eui,
    parse_eui,
    sign_update,
)


class ProvisioningError(Exception):
    """A provisioning step failed; the message says which and why."""


@dataclass(frozen=True)
class PreparedKey:
    key_file: Path  # sig-N.key, goes onto the station
    private_key_file: Path  # sig-N.pem, stays with the operator
    checksum_file: Path  # sig-N.crc
    crc: int


def prepare_signature_key(directory: Path, index: int = 0) -> PreparedKey:
    directory.mkdir(parents=True, exist_ok=True)
    key = SigningKey.generate()
    prepared = PreparedKey(directory / f"sig-{index}.key", directory / f"sig-{index}.pem",
                           directory / f"sig-{index}.crc", key.crc)
    prepared.key_file.write_bytes(key.key_file)
    prepared.private_key_file.write_bytes(key.to_pem())
    prepared.private_key_file.chmod(0o600)
    prepared.checksum_file.write_text(f"{key.crc}\n")
    return prepared


def write_firmware_digest(firmware: Path, private_key_file: Path, digest_file: Path) -> str:
    """Sign ``firmware`` with the PEM key; write and return the base64 digest."""
    key = SigningKey.from_pem(private_key_file.read_bytes())
    digest = base64.b64encode(sign_update(key.private_key, firmware.read_bytes())).decode("ascii")
    digest_file.write_text(digest + "\n")
    return digest


def _read_inputs(firmware_location: Path, digest_location: Path, checksum_location: Path) -> tuple[bytes, str, int]:
    for path in (firmware_location, digest_location, checksum_location):
        if not path.is_file():
            raise ProvisioningError(f"file not found: {path}")
    firmware = firmware_location.read_bytes()
    if not firmware:
        raise ProvisioningError(f"firmware file {firmware_location} is empty")
    digest = digest_location.read_text().strip()
    try:
        signature = base64.b64decode(digest, validate=True)
    except binascii.Error as error:
        raise ProvisioningError(f"digest in {digest_location} is not base64: {error}") from error
    checksum_text = checksum_location.read_text().strip()
    if not checksum_text.isdigit() or int(checksum_text) > 0xFFFFFFFF:
        raise ProvisioningError(f"checksum in {checksum_location} is not an unsigned 32-bit number: {checksum_text!r}")
    try:
        check_firmware_signature(signature, int(checksum_text))
    except BasicsStationCodecError as error:
        raise ProvisioningError(f"digest in {digest_location}: {error}") from error
    return firmware, digest, int(checksum_text)


def _session(token: str | None, ca: Path | str | None) -> aiohttp.ClientSession:
    tls = ssl.create_default_context(cafile=str(ca)) if ca else None
    return aiohttp.ClientSession(headers=authorization_headers(token),
                                 connector=aiohttp.TCPConnector(ssl=tls) if tls else None)


async def _json_or_error(response: aiohttp.ClientResponse, what: str) -> Any:
    if response.status >= 400:
        raise ProvisioningError(f"{what} failed: HTTP {response.status}: {(await response.text()).strip()}")
    return await response.json()


async def upgrade_firmware(server: str, station_eui: str, package: str, firmware_location: Path,
                           digest_location: Path, checksum_location: Path, *, token: str | None = None,
                           ca: Path | str | None = None) -> dict[str, Any]:
    """Upload the firmware and set the station's desired state; returns the station's twin."""
    firmware, digest, checksum = _read_inputs(firmware_location, digest_location, checksum_location)
    eui = format_eui(parse_eui(station_eui), "")
    firmware_url = f"{server.rstrip('/')}/admin/firmware/{eui}-{package}"
    async with _session(token, ca) as http:
        async with http.put(firmware_url, data=firmware) as response:
            fw_url = (await _json_or_error(response, "firmware upload"))["fwUrl"]
        try:
            desired = {"package": package, "fwUrl": fw_url, "fwKeyChecksum": checksum, "fwSignature": digest}
            async with http.put(f"{server.rstrip('/')}/admin/stations/{eui}/cups", json=desired) as response:
                twin: dict[str, Any] = await _json_or_error(response, f"setting the desired firmware of station {eui}")
                return twin
        except (ProvisioningError, aiohttp.ClientError) as error:
            async with http.delete(firmware_url) as response:
                removal = "removed" if response.status in (204, 404) else f"NOT removed (HTTP {response.status})"
            raise ProvisioningError(f"{error}; the uploaded firmware was {removal}") from error


async def station_credentials(server: str, station_eui: str, home: Path, *, auth: str = "certificate",
                              token: str | None = None, ca: Path | str | None = None) -> list[str]:
    """Have the server issue the station a credential set and write its files into ``home``
    (private parts 0600); returns the names written. ``cups.uri`` is the twin's CUPS URI, or
    ``server`` when the twin has none."""
    try:
        eui = format_eui(parse_eui(station_eui), "")
    except BasicsStationCodecError as error:
        raise ProvisioningError(f"bad station EUI {station_eui!r}: {error}") from error
    async with _session(token, ca) as http, http.post(f"{server.rstrip('/')}/admin/stations/{eui}/credentials",
                                                      json={"auth": auth}) as response:
        answer = await _json_or_error(response, f"issuing credentials for station {eui}")
    files = {name: base64.b64decode(content) for name, content in answer["files"].items()}
    files.setdefault("cups.uri", server.rstrip("/").encode())
    home.mkdir(parents=True, exist_ok=True)
    for name, content in files.items():
        if "/" in name or name.startswith("."):
            raise ProvisioningError(f"the server named a file outside the home: {name!r}")
        path = home / name
        path.unlink(missing_ok=True)
        with os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL,
                               0o600 if name.endswith(".key") else 0o644), "wb") as file:
            file.write(content + (b"\n" if name.endswith(".uri") else b""))
    return sorted(files)

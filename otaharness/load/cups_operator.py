"""The operator's side of a Basics Station load run: what a platform team does on its CUPS back
end while ``otaharness load basics-station`` runs the fleet, through the admin API of
``otaharness serve cups`` (documented in ``otaharness/servers/basics_station/admin.py``): register
the stations (their twins, with the CUPS and LNS URIs), release a signed update (a new signing
key from the provisioning tool, ``cryptography`` underneath; the update file uploaded once) and
roll it out to each station once it is on the LNS with the old package. Used by tests/load;
docs/load.md shows the same calls with curl.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests

from otaharness.load.admin_api import AdminApi
from otaharness.load.fleet import device_number
from otaharness.load.kinds.basics_station import DEFAULT_EUI_BASE
from otaharness.protocols.basics_station import format_eui, parse_eui
from otaharness.provision.basics_station import (
    PreparedKey,
    prepare_signature_key,
    write_firmware_digest,
)

# What the update "installs": the package name in version.txt, then (unless it is the starter
# kit's fwUpdateSample.sh kind, see docs/cups.md) a restart asked of the station's supervisor.
UPDATE_PROGRAM = "#!/bin/sh\nprintf '%s\\n' > version.txt\nrm -f update.bin\n"
RESTART = ": > station.restart\n"


def station_euis(workers: int, stations_per_worker: int,
                 base: str = DEFAULT_EUI_BASE) -> list[str]:
    """The EUIs ``otaharness load basics-station`` gives a run's stations (16 hex digits)."""
    first = parse_eui(base)
    return [format_eui(first + device_number(worker, n), "") for worker in range(workers)
            for n in range(1, stations_per_worker + 1)]


@dataclass(frozen=True)
class Release:
    package: str
    key: PreparedKey  # sig-0.key goes onto the stations; the PEM stays with the operator
    fw_url: str
    signature: str  # base64 DER ECDSA-SHA512 of the update file
    size: int
    file: Path


class CupsAdmin(AdminApi):
    """Calls on the CUPS admin API (``endpoints``: what ``serve cups --json`` printed)."""

    def __init__(self, endpoints: dict[str, Any]) -> None:
        super().__init__(endpoints["cups"], endpoints["ca"], endpoints["tokens"]["cups"])
        self.endpoints = endpoints

    def register(self, eui: str) -> None:
        self.call("PUT", f"/admin/stations/{eui}", json={"cupsUri": self.base_url,
                                                          "tcUri": self.endpoints["lns"]})

    def station(self, eui: str) -> dict[str, Any]:
        return self.call("GET", f"/admin/stations/{eui}")

    def release(self, folder: Path, package: str, size: int = 4096,
                restarts: bool = True) -> Release:
        """A new signing key, the update program padded to ``size`` bytes, signed, uploaded."""
        key = prepare_signature_key(folder / "keys")
        program = UPDATE_PROGRAM % package + (RESTART if restarts else "")
        while (missing := size - len(program)) > 0:
            program += "#" * (min(missing, 80) - 1) + "\n"
        update = folder / f"update-{package}.sh"
        update.write_text(program)
        signature = write_firmware_digest(update, key.private_key_file, folder / "update.digest")
        uploaded = self.call("PUT", f"/admin/firmware/fleet-{package}", data=update.read_bytes())
        return Release(package, key, uploaded["fwUrl"], signature, len(program), update)

    def roll_out(self, eui: str, release: Release) -> None:
        self.call("PUT", f"/admin/stations/{eui}/cups", json={
            "package": release.package, "fwUrl": release.fw_url,
            "fwKeyChecksum": release.key.crc, "fwSignature": release.signature})


class Rollout(threading.Thread):
    """The operator during the run: each station that reached the LNS with ``from_package`` (its
    twin's reported package) gets the release, until every one has it or ``stop()``."""

    def __init__(self, admin: CupsAdmin, euis: list[str], release: Release, from_package: str,
                 every: float = 1.0) -> None:
        super().__init__(daemon=True)
        self.admin, self.release, self.from_package, self.every = admin, release, from_package, every
        self.waiting = list(euis)
        self.rolled_out: list[str] = []
        self.errors: list[str] = []
        self._stop_event = threading.Event()

    def run(self) -> None:
        while self.waiting and not self._stop_event.wait(self.every):
            for eui in list(self.waiting):
                try:
                    if self.admin.station(eui)["reportedPackage"] == self.from_package:
                        self.admin.roll_out(eui, self.release)
                        self.waiting.remove(eui)
                        self.rolled_out.append(eui)
                except (AssertionError, requests.RequestException) as exc:
                    self.errors.append(str(exc))

    def stop(self) -> None:
        self._stop_event.set()
        self.join(60)

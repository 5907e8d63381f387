"""The operator's side of a LoRaWAN load run: what a platform team does on its FUOTA server while
``otaharness load lorawan`` runs the fleet, through the API of ``otaharness serve lorawan fuota``
(docs/fuota.md): the firmware team's signing key (Ed25519, new per release from the CSPRNG; the
devices get its public half with ``--fuota-verify-key``), a signed image (the device emulator's
TS006 image format, ``build_image``), and once every device on the key sheet has joined (the
application API's ``joined``), one campaign for them all, started. Used by tests/load;
docs/load.md shows the same calls with curl.
"""

from __future__ import annotations

import base64
import json
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from otaharness.emulators.lorawan_device.fuota import build_image
from otaharness.load.admin_api import AdminApi
from otaharness.load.kinds.lorawan import version_word

HW_VERSION = 0x00AB0001  # the kind's default --lorawan-hw-version


@dataclass(frozen=True)
class FuotaRelease:
    version: str
    verify_key_file: Path  # the public key, for --fuota-verify-key
    image: bytes


def prepare_release(folder: Path, version: str, body_size: int,
                    hw_version: int = HW_VERSION) -> FuotaRelease:
    """A new signing key (its public half written as PEM) and a signed image of random body."""
    folder.mkdir(parents=True, exist_ok=True)
    key = Ed25519PrivateKey.generate()
    verify = folder / "fuota-verify.pem"
    verify.write_bytes(key.public_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo))
    image = build_image(os.urandom(body_size), fw_version=version_word(version),
                        hw_version=hw_version, signing_key=key)
    return FuotaRelease(version, verify, image)


def read_key_sheet(folder: Path) -> list[dict[str, str]]:
    """The devices ``--key-sheet`` wrote: ``[{"dev_eui", "gen_app_key"}, ...]`` by DevEUI."""
    return [json.loads(path.read_text()) for path in sorted(folder.glob("*.json"))]


class FuotaAdmin(AdminApi):
    """Calls on the FUOTA API and the application API (``endpoints``: what ``serve lorawan fuota
    --json`` printed)."""

    def __init__(self, endpoints: dict[str, Any]) -> None:
        super().__init__(endpoints["fuota"], endpoints["ca"], endpoints["tokens"]["fuota"])
        self.endpoints = endpoints
        self.app = AdminApi(endpoints["lorawan-app"], endpoints["ca"],
                            endpoints["tokens"]["lorawan-app"])

    def close(self) -> None:
        self.app.close()
        super().close()

    def joined(self, dev_eui: str) -> bool:
        answer = self.app.http.get(f"{self.app.base_url}/api/devices/{dev_eui}", timeout=60)
        return answer.status_code == 200 and bool(answer.json().get("joined"))

    def create_campaign(self, devices: list[dict[str, str]], release: FuotaRelease,
                        **settings: Any) -> int:
        config = {"name": f"fleet {release.version}", "devices": devices,
                  "firmware_version": version_word(release.version), **settings}
        created = self.call("POST", "/campaigns", json={
            "config": config, "image": base64.b64encode(release.image).decode()})
        return int(created["id"])

    def start(self, campaign: int) -> None:
        self.answer("POST", f"/campaigns/{campaign}/start")

    def campaign(self, campaign: int) -> dict[str, Any]:
        return self.call("GET", f"/campaigns/{campaign}")

    def report(self, campaign: int) -> dict[str, Any]:
        return self.call("GET", f"/campaigns/{campaign}/report")


class CampaignOnceJoined(threading.Thread):
    """The operator during the run: waits until ``expected`` devices are on the key sheet and
    every one has joined, then creates and starts one campaign for them (``settings``: the
    campaign configuration's timing keys), until ``stop()``."""

    def __init__(self, admin: FuotaAdmin, key_sheet: Path, expected: int, release: FuotaRelease,
                 every: float = 1.0, **settings: Any) -> None:
        super().__init__(daemon=True)
        self.admin, self.key_sheet, self.expected = admin, key_sheet, expected
        self.release, self.every, self.settings = release, every, settings
        self.campaign: int | None = None
        self.devices: list[dict[str, str]] = []
        self.errors: list[str] = []
        self._stop_event = threading.Event()

    def run(self) -> None:
        while self.campaign is None and not self._stop_event.wait(self.every):
            try:
                devices = read_key_sheet(self.key_sheet)
                if len(devices) < self.expected or not all(
                        self.admin.joined(device["dev_eui"]) for device in devices):
                    continue
                self.devices = devices
                campaign = self.admin.create_campaign(devices, self.release, **self.settings)
                self.admin.start(campaign)
                self.campaign = campaign
            except (AssertionError, requests.RequestException, ValueError) as exc:
                self.errors.append(str(exc))

    def stop(self) -> None:
        self._stop_event.set()
        self.join(60)

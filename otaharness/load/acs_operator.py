"""The operator's side of a TR-069 load run: what a platform team does on its ACS while
``otaharness load cpe`` runs the fleet, through the admin API of ``otaharness serve tr069`` (or an
ACS with the same API): the seed's firmware files, a group, one batch, and every CPE that boots
forced into it ("Force upgrade (now)": a Connection Request). Used by tests/load and
benchmarks/bench_locust.py; docs/load.md shows the same calls with curl.

Forcing, with CPEs informing only hourly, leaves no session running once the last upgrade ends,
so the ACS's records and the master's totals can be compared.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import quote

import requests

from otaharness.fixtures import fixture_path
from otaharness.load.admin_api import AdminApi

FIRMWARE = "1 Firmware Upgrade Image"
PACKAGES = ("routeros-x86-6.48.4.npk", "tr069-client-6.48.4.npk")
XML = "upgrade_6.48.4.xml"
SEED_FILE_SERVER = b"https://splynx_domain:7567"
FORCES_AT_ONCE = 16


class AcsAdmin(AdminApi):
    """Calls on the ACS's admin API (``endpoints``: what ``serve tr069 --json`` printed)."""

    def __init__(self, endpoints: dict[str, Any]) -> None:
        super().__init__(endpoints["admin"], endpoints["ca"], endpoints["tokens"]["admin"])
        self.endpoints = endpoints

    def upload_seed_files(self) -> None:
        """The seed's files: RouterOS 6.48.4 as an upgrade XML and its two packages, and the
        group of every CHR."""
        uploads = {name: fixture_path("tr069", name).read_bytes() for name in PACKAGES}
        uploads[XML] = fixture_path("tr069", XML).read_bytes().replace(
            SEED_FILE_SERVER, self.endpoints["files"].encode())
        for name, content in uploads.items():
            self.call("PUT", f"/files/{name}", data=content, headers={
                "fileType": FIRMWARE, "oui": "E48D8C", "productClass": "CHR",
                "version": "6.48.4"})
        self.call("PUT", "/groups/chr", json={"oui": "E48D8C", "product_class": "CHR"})

    def create_batch(self) -> int:
        batch = self.call("POST", "/batches", json={
            "group": "chr", "original_version": "6.48", "file": XML, "new_version": "6.48.4",
            "event": "Inform"})
        return int(batch["id"])

    def devices(self) -> list[dict[str, Any]]:
        return self.call("GET", "/devices")

    def events(self, device_id: str) -> list[dict[str, Any]]:
        return self.call("GET", f"/devices/{quote(device_id, safe='')}/events")

    def batch(self, batch_id: int) -> dict[str, Any]:
        return self.call("GET", f"/batches/{batch_id}")


class BatchKeeper(threading.Thread):
    """The operator during the run: one batch; every CPE that booted since is added to it (the
    admin API's "find new devices") and forced, until ``stop()``. When the force's Connection
    Request did not reach the CPE (202: the ACS gives up after 2 s, which a loaded machine can
    exceed), it is sent again a few seconds later, as an operator would."""

    def __init__(self, acs: AcsAdmin, every: float = 1.0) -> None:
        super().__init__(daemon=True)
        self.acs = acs
        self.every = every
        self.batch_id = acs.create_batch()
        self.forced: list[str] = []
        self.unreached: set[str] = set()
        self.requests_again = 0
        self._stop_event = threading.Event()
        self._pool = ThreadPoolExecutor(FORCES_AT_ONCE, thread_name_prefix="force")
        self.errors: list[str] = []

    def run(self) -> None:
        rounds = 0
        while not self._stop_event.wait(self.every):
            rounds += 1
            try:
                added = self.acs.call("POST", f"/batches/{self.batch_id}/find-new-devices")
                self.forced += added["added"]
                # at once: each force waits for its Connection Request (up to the ACS's 2 s)
                list(self._pool.map(lambda device: self._reach(
                    device, f"/batches/{self.batch_id}/devices/{quote(device, safe='')}/force"),
                    added["added"]))
                if rounds % 5 == 0:
                    again = sorted(self.unreached)
                    self.requests_again += len(again)
                    list(self._pool.map(lambda device: self._reach(
                        device, f"/devices/{quote(device, safe='')}/connection-request"), again))
            except (AssertionError, requests.RequestException) as exc:
                self.errors.append(str(exc))

    def _reach(self, device: str, path: str) -> None:
        if self.acs.answer("POST", path).status_code == 200:
            self.unreached.discard(device)
        else:
            self.unreached.add(device)

    def stop(self) -> None:
        self._stop_event.set()
        self.join(60)
        self._pool.shutdown()

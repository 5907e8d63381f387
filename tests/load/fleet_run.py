"""What the load tests drive from outside, as a user would: ``otaharness serve tr069`` in a child
process, the operator's batch through the admin API, and ``otaharness load`` master and worker
processes. Nothing here imports Locust (pytest's process must stay unpatched)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote

import requests

from otaharness.fixtures import fixture_path

FIRMWARE = "1 Firmware Upgrade Image"
PACKAGES = ("routeros-x86-6.48.4.npk", "tr069-client-6.48.4.npk")
XML = "upgrade_6.48.4.xml"
SEED_FILE_SERVER = b"https://splynx_domain:7567"


def interrupt(popen: subprocess.Popen[bytes]) -> None:
    """SIGINT to a child's process group (as Ctrl-C would), SIGKILL if it hangs."""
    if popen.poll() is None:
        os.killpg(popen.pid, signal.SIGINT)
        try:
            popen.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(popen.pid, signal.SIGKILL)
            popen.wait(30)


class Process:
    """A child process whose output goes to a file (read when a check fails)."""

    def __init__(self, name: str, argv: list[str], folder: Path) -> None:
        self.name = name
        self.log_path = folder / f"{name}.log"
        self._log = open(self.log_path, "wb")
        self.popen = subprocess.Popen(argv, stdout=self._log, stderr=subprocess.STDOUT,
                                      start_new_session=True)

    def text(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait(self, timeout: float) -> int:
        return self.popen.wait(timeout)

    def stop(self) -> None:
        interrupt(self.popen)
        self._log.close()


class ServedAcs:
    """``otaharness serve tr069 --json`` and the operator's calls on its admin API."""

    def __init__(self) -> None:
        self._err = tempfile.TemporaryFile()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "otaharness.cli", "serve", "tr069", "--json"],
            stdout=subprocess.PIPE, stderr=self._err, start_new_session=True)
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if not line:
            self._err.seek(0)
            raise AssertionError(f"serve tr069 did not start: {self._err.read()[-3000:]!r}")
        self.endpoints: dict[str, Any] = json.loads(line)
        self.http = requests.Session()
        self.http.trust_env = False  # REQUESTS_CA_BUNDLE would replace our CA
        self.http.verify = self.endpoints["ca"]
        self.http.headers["Authorization"] = f"Bearer {self.endpoints['tokens']['admin']}"
        self.admin = self.endpoints["admin"]

    def stop(self) -> None:
        self.http.close()
        interrupt(self.process)
        self._err.close()

    def call(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self.http.request(method, self.admin + path, timeout=60, **kwargs)
        assert response.status_code < 300, f"{method} {path}: {response.status_code} {response.text}"
        return response.json()

    def upload_seed_files(self) -> None:
        """The seed's files: RouterOS 6.48.4 as an upgrade XML and its two packages."""
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
    admin API's "find new devices") and forced ("Force upgrade (now)": a Connection Request),
    until ``stop()``. Forcing, with CPEs informing only hourly, leaves no session running once
    the last upgrade ends, so the ACS's records and the master's totals can be compared."""

    def __init__(self, acs: ServedAcs, every: float = 1.0) -> None:
        super().__init__(daemon=True)
        self.acs = acs
        self.every = every
        self.batch_id = acs.create_batch()
        self.forced: list[str] = []
        self._stop_event = threading.Event()
        self.errors: list[str] = []

    def run(self) -> None:
        while not self._stop_event.wait(self.every):
            try:
                added = self.acs.call("POST", f"/batches/{self.batch_id}/find-new-devices")
                for device in added["added"]:
                    self.acs.call("POST", f"/batches/{self.batch_id}/devices/"
                                  f"{quote(device, safe='')}/force")
                    self.forced.append(device)
            except (AssertionError, requests.RequestException) as exc:
                self.errors.append(str(exc))

    def stop(self) -> None:
        self._stop_event.set()
        self.join(60)


def load_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "otaharness.cli", "load", *args]


def cpe_options(acs: ServedAcs) -> list[str]:
    return ["--acs-url", acs.endpoints["acs"], "--ca", acs.endpoints["ca"],
            "--periodic-interval", "3600", "--boot-seconds", "1"]


def free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_for(condition, timeout: float, every: float = 0.5) -> bool:
    """Poll ``condition`` until true or ``timeout`` real seconds (a liveness bound, not a
    performance claim)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(every)
    return condition()


def children_of(pid: int) -> list[int]:
    """Direct children of ``pid`` (Linux /proc)."""
    found = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            found += [int(p) for p in (task / "children").read_text().split()]
        except OSError:
            pass
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"

"""``otaharness load olt-gateway`` against ``otaharness serve olt``: gateways onboard themselves
through the API, the operator installs a firmware on every field device as it appears; judged on
the installations the API recorded."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import threading
from pathlib import Path
from typing import Any

import pytest
import requests
from fleet_run import Process, finish, interrupt, load_command

from otaharness.fixtures import fixture_path
from otaharness.runtime.broker import find_mosquitto

pytestmark = pytest.mark.skipif(find_mosquitto() is None and os.environ.get("CI") != "true",
                                reason="Debian mosquitto is not installed (CI installs it)")

IMAGE = os.urandom(64 * 1024)


class ServedOlt:
    def __init__(self) -> None:
        self._err = tempfile.TemporaryFile()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "otaharness.cli", "serve", "olt", "--json"],
            stdout=subprocess.PIPE, stderr=self._err, start_new_session=True)
        line = self.process.stdout.readline()
        assert line, "serve olt did not start"
        self.endpoints: dict[str, Any] = json.loads(line)
        self.http = requests.Session()
        self.http.trust_env = False  # REQUESTS_CA_BUNDLE would replace our CA
        self.http.verify = self.endpoints["ca"]
        self.http.headers["Authorization"] = f"Bearer {self.endpoints['tokens']['olt']}"

    def call(self, method: str, path: str, **kwargs: Any) -> Any:
        answer = self.http.request(method, self.endpoints["olt"] + path, timeout=60, **kwargs)
        assert answer.status_code < 300, f"{method} {path}: {answer.status_code} {answer.text}"
        return answer.json()

    def field_devices(self) -> list[dict[str, Any]]:
        found, page = [], 0
        while True:
            answer = self.call("GET", f"/v1/devices?page={page}&pageSize=100")
            found += [d for d in answer["data"] if d["info"].get("connectedBy")]
            if (page + 1) * 100 >= answer["meta"]["itemsTotal"]:
                return found
            page += 1

    def stop(self) -> None:
        self.http.close()
        interrupt(self.process)
        self._err.close()


class Installer(threading.Thread):
    """The operator: firmware 2.0 installed into the slot of every field device that appears."""

    def __init__(self, olt: ServedOlt, firmware: str) -> None:
        super().__init__(daemon=True)
        self.olt, self.firmware = olt, firmware
        self.installations: dict[str, str] = {}
        self.stopped = threading.Event()

    def run(self) -> None:
        while not self.stopped.wait(1.0):
            for device in self.olt.field_devices():
                if device["id"] not in self.installations:
                    self.installations[device["id"]] = self.olt.call(
                        "POST", f"/v1/devices/{device['id']}/firmware-installations",
                        json={"firmwareId": self.firmware, "slot": "firmware"})["data"]["id"]


@pytest.mark.load
@pytest.mark.slow
def test_olt_gateways_onboard_and_every_installation_succeeds(tmp_path: Path) -> None:
    olt = ServedOlt()
    installer = None
    try:
        types = {name: olt.call("POST", "/v1/device-types", json=json.loads(
            fixture_path("olt", f"{name}.json").read_text()))["data"]["id"]
            for name in ("gateway_type", "osram_switch_type")}
        firmware = olt.call("POST", "/v1/firmwares", json={
            "name": "switch", "version": "2.0", "description": "switch 2.0"})["data"]["id"]
        olt.call("PUT", f"/v1/firmwares/{firmware}/blob", data=IMAGE)
        installer = Installer(olt, firmware)
        installer.start()
        run = Process("local", load_command(
            "olt-gateway", "--headless", "-u", "12", "-r", "12", "--until-upgraded",
            "--run-time", "3m", "--fleet-report", str(tmp_path / "fleet.json"),
            "--api", olt.endpoints["olt"], "--ca", olt.endpoints["ca"],
            "--mqtt", olt.endpoints["mqtt"], "--olt-token", olt.endpoints["tokens"]["olt"],
            "--gateway-type", types["gateway_type"], "--device-type", types["osram_switch_type"],
            "--fault", "cut after 32 KiB", "--fault-devices", "25%",
            "--exit-code-on-error", "0"), tmp_path)  # the cut GETs are failures, by design
        code = finish(run, [])
        installer.stopped.set()
        installer.join(30)
        assert code == 0, run.text()[-4000:]
        report = json.loads((tmp_path / "fleet.json").read_text())
        statuses = {device: olt.call("GET", f"/v1/devices/{device}/firmware-installations/"
                                            f"{installation}")["data"]["status"]
                    for device, installation in installer.installations.items()}
        assert len(statuses) == 12 and set(statuses.values()) == {"succeeded"}
        assert report["succeeded"] == 12 and report["failed"] == {}
        requests_ = report["requests"]
        # every 4th gateway's download was cut once (a failed GET naming it) and went on with
        # a Range request: 12 + 3 GETs
        gets = requests_["olt-gateway HTTP range GET"]
        assert (gets["requests"], gets["failures"]) == (15, 3)
        assert requests_["olt-gateway HTTP job update"]["requests"] >= 12 * 4
        assert requests_["olt-gateway upgrade"]["bytes"] == 12 * len(IMAGE)
    finally:
        if installer is not None:
            installer.stopped.set()
        olt.stop()

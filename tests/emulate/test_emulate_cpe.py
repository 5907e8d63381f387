"""`otaharness emulate cpe` against `otaharness serve tr069`: a power cut in the middle of a
download, the fleet's summary against what the ACS recorded, the capture, the JSON events."""

from __future__ import annotations

import json
import os
import signal
import ssl
import subprocess
import urllib.request
from urllib.parse import quote

import pytest
from emulate_processes import Emulation, parses_as_iso_utc, served
from otaharness.emulators.cpe.firmware import build_image

from otaharness.runtime.broker import find_mosquitto

pytestmark = pytest.mark.skipif(find_mosquitto() is None and os.environ.get("CI") != "true",
                                reason="Debian mosquitto is not installed (CI installs it)")

FIRMWARE = "1 Firmware Upgrade Image"
IMAGE_NAME = "gateway-2.0.bin"


def admin(endpoints: dict, method: str, path: str, body: bytes | dict | None = None,
          headers: dict | None = None) -> object:
    data = json.dumps(body).encode() if isinstance(body, dict) else body
    request = urllib.request.Request(
        f"{endpoints['admin']}{path}", data=data, method=method, headers={
            "Authorization": f"Bearer {endpoints['tokens']['admin']}",
            **({"Content-Type": "application/json"} if isinstance(body, dict) else {}),
            **(headers or {})})
    context = ssl.create_default_context(cafile=endpoints["ca"])
    with urllib.request.urlopen(request, context=context) as answer:
        return json.loads(answer.read() or b"null")


def detail(event: dict) -> dict:
    value = event["detail"]
    return json.loads(value) if isinstance(value, str) else value


def test_a_power_cut_mid_download_leaves_the_old_version_and_the_summary_says_so(tmp_path, tshark):
    with served("tr069", cwd=tmp_path) as endpoints:
        emulation = Emulation(
            "cpe", "--acs-url", endpoints["acs"], "--ca", endpoints["ca"], "--count", "4",
            "--profile", "generic", "--serial-prefix", "EMU", "--boot-seconds", "0.2",
            # slowed so the power cut lands inside the download, as the scenario does
            "--fault", "throttled to 512 KiB/s", "--fault", "power cut at 96 KiB",
            "--fault-devices", "2", "--capture", str(tmp_path / "cpe.pcapng"), cwd=tmp_path)
        emulation.wait_for("four CPEs connected", lambda _: len(emulation.devices_with("connected")) == 4)
        image = build_image("2.0", os.urandom(256 * 1024))
        admin(endpoints, "PUT", f"/files/{IMAGE_NAME}", image, {"fileType": FIRMWARE, "version": "2.0"})
        devices = {device["serial_number"]: device["id"] for device in admin(endpoints, "GET", "/devices")}
        assert sorted(devices) == [f"EMU{n:06d}" for n in range(1, 5)]
        admin(endpoints, "POST", "/actions/upgrade", {"devices": list(devices.values()),
                                                      "file": IMAGE_NAME})
        emulation.wait_for("three upgrades and one failure", lambda _: len(
            emulation.devices_with("upgraded")) == 3 and emulation.count("upgrade_failed") == 1)

        def transfers() -> list[dict]:
            return [detail(event) for device_id in devices.values() for event in admin(
                endpoints, "GET", f"/devices/{quote(device_id, safe='')}/events")
                if event["kind"] == "transfer-complete"]

        emulation.wait_for("the ACS to hear of every transfer", lambda _: len(transfers()) == 4)
        assert emulation.stop(signal.SIGTERM) == 128 + signal.SIGTERM
        recorded = {serial: admin(endpoints, "GET", f"/devices/{quote(device_id, safe='')}")
                    for serial, device_id in devices.items()}
        transfers = transfers()

    # The power cut struck device 2 only, inside its download; the others upgraded.
    cut = [event for event in emulation.events if event["event"] == "power_cut"]
    assert [event["device"] for event in cut] == ["EMU000002"]
    assert 96 * 1024 <= cut[0]["bytes"] < 256 * 1024
    assert emulation.devices_with("upgraded") == {"EMU000001", "EMU000003", "EMU000004"}
    # The summary counts what the ACS recorded: versions reported, the failed transfer's fault.
    summary = emulation.summary
    versions = [device["software_version"] for device in recorded.values()]
    assert summary["states"] == {"upgraded": versions.count("2.0"),
                                 "failed": versions.count("1.0.0")}
    assert recorded["EMU000002"]["software_version"] == "1.0.0"
    failed = [transfer for transfer in transfers if transfer["code"] != 0]
    assert summary["failures"] == {f"{failed[0]['code']} {failed[0]['string']}": len(failed)}
    assert failed[0]["code"] == 9010 and len(transfers) == 4
    assert summary["faults"]["power_cuts"] == 1 and summary["faults"]["devices"] == 1
    assert summary["durations"]["upgrade"]["count"] == 3
    # Every event's time is ISO 8601 in UTC with milliseconds.
    assert all(parses_as_iso_utc(event["time"]) for event in [*emulation.events, summary])
    # The capture: tshark reads it and decrypts the TLS with the key log embedded in it.
    shown = subprocess.run([tshark, "-r", str(tmp_path / "cpe.pcapng"), "-Y", "http.request",
                            "-T", "fields", "-e", "ip.src", "-e", "http.request.method",
                            "-e", "http.request.uri"], capture_output=True, text=True, check=True)
    requests = [line.split("\t") for line in shown.stdout.splitlines()]
    assert ["127.1.0.2", "GET", f"/{IMAGE_NAME}"] in requests
    assert {source for source, method, _ in requests if method == "POST"} == {
        f"127.1.0.{n}" for n in range(1, 5)}

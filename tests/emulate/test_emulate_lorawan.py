"""`otaharness emulate lorawan` against `otaharness serve lorawan`: the station loses power while
its devices are on the air, boots and reconnects through CUPS and the LNS; the summary's joins and
uplinks against what the network server recorded."""

from __future__ import annotations

import json
import os
import ssl
import subprocess
import urllib.request

import pytest
from emulate_processes import OTAHARNESS, Emulation, parses_as_iso_utc, served

from otaharness.runtime.broker import find_mosquitto

pytestmark = pytest.mark.skipif(find_mosquitto() is None and os.environ.get("CI") != "true",
                                reason="Debian mosquitto is not installed (CI installs it)")

STATION = "0016C001FF100001"
DEVICES = ("0004A30B00100001", "0004A30B00100002")


def test_a_station_power_cut_is_survived_and_the_summary_matches_the_network_server(tmp_path, tshark):
    with served("lorawan", cwd=tmp_path) as endpoints:
        context = ssl.create_default_context(cafile=endpoints["ca"])

        def call(url: str, token: str, method: str = "GET", body: dict | None = None) -> dict:
            request = urllib.request.Request(url, method=method, data=json.dumps(body).encode() if body else None,
                                             headers={"Authorization": f"Bearer {token}",
                                                      "Content-Type": "application/json"})
            with urllib.request.urlopen(request, context=context) as answer:
                return json.loads(answer.read() or b"{}")

        call(f"{endpoints['cups']}/admin/stations/{STATION}", endpoints["tokens"]["cups"], "PUT",
             {"cupsUri": endpoints["cups"], "tcUri": endpoints["lns"]})
        subprocess.run([*OTAHARNESS, "cups", "station-credentials", "--server", endpoints["cups"], "--ca",
                        endpoints["ca"], "--station-eui", STATION, "--home", "homes/gw1"], cwd=tmp_path,
                       env={**os.environ, "OTAHARNESS_TOKEN": endpoints["tokens"]["cups"]},
                       check=True, capture_output=True)
        emulation = Emulation(
            "lorawan", "--tc-uri", endpoints["lns"], "--cups-uri", endpoints["cups"], "--home", "homes",
            "--station-eui", STATION, "--dev-eui", DEVICES[0], "--devices", "2", "--interval", "1",
            "--register-app", endpoints["lorawan-app"], "--app-token", endpoints["tokens"]["lorawan-app"],
            "--ca", endpoints["ca"], "--fault", "power cut after 2 s",
            "--capture", str(tmp_path / "field.pcapng"), cwd=tmp_path)
        emulation.wait_for("the station's power cut, its reconnection and both devices' uplinks", lambda events: (
            emulation.count("power_cut") == 1 and any(
                event["event"] == "connected" and event["detail"].startswith("LNS")
                for event in events[next(i for i, e in enumerate(events) if e["event"] == "power_cut"):])
            and {e["device"] for e in events if e["event"] == "uplink"} == {"dev1", "dev2"}))
        assert emulation.stop() == 128 + 15
        devices = [call(f"{endpoints['lorawan-app']}/api/devices/{eui}", endpoints["tokens"]["lorawan-app"])
                   for eui in DEVICES]
        heard = call(f"{endpoints['lorawan-app']}/api/uplinks/2", endpoints["tokens"]["lorawan-app"])["events"]

    summary = emulation.summary
    totals = summary["totals"]
    assert totals["joined"] == sum(device["joined"] for device in devices) == 2
    assert {event["devEui"] for event in heard} == set(DEVICES)
    # Uplinks on the air while the station was down never reached the server; an uplink counts
    # once its receive windows are over, so each device may have one on the air at the stop.
    assert 0 < len(heard) <= totals["uplinks"] + len(DEVICES)
    assert totals["uplinks"] == emulation.count("uplink")
    assert summary["faults"] == {"plan": "power cut after 2 s", "devices": 1, "power_cuts": 1}
    assert [event["device"] for event in emulation.events if event["event"] == "booted"] == ["gw1"]
    assert summary["states"] == {"connected": 3}
    assert all(parses_as_iso_utc(event["time"]) for event in [*emulation.events, summary])
    # The links capture decrypts the station's websocket to the LNS (updf messages);
    # the radio capture sits beside it.
    shown = subprocess.run([tshark, "-r", str(tmp_path / "field.pcapng"), "-Y", "websocket",
                            "-T", "fields", "-e", "websocket.payload.text"],
                           capture_output=True, text=True, check=True).stdout
    assert '"msgtype":"updf"' in shown.replace(" ", "")
    assert (tmp_path / "field-radio.pcap").stat().st_size > 24

"""`otaharness emulate basics-station` against `otaharness serve cups`: one station's CUPS answer
(carrying the signed update) cut on the wire, the station trying again and upgrading; the summary
against the packages CUPS recorded."""

from __future__ import annotations

import json
import os
import signal
import ssl
import subprocess
import urllib.request

import pytest
from emulate_processes import OTAHARNESS, Emulation, parses_as_iso_utc, served

from otaharness.runtime.broker import find_mosquitto

pytestmark = pytest.mark.skipif(find_mosquitto() is None and os.environ.get("CI") != "true",
                                reason="Debian mosquitto is not installed (CI installs it)")

EUIS = ("0016C001FF10A001", "0016C001FF10A002")


def update_program(package: str, size: int) -> str:
    """Installs ``package`` and asks for a restart, padded to ``size`` with comment lines."""
    script = ("#!/bin/sh\nset -e\n"
              f"printf '%s\\n' {package} > version.txt\nrm -f update.bin\n: > station.restart\n")
    while (missing := size - len(script)) > 0:
        script += "#" * (min(missing, 80) - 1) + "\n"
    return script


def test_a_cut_cups_answer_is_tried_again_and_the_summary_matches_the_twins(tmp_path, tshark):
    with served("cups", cwd=tmp_path) as endpoints:
        environment = {**os.environ, "OTAHARNESS_TOKEN": endpoints["tokens"]["cups"]}
        context = ssl.create_default_context(cafile=endpoints["ca"])

        def admin(method: str, eui: str, body: dict | None = None) -> dict:
            request = urllib.request.Request(
                f"{endpoints['cups']}/admin/stations/{eui}", method=method,
                data=json.dumps(body).encode() if body else None,
                headers={"Authorization": f"Bearer {endpoints['tokens']['cups']}",
                         "Content-Type": "application/json"})
            with urllib.request.urlopen(request, context=context) as answer:
                return json.loads(answer.read() or b"{}")

        def tool(*arguments: str) -> None:
            subprocess.run([*OTAHARNESS, "cups", *arguments], cwd=tmp_path, env=environment,
                           check=True, capture_output=True)

        (tmp_path / "update.sh").write_text(update_program("1.0.1", 32 * 1024))
        tool("prepare", "--output-dir", "keys", "--firmware", "update.sh")
        for eui in EUIS:
            admin("PUT", eui, {"cupsUri": endpoints["cups"], "tcUri": endpoints["lns"]})
            tool("station-credentials", "--server", endpoints["cups"], "--ca", endpoints["ca"],
                 "--station-eui", eui, "--home", f"homes/{eui}")
            tool("upgrade-firmware", "--server", endpoints["cups"], "--ca", endpoints["ca"],
                 "--station-eui", eui, "--package", "1.0.1", "--firmware-location", "update.sh",
                 "--digest-location", "update.sh.digest", "--checksum-location", "keys/sig-0.crc")
        emulation = Emulation(
            "basics-station", "--home", "homes", "--eui", EUIS[0], "--count", "2",
            "--package", "1.0.0", "--sig-key", "keys/sig-0.key", "--cups-resync-interval", "0.5",
            "--fault", "cut after 8 KiB", "--fault-devices", "1",
            "--capture", str(tmp_path / "stations.pcapng"), cwd=tmp_path)
        emulation.wait_for("both stations upgraded",
                           lambda _: len(emulation.devices_with("upgraded")) == 2)
        emulation.wait_for("CUPS to hear of both packages", lambda _: all(
            admin("GET", eui).get("reportedPackage") == "1.0.1" for eui in EUIS))
        assert emulation.stop(signal.SIGTERM) == 128 + signal.SIGTERM

    # The cut struck station 1's CUPS answer on the wire; it failed once, then took the update.
    cuts = [event for event in emulation.events if event["event"] == "link_fault"]
    assert {event["device"] for event in cuts} == {EUIS[0]}
    failed = [event for event in emulation.events if event["event"] == "connection_failed"]
    assert {event["device"] for event in failed} == {EUIS[0]}
    summary = emulation.summary
    assert summary["states"] == {"upgraded": 2}
    assert sum(summary["failures"].values()) == len(failed) >= 1
    assert all(reason.startswith("CUPS failed") for reason in summary["failures"])
    assert summary["faults"]["link_cuts"] == 1
    assert all(parses_as_iso_utc(event["time"]) for event in [*emulation.events, summary])
    # Both stations' CUPS requests, decrypted from the capture: the update-info POSTs.
    shown = subprocess.run([tshark, "-r", str(tmp_path / "stations.pcapng"), "-Y",
                            "http.request.uri == \"/update-info\"", "-T", "fields", "-e", "ip.src"],
                           capture_output=True, text=True, check=True).stdout.split()
    assert {"127.1.0.1", "127.1.0.2"} <= set(shown) and shown.count("127.1.0.1") >= 2

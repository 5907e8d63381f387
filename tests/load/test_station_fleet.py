"""``otaharness load basics-station`` against ``otaharness serve cups``: a Locust master and two
worker processes on loopback run LoRa Basics Stations; the operator registers them, releases a
signed update and rolls it out to each station once it is on the LNS; judged from the back end's
registry (each twin's reported package) and the master's fleet report."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import pytest
from fleet_run import Process, finish, free_port, interrupt, load_command

from otaharness.load.cups_operator import CupsAdmin, Rollout, station_euis
from otaharness.provision.basics_station import (
    prepare_signature_key,
    write_firmware_digest,
)

STATIONS_PER_WORKER = 8
UPDATE_SIZE = 8 * 1024
REFUSED = "update refused: abort: no key could verify the signature"


class ServedCups(CupsAdmin):
    """``otaharness serve cups --json`` in a child process, and the operator's calls on it."""

    def __init__(self) -> None:
        self._err = tempfile.TemporaryFile()  # noqa: SIM115 (closed in stop())
        self.process = subprocess.Popen(
            [sys.executable, "-m", "otaharness.cli", "serve", "cups", "--json"],
            stdout=subprocess.PIPE, stderr=self._err, start_new_session=True)
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if not line:
            self._err.seek(0)
            raise AssertionError(f"serve cups did not start: {self._err.read()[-3000:]!r}")
        endpoints: dict[str, Any] = json.loads(line)
        super().__init__(endpoints)

    def stop(self) -> None:
        self.close()
        interrupt(self.process)
        self._err.close()


@pytest.fixture
def cups():
    served = ServedCups()
    try:
        yield served
    finally:
        served.stop()


@pytest.mark.load
@pytest.mark.slow
def test_two_workers_upgrade_stations_and_the_master_adds_up_to_the_registry(
        tmp_path: Path, cups: ServedCups) -> None:
    euis = station_euis(2, STATIONS_PER_WORKER)
    for eui in euis:
        cups.register(eui)
    release = cups.release(tmp_path, "v1", UPDATE_SIZE)
    rollout = Rollout(cups, euis, release, from_package="v0")
    rollout.start()
    port = free_port()
    users = len(euis)
    master = Process("master", load_command(
        "basics-station", "--master", "--headless", "--expect-workers", "2",
        "--master-bind-port", str(port), "-u", str(users), "-r", str(users), "--run-time", "4m",
        "--until-upgraded", "--fleet-report", str(tmp_path / "fleet.json"),
        "--cups-url", cups.endpoints["cups"], "--ca", cups.endpoints["ca"],
        "--cups-token", cups.endpoints["tokens"]["cups"],
        "--station-sig-key", str(release.key.key_file), "--cups-interval", "3"), tmp_path)
    workers = [Process(f"worker{n}", load_command("basics-station", "--worker", "--master-port",
                                                  str(port)), tmp_path) for n in range(2)]
    try:
        code = finish(master, workers)
    finally:
        rollout.stop()
    assert code == 0, master.text()[-4000:] + workers[0].text()[-3000:]
    assert rollout.errors == []
    report = json.loads((tmp_path / "fleet.json").read_text())

    # every station (EUIs from both workers' indexes) reported the new package to the LNS
    twins = {eui: cups.station(eui) for eui in euis}
    assert {twin["reportedPackage"] for twin in twins.values()} == {"v1"}
    assert sorted(rollout.rolled_out) == sorted(euis)

    # the master's totals, summed over both workers, equal what the back end recorded
    upgraded_in_registry = sum(twin["reportedPackage"] == "v1" for twin in twins.values())
    assert report["succeeded"] == upgraded_in_registry == users
    assert report["started"] == users and report["failed"] == {}
    assert sorted(w["most_devices"] for w in report["workers"].values()) == [
        STATIONS_PER_WORKER, STATIONS_PER_WORKER]
    entries = report["requests"]
    downloads = entries["basics-station CUPS update download"]
    assert (downloads["requests"], downloads["failures"]) == (users, 0)
    assert downloads["bytes"] == report["bytes_downloaded"] == users * release.size
    assert entries["basics-station upgrade"]["requests"] == users
    checks = entries["basics-station CUPS check"]
    # each station: the first check (LNS URI), the one with the update, the one after restarting
    assert checks["failures"] == 0 and checks["requests"] >= 3 * users
    connects = entries["basics-station WS LNS connect"]
    assert connects["failures"] == 0 and connects["requests"] >= 2 * users  # with v0, with v1
    credentials = entries["basics-station HTTP station credentials"]
    assert (credentials["requests"], credentials["failures"]) == (users, 0)
    assert set(report["time_to_upgrade"]) == {"p50_ms", "p95_ms", "p99_ms"}
    assert report["lost_workers"] == []


@pytest.mark.load
@pytest.mark.slow
def test_a_cut_cups_link_fails_one_check_per_faulted_station_and_every_station_upgrades(
        tmp_path: Path, cups: ServedCups) -> None:
    users = 8
    euis = station_euis(1, users)
    for eui in euis:
        cups.register(eui)
    # large enough that the cut lands in the update, whatever checks came before it
    release = cups.release(tmp_path, "v1", 256 * 1024)
    rollout = Rollout(cups, euis, release, from_package="v0")
    rollout.start()
    cups_endpoint = cups.endpoints["cups"].split("//")[1]
    run = Process("local", load_command(
        "basics-station", "--headless", "-u", str(users), "-r", str(users), "--run-time", "3m",
        "--until-upgraded", "--fleet-report", str(tmp_path / "fleet.json"),
        "--cups-url", cups.endpoints["cups"], "--ca", cups.endpoints["ca"],
        "--cups-token", cups.endpoints["tokens"]["cups"], "--station-auth", "token",
        "--station-sig-key", str(release.key.key_file), "--cups-interval", "3",
        "--cups-resync-interval", "2", "--fault", "cut after 64 KiB", "--fault-devices", "25%",
        "--fault-endpoint", cups_endpoint, "--exit-code-on-error", "0"), tmp_path)
    try:
        code = finish(run, [])
    finally:
        rollout.stop()
    assert code == 0, run.text()[-4000:]
    report = json.loads((tmp_path / "fleet.json").read_text())
    assert {cups.station(eui)["reportedPackage"] for eui in euis} == {"v1"}
    assert report["succeeded"] == users and report["failed"] == {}
    entries = report["requests"]
    # the 2 faulted stations (25 %) each lost the download of the update to the cut (a failed
    # CUPS session), then took it at their next check
    assert entries["basics-station CUPS check"]["failures"] == 2
    downloads = entries["basics-station CUPS update download"]
    assert (downloads["requests"], downloads["failures"]) == (users + 2, 2)
    assert report["bytes_downloaded"] == users * release.size


@pytest.mark.load
@pytest.mark.slow
def test_an_update_that_does_not_restart_the_station_ends_at_a_reboot_wave(
        tmp_path: Path, cups: ServedCups) -> None:
    users = 4
    euis = station_euis(1, users)
    for eui in euis:
        cups.register(eui)
    # the starter kit's kind of update: version.txt written, no restart, so a station already on
    # the LNS reports the new package there only when it reconnects
    release = cups.release(tmp_path, "v1", restarts=False)
    rollout = Rollout(cups, euis, release, from_package="v0")
    rollout.start()
    run = Process("local", load_command(
        "basics-station", "--headless", "-u", str(users), "-r", str(users), "--run-time", "2m",
        "--until-upgraded", "--fleet-report", str(tmp_path / "fleet.json"),
        "--cups-url", cups.endpoints["cups"], "--ca", cups.endpoints["ca"],
        "--cups-token", cups.endpoints["tokens"]["cups"],
        "--station-sig-key", str(release.key.key_file), "--cups-interval", "2",
        "--reboot-wave-every", "8", "--reboot-wave-share", "100"), tmp_path)
    try:
        code = finish(run, [])
    finally:
        rollout.stop()
    assert code == 0, run.text()[-4000:]
    report = json.loads((tmp_path / "fleet.json").read_text())
    assert {cups.station(eui)["reportedPackage"] for eui in euis} == {"v1"}
    assert report["succeeded"] == users and report["failed"] == {}
    assert report["reboot_waves"] >= 1
    # each update ran at a CUPS check; the package reached the LNS after a wave's reboot only
    assert min(report["time_to_upgrade"].values()) >= 1000
    assert report["requests"]["basics-station CUPS update download"]["requests"] == users


@pytest.mark.load
@pytest.mark.slow
def test_an_update_signed_with_another_key_is_refused_by_every_station_which_says_why(
        tmp_path: Path, cups: ServedCups) -> None:
    users = 4
    euis = station_euis(1, users)
    for eui in euis:
        cups.register(eui)
    release = cups.release(tmp_path / "release", "v1")
    # the release names the stations' key (CUPS sends it), but another key signed the file
    other_key = prepare_signature_key(tmp_path / "other")
    mis_signed = dataclasses.replace(release, signature=write_firmware_digest(
        release.file, other_key.private_key_file, tmp_path / "other" / "update.digest"))
    for eui in euis:
        cups.roll_out(eui, mis_signed)
    run = Process("local", load_command(
        "basics-station", "--headless", "-u", str(users), "-r", str(users), "--run-time", "1m",
        "--until-upgraded", "--fleet-report", str(tmp_path / "fleet.json"),
        "--cups-url", cups.endpoints["cups"], "--ca", cups.endpoints["ca"],
        "--cups-token", cups.endpoints["tokens"]["cups"],
        "--station-sig-key", str(release.key.key_file), "--exit-code-on-error", "0"), tmp_path)
    code = finish(run, [])
    assert code == 0, run.text()[-4000:]
    report = json.loads((tmp_path / "fleet.json").read_text())
    assert {cups.station(eui)["reportedPackage"] for eui in euis} == {"v0"}
    assert report["succeeded"] == 0 and report["started"] == users
    assert report["failed"] == {REFUSED: users}
    assert report["bytes_downloaded"] == 0
    upgrades = report["requests"]["basics-station upgrade"]
    assert (upgrades["requests"], upgrades["failures"]) == (users, users)

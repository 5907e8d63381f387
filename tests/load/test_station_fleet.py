"""``otaharness load basics-station`` against ``otaharness serve cups``: LoRa Basics Stations
run by a Locust master and two workers (or one local process); the operator registers them,
releases a signed update and rolls it out; judged from the back end's registry (each twin's
reported package) and the master's fleet report."""

from __future__ import annotations

import dataclasses
import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
from fleet_run import Process, Served, finish, free_port, load_command

from otaharness.load.cups_operator import CupsAdmin, Release, Rollout, station_euis
from otaharness.provision.basics_station import (
    prepare_signature_key,
    write_firmware_digest,
)

STATIONS_PER_WORKER = 8
REFUSED = "update refused: abort: no key could verify the signature"


@pytest.fixture
def cups():
    server = Served("cups")
    admin = CupsAdmin(server.endpoints)
    try:
        yield admin
    finally:
        admin.close()
        server.stop()


def registered(cups: CupsAdmin, workers: int, stations_per_worker: int) -> list[str]:
    euis = station_euis(workers, stations_per_worker)
    for eui in euis:
        cups.register(eui)
    return euis


def station_options(cups: CupsAdmin, release: Release, tmp_path: Path, *extra: str) -> list[str]:
    """The run's fleet options: credentials from the back end, the release's key on the stations."""
    return ["--until-upgraded", "--fleet-report", str(tmp_path / "fleet.json"),
            "--cups-url", cups.endpoints["cups"], "--ca", cups.endpoints["ca"],
            "--cups-token", cups.endpoints["tokens"]["cups"],
            "--station-sig-key", str(release.key.key_file), *extra]


def run_locally(cups: CupsAdmin, release: Release, tmp_path: Path, users: int,
                rollout: Rollout | None, *extra: str) -> dict[str, Any]:
    """One local Locust process (no master or workers); the fleet report it wrote."""
    run = Process("local", load_command(
        "basics-station", "--headless", "-u", str(users), "-r", str(users), "--run-time", "2m",
        *station_options(cups, release, tmp_path, *extra)), tmp_path)
    if rollout is not None:
        rollout.start()
    try:
        code = finish(run, [])
    finally:
        if rollout is not None:
            rollout.stop()
    assert code == 0, run.text()[-4000:]
    return json.loads((tmp_path / "fleet.json").read_text())


def reported_packages(cups: CupsAdmin, euis: list[str]) -> set[str]:
    return {cups.station(eui)["reportedPackage"] for eui in euis}


@pytest.mark.load
@pytest.mark.slow
def test_two_workers_upgrade_stations_and_the_master_adds_up_to_the_registry(
        tmp_path: Path, cups: CupsAdmin) -> None:
    euis = registered(cups, 2, STATIONS_PER_WORKER)
    release = cups.release(tmp_path, "v1", 8 * 1024)
    rollout = Rollout(cups, euis, release, from_package="v0")
    rollout.start()
    port = free_port()
    users = len(euis)
    master = Process("master", load_command(
        "basics-station", "--master", "--headless", "--expect-workers", "2",
        "--master-bind-port", str(port), "-u", str(users), "-r", str(users), "--run-time", "4m",
        *station_options(cups, release, tmp_path, "--cups-interval", "3")), tmp_path)
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
        tmp_path: Path, cups: CupsAdmin) -> None:
    users = 8
    euis = registered(cups, 1, users)
    # large enough that the cut lands in the update, whatever checks came before it
    release = cups.release(tmp_path, "v1", 256 * 1024)
    report = run_locally(
        cups, release, tmp_path, users, Rollout(cups, euis, release, from_package="v0"),
        "--station-auth", "token", "--cups-interval", "3", "--cups-resync-interval", "2",
        "--fault", "cut after 64 KiB", "--fault-devices", "25%",
        "--fault-endpoint", cups.endpoints["cups"].split("//")[1], "--exit-code-on-error", "0")
    assert reported_packages(cups, euis) == {"v1"}
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
        tmp_path: Path, cups: CupsAdmin) -> None:
    users = 4
    euis = registered(cups, 1, users)
    # the starter kit's kind of update: version.txt written, no restart, so a station already on
    # the LNS reports the new package there only when it reconnects
    release = cups.release(tmp_path, "v1", restarts=False)
    report = run_locally(
        cups, release, tmp_path, users, Rollout(cups, euis, release, from_package="v0"),
        "--cups-interval", "2", "--reboot-wave-every", "8", "--reboot-wave-share", "100",
        "--exit-code-on-error", "0")  # a wave may break off a CUPS check: a failure, by design
    assert reported_packages(cups, euis) == {"v1"}
    assert report["succeeded"] == users and report["failed"] == {}
    assert report["reboot_waves"] >= 1
    # each update ran at a CUPS check; the package reached the LNS after a wave's reboot only
    assert min(report["time_to_upgrade"].values()) >= 1000
    assert report["requests"]["basics-station CUPS update download"]["requests"] == users


@pytest.mark.load
@pytest.mark.slow
def test_an_update_signed_with_another_key_is_refused_by_every_station_which_says_why(
        tmp_path: Path, cups: CupsAdmin) -> None:
    users = 4
    euis = registered(cups, 1, users)
    release = cups.release(tmp_path / "release", "v1")
    # the release names the stations' key (CUPS sends it), but another key signed the file
    other_key = prepare_signature_key(tmp_path / "other")
    mis_signed = dataclasses.replace(release, signature=write_firmware_digest(
        release.file, other_key.private_key_file, tmp_path / "other" / "update.digest"))
    for eui in euis:
        cups.roll_out(eui, mis_signed)
    report = run_locally(cups, release, tmp_path, users, None, "--exit-code-on-error", "0")
    assert reported_packages(cups, euis) == {"v0"}
    assert report["succeeded"] == 0 and report["started"] == users
    assert report["failed"] == {REFUSED: users}
    assert report["bytes_downloaded"] == 0
    upgrades = report["requests"]["basics-station upgrade"]
    assert (upgrades["requests"], upgrades["failures"]) == (users, users)


@pytest.mark.load
@pytest.mark.slow
def test_stations_losing_power_during_the_update_download_take_it_again_after_booting(
        tmp_path: Path, cups: CupsAdmin) -> None:
    users = 8
    euis = registered(cups, 1, users)
    release = cups.release(tmp_path, "v1", 256 * 1024)
    report = run_locally(
        cups, release, tmp_path, users, Rollout(cups, euis, release, from_package="v0"),
        "--cups-interval", "3", "--fault", "power cut at 100 KiB for 2 s",
        "--fault-devices", "25%", "--exit-code-on-error", "0")
    assert reported_packages(cups, euis) == {"v1"}
    assert report["succeeded"] == users and report["failed"] == {}
    checks = report["requests"]["basics-station CUPS check"]
    # the 2 stations (25 %) lost the session carrying the update; booted, they asked again
    assert checks["failures"] == 2
    assert report["requests"]["basics-station CUPS update download"]["requests"] == users


@pytest.mark.load
@pytest.mark.slow  # each starts Locust (seconds of imports)
@pytest.mark.parametrize("arguments, message", [
    ([], "otaharness load basics-station needs --cups-url"),
    (["--cups-url", "https://127.0.0.1:9", "--station-eui-base", "00-11:22"],
     "argument --station-eui-base: EUI '00-11:22' mixes '-' and ':'"),
])
def test_a_station_run_that_cannot_work_is_refused_before_any_station_starts(
        arguments: list[str], message: str) -> None:
    result = subprocess.run(load_command("basics-station", "--headless", "-u", "1", "-t", "5s",
                                         *arguments), check=False, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 2
    (refusal,) = [line for line in result.stderr.splitlines() if message in line]
    assert refusal.startswith("otaharness load"), refusal  # one plain line, no log prefix
    assert "device host pid" not in result.stderr

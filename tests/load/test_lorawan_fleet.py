"""``otaharness load lorawan`` against ``otaharness serve lorawan fuota``: OTAA end devices on each
worker's own radio medium with the worker's own Basics Stations, run by a Locust master and two
workers; the operator starts one FUOTA campaign once every device has joined; judged from the
FUOTA server's campaign report and events (each device's outcome, its answers and the fragments
it reported) and the master's fleet report.

One run checks both outcomes (a campaign is minutes of real time: issue #19's slow step): one
worker's devices hold the key the image is signed with and upgrade, the other worker's hold
another key and refuse the image with their reason. Locust copies the master's options onto its
workers, so the key is given as a relative path that each worker reads in its own working
folder, as workers on separate machines read their own file at the same path."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

import pytest
from fleet_run import (
    RUN_BOUND,
    Process,
    Served,
    finish,
    free_port,
    interrupt,
    load_command,
    wait_for,
)

from otaharness.load.fuota_operator import (
    CampaignOnceJoined,
    FuotaAdmin,
    prepare_release,
)

DEVICES_PER_WORKER = 2
MASTER_CATCH_UP_BOUND = 120.0  # real seconds for the last upgrades to reach the master
# A gateway's RX2 downlinks (DR0, ≈ 1.4 s on air in the 10 % sub-band) are ≈ 15 s apart, so two
# devices answering through one station make a unicast stage ≈ 15 s longer; with four stations
# per worker (each device stands near one at random) fewer devices share one (measured on
# 2026-12-04: each unicast stage still ≈ 20 s, the campaign's duration is mostly its own timing).
STATIONS_PER_WORKER = 4
VERIFY_KEY_NAME = "fuota-verify.pem"  # each worker's own file, read in its working folder
# Campaign timing for real time: the devices poll every 3 s, so each unicast stage takes a few
# seconds, ≈ 15 s more where two devices share a station; the class C session starts 60 s after
# its setup began, so that every device has answered (two sharing a station, and one lost
# request asked again after unicast_timeout_s) before it goes quiet 5 s ahead of the start; it
# lasts 2^6 s, room for the 9 fragments of 219 octets a 1 KiB signed image and 50 % redundancy
# need at the gateways' 10 % duty cycle (≈ 3.9 s each: 2^5 s would not hold them); the reboot
# countdown, 5 s, outlasts the poll interval, so the DevRebootCountdownAns is sent before it;
# the server asks for the version 10 s after the reboot if the device has not told it.
CAMPAIGN = {"unicast_timeout_s": 20.0, "unicast_attempts": 4, "session_start_delay_s": 60.0,
            "session_timeout_exponent": 6, "reboot_countdown_s": 5,
            "verification_timeout_s": 10.0, "redundancy": 0.5}
REFUSED = "UpImageStatus 1: image corrupt or badly signed"


@pytest.fixture
def fuota():
    server = Served("lorawan fuota")
    admin = FuotaAdmin(server.endpoints)
    try:
        yield admin
    finally:
        admin.close()
        server.stop()


def lorawan_options(fuota: FuotaAdmin, verify_key: str, tmp_path: Path) -> list[str]:
    endpoints = fuota.endpoints
    return ["--fleet-report", str(tmp_path / "fleet.json"),
            "--lns-url", endpoints["lns"], "--ca", endpoints["ca"],
            "--cups-url", endpoints["cups"], "--cups-token", endpoints["tokens"]["cups"],
            "--app-api", endpoints["lorawan-app"], "--app-token", endpoints["tokens"]["lorawan-app"],
            "--fuota-verify-key", verify_key, "--key-sheet", str(tmp_path / "keys"),
            "--poll-interval", "3", "--stations-per-worker", str(STATIONS_PER_WORKER)]


FLEET_LINE = re.compile(r"fleet lorawan: .* (\d+) upgrading, (\d+) upgraded, (\d+) failed")


def upgrades_ended_on_master(master: Process, users: int) -> bool:
    """The master's last fleet line counts every device's upgrade as ended (upgraded or failed)."""
    lines = FLEET_LINE.findall(master.text())
    return bool(lines) and int(lines[-1][0]) == 0 and int(lines[-1][1]) + int(lines[-1][2]) == users


def run_until_finished(fuota: FuotaAdmin, operator: CampaignOnceJoined, master: Process,
                       workers: list[Process], users: int) -> tuple[int, dict[str, Any]]:
    """The operator ends the run once the campaign has finished (a device that ran the new image
    and sent its DevVersionAns stays on until then, for the server's verification, which may ask
    again if that uplink was lost) and the master has heard how each device's upgrade ended (the
    answer that finished the campaign is reported after its uplink's receive windows, then in
    the worker's next stats message, seconds later on a loaded machine); the master's exit code
    and the campaign report."""
    try:
        wait_for(lambda: operator.campaign is not None
                 and fuota.campaign(operator.campaign)["state"] == "finished", RUN_BOUND)
        # liveness only: if the master never counts them, the checks below say what it has
        wait_for(lambda: upgrades_ended_on_master(master, users), MASTER_CATCH_UP_BOUND)
        interrupt(master.popen)  # as Ctrl-C: the master stops the workers and writes its report
        code = finish(master, workers)
    finally:
        operator.stop()
    assert operator.campaign is not None and operator.errors == [], operator.errors
    report = fuota.report(operator.campaign)
    (master.log_path.parent / "campaign.json").write_text(json.dumps(report, indent=1))
    return code, report


def worker_index(worker: Process) -> int:
    """The index Locust gave this worker process (workers are numbered as they connect)."""
    found = re.search(r"worker (\d+): device host pid", worker.text())
    assert found, worker.text()[-3000:]
    return int(found[1])


@pytest.mark.load
@pytest.mark.slow
def test_a_fuota_campaign_over_two_workers_one_holding_another_key_adds_up_to_the_fuota_server(
        tmp_path: Path, fuota: FuotaAdmin, monkeypatch: pytest.MonkeyPatch) -> None:
    users = 2 * DEVICES_PER_WORKER
    release = prepare_release(tmp_path / "release", "1.1.0", 1024)
    other_key = prepare_release(tmp_path / "other", "1.1.0", 16).verify_key_file
    operator = CampaignOnceJoined(fuota, tmp_path / "keys", users, release, **CAMPAIGN)
    operator.start()
    port = free_port()
    master = Process("master", load_command(
        "lorawan", "--master", "--headless", "--expect-workers", "2",
        "--master-bind-port", str(port), "-u", str(users), "-r", str(users), "--run-time", "10m",
        "--exit-code-on-error", "0",  # the refused upgrades are failed entries
        *lorawan_options(fuota, VERIFY_KEY_NAME, tmp_path)), tmp_path)
    workers = []
    for n, key in enumerate((release.verify_key_file, other_key)):
        folder = tmp_path / f"worker{n}"
        folder.mkdir()
        shutil.copyfile(key, folder / VERIFY_KEY_NAME)
        monkeypatch.chdir(folder)  # the worker and its device host read the key from here
        workers.append(Process(f"worker{n}", load_command(
            "lorawan", "--worker", "--master-port", str(port)), tmp_path))
    monkeypatch.undo()
    code, campaign = run_until_finished(fuota, operator, master, workers, users)
    assert code == 0, master.text()[-4000:] + workers[0].text()[-3000:]
    report = json.loads((tmp_path / "fleet.json").read_text())

    # DevEUIs from both workers' indexes, each registered, joined and in the campaign
    euis = sorted(device["dev_eui"] for device in operator.devices)
    assert euis == sorted(f"0004A30B{worker * 1_000_000 + n:08X}" for worker in range(2)
                          for n in range(1, DEVICES_PER_WORKER + 1))
    # the devices with the image's key passed; those with another key refused it, and the
    # device's verdict (DevUpgradeImageAns status 1) is the server's reason and the master's
    right = worker_index(workers[0])
    assert {right, worker_index(workers[1])} == {0, 1}
    outcomes = {device["dev_eui"]: (device["status"], device["reason"])
                for device in campaign["devices"]}
    passing = {eui for eui in euis if int(eui[8:], 16) // 1_000_000 == right}
    assert outcomes == {eui: ("passed", "") if eui in passing else ("failed", REFUSED)
                        for eui in euis}, outcomes

    # the master's totals, summed over both workers, equal what the FUOTA server recorded
    statuses = [status for status, _reason in outcomes.values()]
    assert report["succeeded"] == statuses.count("passed") == DEVICES_PER_WORKER
    assert report["failed"] == {"image refused: corrupt or bad signature": DEVICES_PER_WORKER}
    assert report["started"] == users
    assert sorted(w["most_devices"] for w in report["workers"].values()) == [
        DEVICES_PER_WORKER, DEVICES_PER_WORKER]
    entries = report["requests"]
    joins = entries["lorawan LoRaWAN join"]
    assert joins["requests"] - joins["failures"] == users
    registrations = entries["lorawan HTTP device registration"]
    assert (registrations["requests"], registrations["failures"]) == (users, 0)
    for answer in ("McGroupSetupAns", "FragSessionSetupAns", "McClassCSessionAns",
                   "FragSessionStatusAns", "DevUpgradeImageAns"):
        assert entries[f"lorawan FUOTA {answer}"]["requests"] >= users, answer
    assert entries["lorawan FUOTA DevVersionAns"]["requests"] >= DEVICES_PER_WORKER
    # no reboot into a refused image: the server heard a DevVersionAns from passed devices only
    answers = fuota.call("GET", f"/campaigns/{operator.campaign}/events?kind=answer")
    assert {a["dev_eui"] for a in answers if a.get("command") == "DevVersionAns"} == passing
    fragments = entries["lorawan FUOTA DataFragment"]
    # each device's FragSessionStatusAns per round (a repeated answer repeats the same count)
    heard = sum(max(loss["received"] for loss in device["losses"] if loss["round"] == round_)
                for device in campaign["devices"]
                for round_ in {loss["round"] for loss in device["losses"]})
    assert fragments["requests"] == heard and fragments["failures"] == 0
    assert report["bytes_downloaded"] == fragments["bytes"] > users * 1024
    assert entries["lorawan LoRaWAN uplink"]["requests"] > 0
    assert report["lost_workers"] == []

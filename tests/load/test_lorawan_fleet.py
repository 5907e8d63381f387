"""``otaharness load lorawan`` against ``otaharness serve lorawan fuota``: OTAA end devices on each
worker's own radio medium with the worker's own Basics Station, run by a Locust master and two
workers; the operator starts one FUOTA campaign once every device has joined; judged from the
FUOTA server's campaign report (each device's outcome and the fragments it reported) and the
master's fleet report."""

from __future__ import annotations

import json
import time
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
UPLINK_CYCLE_S = 3.0  # an uplink is reported once its RX2 window (2 s after it) has passed
# Campaign timing for real time: the devices poll every 3 s, so each unicast stage takes a few
# seconds (a gateway's RX2 downlinks at DR0 are ≈ 15 s apart at 10 % duty cycle); the class C
# session starts 60 s after its setup began, so that every device has answered before it goes
# quiet 5 s ahead of the start, and lasts 2^6 s, room for the
# handful of 219-octet fragments a 1 KiB image needs at the gateways' 10 % duty cycle (≈3.9 s
# each); the server asks for the version 10 s after the reboot if the device has not told it.
CAMPAIGN = {"unicast_timeout_s": 20.0, "unicast_attempts": 4, "session_start_delay_s": 60.0,
            "session_timeout_exponent": 6, "reboot_countdown_s": 10,
            "verification_timeout_s": 10.0, "redundancy": 0.5}


@pytest.fixture
def fuota():
    server = Served("lorawan fuota")
    admin = FuotaAdmin(server.endpoints)
    try:
        yield admin
    finally:
        admin.close()
        server.stop()


def lorawan_options(fuota: FuotaAdmin, verify_key: Path, tmp_path: Path) -> list[str]:
    endpoints = fuota.endpoints
    return ["--fleet-report", str(tmp_path / "fleet.json"),
            "--lns-url", endpoints["lns"], "--ca", endpoints["ca"],
            "--cups-url", endpoints["cups"], "--cups-token", endpoints["tokens"]["cups"],
            "--app-api", endpoints["lorawan-app"], "--app-token", endpoints["tokens"]["lorawan-app"],
            "--fuota-verify-key", str(verify_key), "--key-sheet", str(tmp_path / "keys"),
            "--poll-interval", "3"]


def run_until_finished(fuota: FuotaAdmin, operator: CampaignOnceJoined, master: Process,
                       workers: list[Process]) -> tuple[int, dict[str, Any]]:
    """The operator ends the run once the campaign has finished (a device that ran the new image
    and sent its DevVersionAns stays on until then, for the server's verification, which may ask
    again if that uplink was lost); the master's exit code and the campaign report."""
    try:
        wait_for(lambda: operator.campaign is not None
                 and fuota.campaign(operator.campaign)["state"] == "finished", RUN_BOUND)
        time.sleep(UPLINK_CYCLE_S)  # the answer that finished it: its uplink's receive windows
        interrupt(master.popen)  # as Ctrl-C: the master stops the workers and writes its report
        code = finish(master, workers)
    finally:
        operator.stop()
    assert operator.campaign is not None and operator.errors == [], operator.errors
    report = fuota.report(operator.campaign)
    (master.log_path.parent / "campaign.json").write_text(json.dumps(report, indent=1))
    return code, report


@pytest.mark.load
@pytest.mark.slow
def test_two_workers_take_a_fuota_campaign_and_the_master_adds_up_to_the_fuota_server(
        tmp_path: Path, fuota: FuotaAdmin) -> None:
    users = 2 * DEVICES_PER_WORKER
    release = prepare_release(tmp_path / "release", "1.1.0", 1024)
    operator = CampaignOnceJoined(fuota, tmp_path / "keys", users, release, **CAMPAIGN)
    operator.start()
    port = free_port()
    master = Process("master", load_command(
        "lorawan", "--master", "--headless", "--expect-workers", "2",
        "--master-bind-port", str(port), "-u", str(users), "-r", str(users), "--run-time", "10m",
        *lorawan_options(fuota, release.verify_key_file, tmp_path)), tmp_path)
    workers = [Process(f"worker{n}", load_command("lorawan", "--worker", "--master-port",
                                                  str(port)), tmp_path) for n in range(2)]
    code, campaign = run_until_finished(fuota, operator, master, workers)
    assert code == 0, master.text()[-4000:] + workers[0].text()[-3000:]
    report = json.loads((tmp_path / "fleet.json").read_text())

    # DevEUIs from both workers' indexes, each registered, joined and passed the campaign
    euis = sorted(device["dev_eui"] for device in operator.devices)
    assert euis == sorted(f"0004A30B{worker * 1_000_000 + n:08X}" for worker in range(2)
                          for n in range(1, DEVICES_PER_WORKER + 1))
    outcomes = {device["dev_eui"]: device["status"] for device in campaign["devices"]}
    assert outcomes == dict.fromkeys(euis, "passed")

    # the master's totals, summed over both workers, equal what the FUOTA server recorded
    assert report["succeeded"] == list(outcomes.values()).count("passed") == users
    assert report["started"] == users and report["failed"] == {}
    assert sorted(w["most_devices"] for w in report["workers"].values()) == [
        DEVICES_PER_WORKER, DEVICES_PER_WORKER]
    entries = report["requests"]
    joins = entries["lorawan LoRaWAN join"]
    assert joins["requests"] - joins["failures"] == users
    registrations = entries["lorawan HTTP device registration"]
    assert (registrations["requests"], registrations["failures"]) == (users, 0)
    for answer in ("McGroupSetupAns", "FragSessionSetupAns", "McClassCSessionAns",
                   "DevUpgradeImageAns", "DevVersionAns"):
        assert entries[f"lorawan FUOTA {answer}"]["requests"] >= users, answer
    fragments = entries["lorawan FUOTA DataFragment"]
    # each device's FragSessionStatusAns per round (a repeated answer repeats the same count)
    heard = sum(max(loss["received"] for loss in device["losses"] if loss["round"] == round_)
                for device in campaign["devices"]
                for round_ in {loss["round"] for loss in device["losses"]})
    assert fragments["requests"] == heard and fragments["failures"] == 0
    assert report["bytes_downloaded"] == fragments["bytes"] > users * 1024
    assert entries["lorawan LoRaWAN uplink"]["requests"] > 0
    assert report["lost_workers"] == []


@pytest.mark.load
@pytest.mark.slow
def test_an_image_signed_with_another_key_is_refused_by_every_device_with_its_reason(
        tmp_path: Path, fuota: FuotaAdmin) -> None:
    users = 2
    release = prepare_release(tmp_path / "release", "1.1.0", 512)
    other_key = prepare_release(tmp_path / "other", "1.1.0", 16).verify_key_file
    operator = CampaignOnceJoined(fuota, tmp_path / "keys", users, release, **CAMPAIGN)
    operator.start()
    run = Process("local", load_command(
        "lorawan", "--headless", "-u", str(users), "-r", str(users), "--run-time", "10m",
        "--exit-code-on-error", "0",  # the refused upgrades are failed entries
        *lorawan_options(fuota, other_key, tmp_path)), tmp_path)
    code, campaign = run_until_finished(fuota, operator, run, [])
    assert code == 0, run.text()[-4000:]
    report = json.loads((tmp_path / "fleet.json").read_text())

    # the device's verdict (DevUpgradeImageAns status 1) is the server's reason and the master's
    assert {(d["status"], d["reason"]) for d in campaign["devices"]} == {
        ("failed", "UpImageStatus 1: image corrupt or badly signed")}
    assert report["failed"] == {"image refused: corrupt or bad signature": users}
    assert report["succeeded"] == 0 and report["started"] == users
    assert report["requests"]["lorawan FUOTA FragSessionStatusAns"]["requests"] >= users
    assert "lorawan FUOTA DevVersionAns" not in report["requests"]  # no reboot into it

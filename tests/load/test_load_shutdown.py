"""Ending a distributed run from outside, as a platform engineer would: SIGTERM to one worker
mid-run (its host stops, the master stops counting its devices and says so), then Ctrl-C
(SIGINT) to the master (every process ends, the fleet report and Locust's CSV are written, no
device host is left). And hosts killed outright leave none of their devices' private keys on disk."""

from __future__ import annotations

import json
import os
import re
import signal
from pathlib import Path

import pytest
from fleet_run import (
    Process,
    Served,
    alive,
    children_of,
    free_port,
    load_command,
    wait_for,
)

from otaharness.load.cups_operator import CupsAdmin, station_euis

STATIONS_PER_WORKER = 5
BOUND = 120  # real seconds: liveness only


@pytest.mark.load
@pytest.mark.slow
def test_a_worker_terminated_and_then_the_master_interrupted_end_cleanly(tmp_path: Path) -> None:
    server = Served("cups")
    cups = CupsAdmin(server.endpoints)
    # twice the fleet: the stopped worker's users are started again, as new stations, on the other
    for eui in station_euis(2, 2 * STATIONS_PER_WORKER):
        cups.register(eui)
    port, users = free_port(), 2 * STATIONS_PER_WORKER
    master = Process("master", load_command(
        "basics-station", "--master", "--master-bind-port", str(port), "--expect-workers", "2",
        "--headless", "-u", str(users), "-r", str(users), "-t", "10m",
        "--fleet-report", str(tmp_path / "fleet.json"), "--csv", str(tmp_path / "fleet"),
        "--cups-url", server.endpoints["cups"], "--ca", server.endpoints["ca"],
        "--cups-token", server.endpoints["tokens"]["cups"]), tmp_path)
    workers = [Process(f"worker{n}", load_command(
        "basics-station", "--worker", "--master-port", str(port)), tmp_path) for n in (0, 1)]
    try:
        assert wait_for(lambda: f"{users} connected" in master.text(), BOUND), master.text()[-3000:]
        hosts = [pid for worker in workers for pid in children_of(worker.popen.pid)]
        assert len(hosts) == 2
        stopped, kept = workers
        index = int(re.search(r"worker (\d+): device host pid", stopped.text())[1])

        os.kill(stopped.popen.pid, signal.SIGTERM)
        assert stopped.wait(BOUND) == 0, stopped.text()[-3000:]
        assert wait_for(lambda: "quit mid-run" in master.text(), BOUND), master.text()[-3000:]
        assert f"(index {index}) quit mid-run: its {STATIONS_PER_WORKER} devices stopped" in (
            master.text())

        os.kill(master.popen.pid, signal.SIGINT)  # Ctrl-C in the master's terminal
        assert master.wait(BOUND) == 0, master.text()[-3000:]
        assert kept.wait(BOUND) == 0, kept.text()[-3000:]
        assert not any(alive(pid) for pid in hosts)
    finally:
        for process in (master, *workers):
            process.stop()
        cups.close()
        server.stop()
    assert "Traceback" not in master.text() + stopped.text() + kept.text()
    report = json.loads((tmp_path / "fleet.json").read_text())
    assert [(lost["worker_index"], lost["quit"], lost["devices"])
            for lost in report["lost_workers"]] == [(index, True, STATIONS_PER_WORKER)]
    lost_gauges = [gauges for client_id, gauges in report["workers"].items()
                   if client_id.endswith(" (lost)")]
    assert [(g["worker_index"], g["devices"], g["connected"]) for g in lost_gauges] == [
        (index, 0, 0)]
    assert (tmp_path / "fleet_stats.csv").read_text().count("basics-station") >= 2


@pytest.mark.load
@pytest.mark.slow
def test_killed_device_hosts_leave_no_private_keys_behind(tmp_path: Path) -> None:
    """One worker's host gets SIGKILL (its worker removes the host's folder), the other worker
    gets SIGKILL (its host, told by the kernel, removes its own): the stations' keys are gone."""
    server = Served("cups")
    cups = CupsAdmin(server.endpoints)
    for eui in station_euis(2, STATIONS_PER_WORKER):
        cups.register(eui)
    temp = tmp_path / "tmp"  # the load processes' TMPDIR: what they leave is seen here alone
    temp.mkdir()
    port, users = free_port(), 2 * STATIONS_PER_WORKER
    master = Process("master", load_command(
        "basics-station", "--master", "--master-bind-port", str(port), "--expect-workers", "2",
        "--headless", "-u", str(users), "-r", str(users), "-t", "10m",
        "--cups-url", server.endpoints["cups"], "--ca", server.endpoints["ca"],
        "--cups-token", server.endpoints["tokens"]["cups"]), tmp_path, env={"TMPDIR": str(temp)})
    workers = [Process(f"worker{n}", load_command(
        "basics-station", "--worker", "--master-port", str(port)), tmp_path,
        env={"TMPDIR": str(temp)}) for n in (0, 1)]
    try:
        assert wait_for(lambda: f"{users} connected" in master.text(), BOUND), master.text()[-3000:]
        keys = sorted(temp.glob("otaharness-load-host-*/otaharness-stations-*/*/*.key"))
        assert len(keys) >= users, sorted(temp.rglob("*"))  # the check below could fail
        host_killed, worker_killed = workers
        [host] = children_of(host_killed.popen.pid)
        os.kill(host, signal.SIGKILL)
        [orphaned_host] = children_of(worker_killed.popen.pid)
        os.kill(worker_killed.popen.pid, signal.SIGKILL)
        assert wait_for(lambda: not alive(host) and not alive(orphaned_host), BOUND)
        assert wait_for(lambda: not any(temp.iterdir()), 30), sorted(temp.rglob("*"))
        assert "device host ended with status -9" in host_killed.text()
    finally:
        for process in (master, *workers):
            process.stop()
        cups.close()
        server.stop()

"""``otaharness load cpe`` against ``otaharness serve tr069``: a Locust master and two worker
processes on loopback push a fleet of CPEs through a batch upgrade; judged from the ACS's own
records (its admin API) and the master's fleet report, never from the load tool alone."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from fleet_run import (
    RUN_BOUND,
    BatchKeeper,
    Process,
    ServedAcs,
    alive,
    cpe_options,
    finish,
    free_port,
    load_command,
    wait_for,
)


@pytest.fixture
def acs():
    served = ServedAcs()
    try:
        served.upload_seed_files()
        yield served
    finally:
        served.stop()


@pytest.fixture
def keeper(acs: ServedAcs):
    """The operator's batch, every CPE forced into it as it boots."""
    batch = BatchKeeper(acs)
    batch.start()
    yield batch
    batch.stop()


def start_distributed(tmp_path: Path, acs: ServedAcs, users: int, *extra: str,
                      worker_options: tuple[list[str], list[str]] = ([], [])
                      ) -> tuple[Process, list[Process]]:
    port = free_port()
    master = Process("master", load_command(
        "cpe", "--master", "--headless", "--expect-workers", "2", "--master-bind-port", str(port),
        "-u", str(users), "-r", "200", "--run-time", "8m", "--until-upgraded",
        "--fleet-report", str(tmp_path / "fleet.json"), *cpe_options(acs), *extra), tmp_path)
    workers = [Process(f"worker{n}", load_command("cpe", "--worker", "--master-port", str(port),
                                                  *worker_options[n]), tmp_path)
               for n in range(2)]
    return master, workers


def acs_records(acs: ServedAcs) -> tuple[list[dict], Counter]:
    """Every device the ACS knows, and its event log's kinds summed over the fleet."""
    devices = acs.devices()
    kinds: Counter = Counter()
    for device in devices:
        kinds.update(event["kind"] for event in acs.events(device["id"]))
    return devices, kinds


@pytest.mark.load
@pytest.mark.slow
def test_two_workers_upgrade_a_thousand_cpes_and_the_master_adds_up_to_the_acs(
        tmp_path: Path, acs: ServedAcs, keeper: BatchKeeper) -> None:
    # the second worker's Connection Request listener on an address of its own (its own
    # option, not the master's)
    master, workers = start_distributed(tmp_path, acs, 1000,
                                        worker_options=([], ["--cr-host", "127.0.0.2"]))
    code = finish(master, workers)
    assert code == 0, master.text()[-4000:]
    report = json.loads((tmp_path / "fleet.json").read_text())

    # every device upgraded, by the ACS's batch and by what each CPE reported
    batch = acs.batch(keeper.batch_id)
    assert Counter(d["state"] for d in batch["devices"]) == {"installed": 1000}
    devices, kinds = acs_records(acs)
    assert len(devices) == 1000
    assert {d["software_version"] for d in devices} == {"6.48.4"}
    # serials unique across workers, from each worker's index: 500 users each
    serials = {d["serial_number"] for d in devices}
    assert serials == {f"OTAH{worker * 1_000_000 + n:09d}" for worker in (0, 1)
                       for n in range(1, 501)}
    listeners = {(d["serial_number"][:7], d["connection_request_url"].split("/")[2].split(":")[0])
                 for d in devices}  # (worker index part of the serial, listener address)
    assert len(listeners) == 2 and {host for _, host in listeners} == {"127.0.0.1", "127.0.0.2"}

    # the master's totals, summed over both workers, equal what the ACS recorded
    assert report["succeeded"] == 1000 and report["failed"] == {}
    assert report["started"] == 1000
    assert sorted(w["most_devices"] for w in report["workers"].values()) == [500, 500]
    sessions = report["requests"]["cpe CWMP Inform session"]
    assert sessions["failures"] == 0
    assert sessions["requests"] == kinds["inform"]
    assert report["requests"]["cpe upgrade"]["requests"] == kinds["transfer-complete"] == 1000
    assert report["requests"]["cpe HTTP file GET"]["requests"] == 3 * 1000  # XML + 2 packages
    assert report["bytes_downloaded"] == report["requests"]["cpe HTTP file GET"]["bytes"] > 0
    assert set(report["time_to_upgrade"]) == {"p50_ms", "p95_ms", "p99_ms"}
    assert report["lost_workers"] == []
    # no worker went missing (the heartbeat tolerance rides out a starved worker), so no user
    # was re-spawned as a device with a new identifier
    assert report["fleet_asked"] == report["identities"] == 1000
    assert report["identities_beyond_fleet"] == 0


@pytest.mark.load
@pytest.mark.slow
def test_a_worker_killed_mid_run_is_reported_and_the_run_ends_cleanly(
        tmp_path: Path, acs: ServedAcs, keeper: BatchKeeper) -> None:
    # --enable-rebalancing: the lost worker's users start again on the other at once (else
    # when Locust drops the worker, a minute later)
    master, workers = start_distributed(tmp_path, acs, 200, "--enable-rebalancing")
    victim = workers[0]
    try:
        host_line = re.compile(r"worker (\d+): device host pid (\d+)")
        # killed only once the master has heard of the victim's devices: a fleet line counting
        # more than one worker's 100 (before its first report, the master could not know the
        # victim started any, and no identifier would count as beyond the fleet)
        fleet_line = re.compile(r"fleet cpe: (\d+) devices")
        assert wait_for(lambda: host_line.search(victim.text()) and len(acs.devices()) >= 60
                        and any(int(n) > 100 for n in fleet_line.findall(master.text())),
                        RUN_BOUND), victim.text()[-3000:] + master.text()[-3000:]
        index, host_pid = map(int, host_line.search(victim.text()).groups())
        os.kill(victim.popen.pid, signal.SIGKILL)  # the worker only: its host must follow
        killed = time.monotonic()
        assert wait_for(lambda: not alive(host_pid), 60), "the device host outlived its worker"
        # marked missing only after --heartbeat-liveness (20 s) of silence, not Locust's 3 s
        assert wait_for(lambda: "setting state to missing" in master.text(), RUN_BOUND)
        assert time.monotonic() - killed >= 15, master.text()[-3000:]
    except BaseException:
        finish(master, workers)
        raise
    code = finish(master, workers)

    log = master.text()
    assert re.search(rf"worker \S+ \(index {index}\) lost: its \d+ devices", log), log[-4000:]
    assert code == 0, log[-4000:]
    report = json.loads((tmp_path / "fleet.json").read_text())
    assert [lost["worker_index"] for lost in report["lost_workers"]] == [index]
    # the surviving worker took the lost worker's users over and upgraded all of them
    survivor = [w for w in report["workers"].values() if w["worker_index"] != index]
    assert [w["most_devices"] for w in survivor] == [200]
    assert report["succeeded"] >= 200 and report["failed"] == {}
    # the lost worker's devices came back on the survivor as new devices, and the run says so
    # (the ACS's count may differ by what the victim started after its last report)
    beyond = report["identities_beyond_fleet"]
    assert beyond > 0 and report["identities"] == 200 + beyond
    assert f"{beyond} devices started with new identifiers beyond the fleet of 200" in log


def test_the_cli_and_emulate_never_import_locust() -> None:
    """Locust monkey-patches its importer with gevent: only `otaharness load`'s own process may
    import it."""
    probe = ("import sys\n"
             "import otaharness.cli\n"
             "from otaharness.cli import main\n"
             "try:\n"
             "    main(['emulate', '--help'])\n"
             "except SystemExit:\n"
             "    pass\n"
             "print(sorted(m for m in ('locust', 'gevent') if m in sys.modules),\n"
             "      file=sys.stderr)\n")
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                            timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stderr.strip().splitlines()[-1] == "[]"
    assert "gevent" not in sys.modules and "locust" not in sys.modules  # nor pytest's process


def run_local(tmp_path: Path, acs: ServedAcs, users: int, *extra: str) -> tuple[int, dict, str]:
    """One process, no workers: Locust's local runner with the same device host."""
    run = Process("local", load_command(
        "cpe", "--headless", "-u", str(users), "-r", str(users),
        "--fleet-report", str(tmp_path / "fleet.json"), *cpe_options(acs), *extra), tmp_path)
    code = finish(run, [])
    return code, json.loads((tmp_path / "fleet.json").read_text()), run.text()


@pytest.mark.load
@pytest.mark.slow
def test_a_share_of_the_fleet_with_a_cut_download_fails_as_the_acs_records_it(
        tmp_path: Path, acs: ServedAcs, keeper: BatchKeeper) -> None:
    files = acs.endpoints["files"].removeprefix("https://")
    code, report, log = run_local(tmp_path, acs, 20, "--until-upgraded", "--run-time", "8m",
                                  "--fault", "cut after 3 KiB", "--fault-endpoint", files,
                                  "--fault-devices", "25%", "--exit-code-on-error", "0")
    assert code == 0, log[-4000:]
    states = Counter(d["state"] for d in acs.batch(keeper.batch_id)["devices"])
    assert states == {"installed": 15, "error": 5}  # every 4th device: 4, 8, ..., 20
    assert report["succeeded"] == 15
    assert sum(report["failed"].values()) == 5
    assert all(reason.startswith("90") for reason in report["failed"])  # TransferComplete faults
    upgrade = report["requests"]["cpe upgrade"]
    assert (upgrade["requests"], upgrade["failures"]) == (20, 5)


@pytest.mark.load
@pytest.mark.slow
def test_reboot_waves_reach_the_acs_as_boot_informs(tmp_path: Path, acs: ServedAcs) -> None:
    code, report, log = run_local(tmp_path, acs, 20, "--run-time", "14s",
                                  "--reboot-wave-every", "3", "--reboot-wave-share", "50")
    assert code == 0, log[-4000:]
    assert report["reboot_waves"] >= 2
    devices, _ = acs_records(acs)
    boots = {d["serial_number"]: sum(1 for e in acs.events(d["id"]) if e["kind"] == "inform"
                                     and "1 BOOT" in {code for code, _ in e["detail"]["events"]})
             for d in devices}
    # the first two waves took one half of the fleet each: every CPE booted again at least once
    assert len(boots) == 20 and all(count >= 2 for count in boots.values()), boots


@pytest.mark.load
@pytest.mark.slow  # each starts Locust (seconds of imports)
@pytest.mark.parametrize("arguments, message", [
    (["--acs-url", "https://127.0.0.1:9", "--fault", "cut after bogus"],
     "argument --fault: in link fault 'cut after bogus': not a size: 'bogus'"),
    (["--acs-url", "https://127.0.0.1:9", "--stages", "200 in no time"],
     "argument --stages: not a duration: 'no time'"),
    (["--acs-url", "https://127.0.0.1:9", "--stages", "200 at 10s"],
     "a stage is 'DEVICES in DURATION' (e.g. '200 in 10s'), not '200 at 10s'"),
    ([], "otaharness load cpe needs --acs-url"),
])
def test_a_run_that_cannot_work_is_refused_before_any_device_starts(arguments, message) -> None:
    result = subprocess.run(load_command("cpe", "--headless", "-u", "1", "-t", "5s", *arguments),
                            capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 2
    (refusal,) = [line for line in result.stderr.splitlines() if message in line]
    assert refusal.startswith("otaharness load"), refusal  # one plain line, no log prefix
    assert "device host pid" not in result.stderr

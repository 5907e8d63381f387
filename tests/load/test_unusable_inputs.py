"""``otaharness load`` given something its devices cannot use (a missing key file, a CA that does
not load, no AWS credentials, a back end that does not answer): one line saying what, no
traceback, the run ended at once with exit code 2 (not idle until --run-time with exit 0), and
no device host left behind."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest
from fleet_run import Process, alive, finish, free_port, load_command

# a liveness bound only: before the fix each run idled to its 10-minute --run-time
BOUND = 120


def host_pids(text: str) -> list[int]:
    return [int(pid) for pid in re.findall(r"device host pid (\d+)", text)]


def assert_ended_cleanly(output: str) -> None:
    assert "Traceback" not in output, output[-3000:]
    assert "beyond the fleet" not in output, output[-3000:]  # a run shorter than 1 s
    pids = host_pids(output)
    assert pids and not any(alive(pid) for pid in pids)


@pytest.mark.load
@pytest.mark.slow  # each starts Locust (seconds of imports)
@pytest.mark.parametrize("kind, arguments, message", [
    ("basics-station", ["--cups-url", "https://127.0.0.1:9", "--station-sig-key", "missing.key"],
     "the basics-station devices cannot start: [Errno 2] No such file or directory: 'missing.key'"),
    ("lorawan", ["--lns-url", "wss://127.0.0.1:9", "--app-api", "https://127.0.0.1:9",
                 "--fuota-verify-key", "missing.pem"],
     "the lorawan devices cannot start: [Errno 2] No such file or directory: 'missing.pem'"),
    ("aws-tracker", ["--mqtt", "mqtts://127.0.0.1:9", "--aws-api", "https://127.0.0.1:9",
                     "--ca", "missing-ca.pem"],
     "the aws-tracker devices cannot start: --ca missing-ca.pem: [Errno 2] No such file"),
    ("aws-tracker", ["--mqtt", "mqtts://127.0.0.1:9", "--aws-api", "https://127.0.0.1:9"],
     "the aws-tracker devices cannot start: --aws-api needs AWS credentials on this host"),
])
def test_devices_that_cannot_start_end_the_run_with_one_line(
        tmp_path: Path, kind: str, arguments: list[str], message: str) -> None:
    environment = {name: value for name, value in os.environ.items()
                   if not name.startswith("AWS_")}
    environment["AWS_SHARED_CREDENTIALS_FILE"] = environment["AWS_CONFIG_FILE"] = os.devnull
    result = subprocess.run(load_command(kind, "--headless", "-u", "2", "-r", "2", "-t", "10m",
                                         *arguments), cwd=tmp_path, env=environment,
                            capture_output=True, text=True, timeout=BOUND, check=False)
    assert result.returncode == 2, result.stderr[-3000:]
    assert message in result.stderr
    assert_ended_cleanly(result.stderr)


@pytest.mark.load
@pytest.mark.slow
def test_a_worker_whose_devices_cannot_start_ends_the_masters_run(tmp_path: Path) -> None:
    port = free_port()
    master = Process("master", load_command(
        "basics-station", "--master", "--master-bind-port", str(port), "--expect-workers", "1",
        "--headless", "-u", "2", "-r", "2", "-t", "10m", "--cups-url", "https://127.0.0.1:9",
        "--station-sig-key", "missing.key"), tmp_path)
    worker = Process("worker", load_command(
        "basics-station", "--worker", "--master-port", str(port)), tmp_path)
    assert finish(master, [worker]) == 2, master.text()[-3000:]
    assert worker.popen.returncode == 2, worker.text()[-3000:]
    assert ("worker 0: the basics-station devices cannot start: [Errno 2] No such file or "
            "directory: 'missing.key'; stopping the run") in master.text()
    assert_ended_cleanly(worker.text())


@pytest.mark.load
@pytest.mark.slow
def test_devices_that_fail_to_start_alike_are_said_once_and_counted_and_try_again(tmp_path: Path) -> None:
    result = subprocess.run(load_command(
        "basics-station", "--headless", "-u", "2", "-r", "2", "-t", "6s",
        "--cups-url", "https://127.0.0.1:9", "--cups-token", "t0ken"),
        capture_output=True, text=True, timeout=BOUND, check=False)
    assert result.returncode == 1  # Locust's --exit-code-on-error: failed request entries
    lines = result.stderr.splitlines()
    first = [line for line in lines
             if "device 0016C001F0000001 did not start (ClientConnectorError: Cannot connect" in line]
    assert len(first) == 1 and "trying again" in first[0], result.stderr[-3000:]
    # the second fails the same way within 10 s: counted, and said when the worker ends
    alike = [line for line in lines if "1 more device(s) did not start alike (ClientConnectorError: "
             "Cannot connect" in line]
    assert len(alike) == 1 and alike[0].endswith("0016C001F0000002; each tries again"), result.stderr[-3000:]
    assert "device 0016C001F0000002 did not start" not in result.stderr
    # tried again after 1 s and 2 s more: three failed credential requests per station at least
    failures = re.findall(r"HTTP station credentials\s+(\d+)\s+(\d+)\(", result.stderr)
    assert failures and failures[-1][0] == failures[-1][1] and int(failures[-1][0]) >= 6, (
        result.stderr[-3000:])
    assert "t0ken" not in result.stdout + result.stderr
    assert_ended_cleanly(result.stderr)


@pytest.mark.load
@pytest.mark.slow
def test_a_worker_says_which_of_its_own_fleet_options_the_master_replaced(tmp_path: Path) -> None:
    port = free_port()
    master = Process("master", load_command(
        "basics-station", "--master", "--master-bind-port", str(port), "--expect-workers", "1",
        "--headless", "-u", "1", "-r", "1", "-t", "3s", "--cups-url", "https://127.0.0.1:9"),
        tmp_path)
    worker = Process("worker", load_command(
        "basics-station", "--worker", "--master-port", str(port), "--station-package", "v9",
        "--cups-token", "t0ken", "--cr-host", "127.0.0.2"), tmp_path)
    finish(master, [worker])
    assert ("worker 0: --cups-token, --station-package given here replaced by the master's: "
            "fleet options go to the master") in worker.text(), worker.text()[-3000:]
    assert "t0ken" not in worker.text() + master.text()
    assert_ended_cleanly(worker.text())

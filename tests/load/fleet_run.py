"""What the load tests drive from outside, as a user would: ``otaharness serve tr069`` in a child
process, the operator's batch through the admin API, and ``otaharness load`` master and worker
processes. Nothing here imports Locust (pytest's process must stay unpatched)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from processes import alive, children_of  # noqa: F401 (the load tests import them from here)

from otaharness.load.acs_operator import AcsAdmin, BatchKeeper  # noqa: F401 (tests use both)


def interrupt(popen: subprocess.Popen[bytes]) -> None:
    """SIGINT to a child's process group (as Ctrl-C would), SIGKILL if it hangs."""
    if popen.poll() is None:
        os.killpg(popen.pid, signal.SIGINT)
        try:
            popen.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(popen.pid, signal.SIGKILL)
            popen.wait(30)


class Process:
    """A child process whose output goes to a file (read when a check fails)."""

    def __init__(self, name: str, argv: list[str], folder: Path,
                 env: dict[str, str] | None = None) -> None:
        self.name = name
        self.log_path = folder / f"{name}.log"
        self._log = open(self.log_path, "wb")
        self.popen = subprocess.Popen(argv, stdout=self._log, stderr=subprocess.STDOUT,
                                      start_new_session=True,
                                      env=None if env is None else {**os.environ, **env})

    def text(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait(self, timeout: float) -> int:
        return self.popen.wait(timeout)

    def stop(self) -> None:
        interrupt(self.popen)
        self._log.close()


RUN_BOUND = 600.0  # real seconds a run may take before a test gives up (liveness only)


def finish(master: Process, workers: list[Process]) -> int:
    try:
        code = master.wait(RUN_BOUND)
        for worker in workers:
            worker.wait(60)
        return code
    finally:
        for process in (master, *workers):
            process.stop()


class Served:
    """``otaharness serve FLOW --json`` in a child process (FLOW: one or more, e.g. "lorawan
    fuota"); ``endpoints``: what it printed."""

    def __init__(self, flow: str) -> None:
        self._err = tempfile.TemporaryFile()  # noqa: SIM115 (closed in stop())
        self.process = subprocess.Popen(
            [sys.executable, "-m", "otaharness.cli", "serve", *flow.split(), "--json"],
            stdout=subprocess.PIPE, stderr=self._err, start_new_session=True)
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if not line:
            self._err.seek(0)
            raise AssertionError(f"serve {flow} did not start: {self._err.read()[-3000:]!r}")
        self.endpoints = json.loads(line)

    def stop(self) -> None:
        interrupt(self.process)
        self._err.close()


class ServedAcs(AcsAdmin):
    """``otaharness serve tr069 --json`` in a child process, and the operator's calls on it."""

    def __init__(self) -> None:
        self.served = Served("tr069")
        super().__init__(self.served.endpoints)

    def stop(self) -> None:
        self.close()
        self.served.stop()


def load_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "otaharness.cli", "load", *args]


def cpe_options(acs: ServedAcs) -> list[str]:
    return ["--acs-url", acs.endpoints["acs"], "--ca", acs.endpoints["ca"],
            "--periodic-interval", "3600", "--boot-seconds", "1"]


def free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_for(condition, timeout: float, every: float = 0.5) -> bool:
    """Poll ``condition`` until true or ``timeout`` real seconds (a liveness bound, not a
    performance claim)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(every)
    return condition()

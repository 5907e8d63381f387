"""`otaharness serve` and `otaharness emulate` as a user runs them: processes, JSON on stdout."""

from __future__ import annotations

import json
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

OTAHARNESS = [sys.executable, "-m", "otaharness.cli"]
# A guard against a hung process only (no test asserts how long anything takes).
PATIENCE = 120.0


@contextmanager
def served(*flows: str, cwd: Path) -> Iterator[dict[str, Any]]:
    """`otaharness serve FLOWS --json`: its endpoints (and tokens) while it runs."""
    server = subprocess.Popen([*OTAHARNESS, "serve", *flows, "--json"], cwd=cwd,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = server.stdout.readline()
        if not line:
            raise AssertionError(f"serve {flows} printed nothing: {server.stderr.read()[-2000:]}")
        yield json.loads(line)
    finally:
        server.send_signal(signal.SIGINT)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


class Emulation:
    """`otaharness emulate KIND ... --json` in a process; its JSON lines read as they come."""

    def __init__(self, *arguments: str, cwd: Path) -> None:
        self.process = subprocess.Popen([*OTAHARNESS, "emulate", *arguments, "--json"], cwd=cwd,
                                        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.events: list[dict[str, Any]] = []
        self.summary: dict[str, Any] | None = None
        self.stderr = ""
        self.ended = False
        self._lines: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.process.stdout:
            self._lines.put(line)
        self._lines.put(None)

    def _take(self, timeout: float) -> bool:
        try:
            line = self._lines.get(timeout=timeout)
        except queue.Empty:
            return True
        if line is None:
            self.ended = True
            return False
        record = json.loads(line)
        if record.get("event") == "summary":
            self.summary = record
        else:
            self.events.append(record)
        return True

    def wait_for(self, what: str, predicate: Callable[[list[dict[str, Any]]], bool]) -> None:
        deadline = time.monotonic() + PATIENCE
        while not predicate(self.events):
            if self.ended or time.monotonic() > deadline:
                self.stop()
                raise AssertionError(f"never saw {what}; events: {self.events[-30:]}; "
                                     f"stderr: {self.stderr[-3000:]}")
            self._take(0.2)

    def count(self, event: str) -> int:
        return sum(1 for record in self.events if record["event"] == event)

    def devices_with(self, event: str) -> set[str]:
        return {record["device"] for record in self.events if record["event"] == event}

    def stop(self, signum: int = signal.SIGTERM) -> int:
        """End it as a user does (SIGTERM or Ctrl-C); read what is left, the summary last."""
        if self.process.poll() is None:
            self.process.send_signal(signum)
        try:
            status = self.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.process.kill()
            status = self.process.wait()
        while not self.ended and self._take(5):
            pass
        self.stderr = self.process.stderr.read()
        return status


def parses_as_iso_utc(stamp: str) -> bool:
    """``2026-12-03T23:12:01.123Z``: ISO 8601, UTC, milliseconds."""
    parsed = datetime.fromisoformat(stamp)  # Python 3.11 reads the Z
    return stamp.endswith("Z") and parsed.utcoffset().total_seconds() == 0 and len(
        stamp.split(".")[-1]) == 4

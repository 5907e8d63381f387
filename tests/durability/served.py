"""``otaharness serve FLOW --json --state-dir DIR`` as a child process that tests kill with
SIGKILL mid-write and start again on the same state, reaching it from outside as a user's tools
would."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import signal
import ssl
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
from processes import alive, descendants

START_TIMEOUT = 60.0
CHILD_EXIT_TIMEOUT = 10.0



class Served:
    def __init__(self, flow: str, state_dir: Path) -> None:
        self.flow = flow
        self.state_dir = state_dir
        self.process: subprocess.Popen[bytes] | None = None
        self.endpoints: dict[str, Any] = {}

    def start(self) -> dict[str, Any]:
        self._log = tempfile.TemporaryFile()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "otaharness.cli", "serve", self.flow, "--json",
             "--state-dir", str(self.state_dir)],
            stdout=subprocess.PIPE, stderr=self._log, start_new_session=True)
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if not line:
            self._log.seek(0)
            raise AssertionError(f"serve {self.flow} did not start: "
                                 f"{self._log.read()[-3000:].decode(errors='replace')}")
        self.endpoints = json.loads(line)
        return self.endpoints

    def log_text(self) -> str:
        """What the server wrote to stderr so far."""
        self._log.seek(0)
        return self._log.read().decode(errors="replace")

    def kill9(self) -> None:
        """SIGKILL to the server's process group, nothing flushed. What it started in sessions of
        its own (mosquitto) is not in that group: it must end by itself once the server is gone,
        as after any crash, or it would hold its port and files for good."""
        assert self.process is not None
        children = descendants(self.process.pid)
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(30)
        deadline = time.monotonic() + CHILD_EXIT_TIMEOUT
        while (survivors := [pid for pid in children if alive(pid)]) and time.monotonic() < deadline:
            time.sleep(0.05)
        for pid in survivors:  # not left behind by a failing test either
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        assert not survivors, f"serve {self.flow}'s children outlived its SIGKILL: {survivors}"
        # nor its temporary folder (the CAs' private keys, mosquitto's passwords): the PKI's
        # folder, where the CA file it printed is, lies inside it
        temporary = Path(self.endpoints["ca"]).parent.parent
        assert temporary.name.startswith("otaharness-serve-"), temporary
        assert not temporary.exists(), f"serve {self.flow}'s {temporary} outlived its SIGKILL"

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.kill9()
        self._log.close()

    def tls(self) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=self.endpoints["ca"])
        context.check_hostname = False  # the server names localhost / 127.0.0.1
        return context


Write = Callable[[aiohttp.ClientSession, int], Awaitable[None]]


async def write_until_killed(served: Served, write: Write, *, kill_after: int,
                             concurrency: int = 8) -> set[int]:
    """Writers call ``write(session, i)`` for i = 0, 1, 2, … (``write`` raises unless the server
    acknowledged with a 2xx); once ``kill_after`` writes were acknowledged the server gets SIGKILL
    while the other writers are mid-request. Returns the acknowledged i."""
    acknowledged: set[int] = set()
    numbers = itertools.count()
    killed = asyncio.Event()

    async def writer(session: aiohttp.ClientSession) -> None:
        while not killed.is_set():
            number = next(numbers)
            try:
                await write(session, number)
            except (aiohttp.ClientError, ConnectionError, asyncio.TimeoutError):
                if killed.is_set():
                    return
                raise
            acknowledged.add(number)  # a 2xx arrived: the server said it has it
            if len(acknowledged) >= kill_after and not killed.is_set():
                served.kill9()
                killed.set()

    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session:
        await asyncio.gather(*(writer(session) for _ in range(concurrency)))
    return acknowledged

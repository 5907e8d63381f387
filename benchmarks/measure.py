"""What every benchmark does the same way: memory, timing, the per-size fresh process, reporting.

Figures are reported twice: absolute (rates on this machine) and as a ratio against a baseline
measured in the same run (same process, same servers), because only the ratio travels between
machines and survives other work running meanwhile.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import multiprocessing
import os
import platform
import resource
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterable
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

from otaharness.runtime.clock import VirtualClock, VirtualEventLoop
from otaharness.runtime.runtime import raise_fd_limit

T = TypeVar("T")
Figures = dict[str, Any]


def rss_bytes(pid: int | str = "self") -> int:
    """The resident set size of this process, or of process ``pid`` (Linux)."""
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS in /proc/{pid}/status")


def peak_rss_mib() -> float:
    """The highest resident set size this process has had, in MiB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


RESULTS_DIR = Path(__file__).resolve().parent / "results"


def save_results(name: str, results: Iterable[Figures], *, size_key: str = "devices",
                 description: str = "") -> Path:
    """Merge per-size figures into ``benchmarks/results/<name>.json`` (a size measured again
    replaces its old entry), with when, where and under what load each was measured."""
    path = RESULTS_DIR / f"{name}.json"
    document: dict[str, Any] = {"results": []}
    if path.exists():
        document = json.loads(path.read_text())
    stamp = {"measured": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
             "machine": machine(), "load_average": [round(x, 2) for x in os.getloadavg()]}
    fresh = {result[size_key]: {**result, **stamp} for result in results}
    kept = [result for result in document["results"] if result.get(size_key) not in fresh]
    document["results"] = sorted([*kept, *fresh.values()], key=lambda result: result[size_key])
    if description:
        document["description"] = description
    RESULTS_DIR.mkdir(exist_ok=True)
    path.write_text(json.dumps(document, indent=1) + "\n")
    return path


def machine() -> str:
    """CPU model, cores and Python, for the record beside a figure."""
    model = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            model = next(line.split(":", 1)[1].strip() for line in cpuinfo
                         if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return f"{model}, {os.cpu_count()} cores, Python {platform.python_version()}"


class ServedFlows:
    """``otaharness serve FLOW… --json`` as a child process, measured from outside as a user's
    tools would reach it: ``endpoints`` is what it printed (URLs, ``ca``, ``tokens``)."""

    def __init__(self, *flows: str, options: Iterable[str] = ()) -> None:
        self.arguments = [sys.executable, "-m", "otaharness.cli", "serve", *flows, "--json", *options]
        self.endpoints: dict[str, Any] = {}

    def __enter__(self) -> ServedFlows:
        self._log = tempfile.TemporaryFile()
        self.process = subprocess.Popen(self.arguments, stdout=subprocess.PIPE, stderr=self._log)
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if not line:
            self._log.seek(0)
            raise RuntimeError(f"serve did not start: {self._log.read()[-2000:].decode(errors='replace')}")
        self.endpoints = json.loads(line)
        return self

    @property
    def pid(self) -> int:
        return self.process.pid

    def __exit__(self, *exc_info: object) -> None:
        self.process.send_signal(signal.SIGINT)
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self._log.close()


class MemoryGrowth:
    """Growth of the resident set since construction, per unit (emulated device) in KiB."""

    def __init__(self) -> None:
        self.before = rss_bytes()

    def per_unit_kib(self, units: int) -> float:
        return (rss_bytes() - self.before) / units / 1024


class Stopwatch:
    """Real seconds (and, given the virtual clock, simulated seconds) spent inside ``with``; also
    the CPU seconds of this process, which on a machine shared with other work say what the
    run cost where wall seconds say mostly how busy the machine was."""

    def __init__(self, clock: VirtualClock | None = None) -> None:
        self.clock = clock
        self.seconds = 0.0
        self.cpu_seconds = 0.0
        self.virtual_seconds = 0.0

    def __enter__(self) -> Stopwatch:
        self._started = time.perf_counter()
        self._cpu_started = time.process_time()
        self._virtual_started = self.clock.monotonic() if self.clock is not None else 0.0
        return self

    def virtual_so_far(self) -> float:
        """Simulated seconds since the start (inside the ``with``)."""
        assert self.clock is not None, "a Stopwatch without a clock counts no simulated time"
        return self.clock.monotonic() - self._virtual_started

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.seconds = time.perf_counter() - self._started
        self.cpu_seconds = time.process_time() - self._cpu_started
        if self.clock is not None:
            self.virtual_seconds = self.virtual_so_far()


async def gather_limited(limit: int, coroutines: Iterable[Awaitable[T]]) -> list[T]:
    """Await all, at most ``limit`` at a time (as a fleet would not open everything at once)."""
    gate = asyncio.Semaphore(limit)

    async def gated(coroutine: Awaitable[T]) -> T:
        async with gate:
            return await coroutine

    return await asyncio.gather(*(gated(coroutine) for coroutine in coroutines))


async def run_until_done(clock: VirtualClock, awaitable: Awaitable[T], timeout: float = 24 * 3600) -> T:
    """Drive the virtual clock until ``awaitable`` is done (``timeout`` in virtual seconds)."""
    task = asyncio.ensure_future(awaitable)
    if not await clock.run_until(task.done, timeout=timeout):
        task.cancel()
        raise AssertionError(f"not done after {timeout:g} virtual seconds")
    return task.result()


def on_virtual_clock(scenario: Callable[[VirtualClock, Path], Awaitable[T]], *,
                     real_time_limit: float = 120.0) -> T:
    """Run ``scenario(clock, workdir)`` on a fresh virtual-clock loop with a temporary directory."""
    raise_fd_limit()
    clock = VirtualClock(real_time_limit=real_time_limit)
    loop = VirtualEventLoop(clock)
    asyncio.set_event_loop(loop)
    try:
        with tempfile.TemporaryDirectory(prefix="bench-") as workdir:
            return loop.run_until_complete(scenario(clock, Path(workdir)))
    finally:
        loop.run_until_complete(loop.shutdown_default_executor())
        loop.close()
        asyncio.set_event_loop(None)
        clock.close()


def in_fresh_process(function: Callable[..., T], *arguments: Any) -> T:
    """``function(*arguments)`` in a new interpreter, so that one size's freed memory does not
    hide the next one's growth (``function`` must be importable: a module-level name)."""
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        return pool.apply(function, arguments)


def report(benchmark: str, figures: Figures, human: str) -> None:
    """One JSON line (for tools) and one line for people."""
    print(json.dumps({"benchmark": benchmark, **figures}, sort_keys=False), flush=True)
    print(human, flush=True)


def run_sizes(benchmark: str, measure: Callable[..., Figures], sizes: Iterable[tuple[Any, ...]],
              describe: Callable[[Figures], str]) -> list[Figures]:
    """``measure(*size)`` in a fresh process per size, each reported as it finishes."""
    results = []
    for size in sizes:
        figures = in_fresh_process(measure, *size)
        report(benchmark, figures, describe(figures))
        results.append(figures)
    return results

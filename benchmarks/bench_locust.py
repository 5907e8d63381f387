"""How ``otaharness load`` scales with Locust workers: N CPEs through a TR-069 batch upgrade by a
master and 1, then 2, workers on this machine.

Run from the repository root: python -m benchmarks.bench_locust [--devices 1000] [--workers 1 2]

Per worker count, fresh: ``otaharness serve tr069`` in a child process (real time, TLS), the
operator's files, group and batch through its admin API (``otaharness.load.acs_operator``: each
CPE forced into the batch as it boots), and ``otaharness load cpe --master --headless
--until-upgraded`` with that many ``--worker`` processes, all on loopback. Timed in real seconds
from the master's start to its end (spawning at 500 devices/s included); every device must
have upgraded (the master's fleet report and the ACS's batch agree) before a figure is printed.
Reported: devices per worker, upgrades per second, the device hosts' peak resident set per
device they ran, and the master's time to upgrade p50/p95.

The ratio "upgrades/s with 2 workers / with 1" is how the load spreads over workers on this
machine; on a 2-core machine that also runs the ACS it is bounded by the cores, not by Locust.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

from benchmarks.measure import ServedFlows, report, rss_bytes
from otaharness.load.acs_operator import AcsAdmin, BatchKeeper

KIB = 1024
HOST_PID = re.compile(rb"device host pid (\d+)")


class HostMemory(threading.Thread):
    """The device hosts' resident sets, sampled every half second from the workers' logs."""

    def __init__(self, logs: list[Path]) -> None:
        super().__init__(daemon=True)
        self.logs = logs
        self.peak: dict[int, int] = {}
        self.running = True

    def run(self) -> None:
        while self.running:
            for log in self.logs:
                for pid in HOST_PID.findall(log.read_bytes()):
                    try:
                        self.peak[int(pid)] = max(self.peak.get(int(pid), 0), rss_bytes(int(pid)))
                    except (OSError, RuntimeError):
                        pass
            time.sleep(0.5)


def measure(devices: int, workers: int, folder: Path) -> dict[str, Any]:
    with ServedFlows("tr069") as served:
        admin = AcsAdmin(served.endpoints)
        admin.upload_seed_files()
        keeper = BatchKeeper(admin)
        keeper.start()
        fleet_report = folder / f"fleet-{workers}.json"
        base = [sys.executable, "-m", "otaharness.cli", "load", "cpe"]
        port = 5557 + 10 * workers
        logs = [folder / f"worker-{workers}-{n}.log" for n in range(workers)]
        started = time.monotonic()
        master = subprocess.Popen(
            [*base, "--master", "--headless", "--expect-workers", str(workers),
             "--master-bind-port", str(port), "-u", str(devices), "-r", "500",
             "--until-upgraded", "--run-time", "20m", "--fleet-report", str(fleet_report),
             "--acs-url", served.endpoints["acs"], "--ca", served.endpoints["ca"],
             "--periodic-interval", "3600", "--boot-seconds", "1"],
            stdout=subprocess.DEVNULL, stderr=open(folder / f"master-{workers}.log", "wb"))
        processes = [subprocess.Popen([*base, "--worker", "--master-port", str(port)],
                                      stdout=subprocess.DEVNULL, stderr=open(log, "wb"))
                     for log in logs]
        memory = HostMemory(logs)
        memory.start()
        try:
            code = master.wait()
            seconds = time.monotonic() - started
            for process in processes:
                process.wait(120)
        finally:  # an interrupted benchmark leaves no load process behind
            memory.running = False
            for process in (master, *processes):
                if process.poll() is None:
                    process.terminate()
                    process.wait(60)
            keeper.stop()
        fleet = json.loads(fleet_report.read_text())
        states = Counter(d["state"] for d in admin.batch(keeper.batch_id)["devices"])
        admin.close()
    if code != 0 or fleet["succeeded"] != devices or states != {"installed": devices}:
        raise AssertionError(f"not every CPE upgraded: exit {code}, {fleet['succeeded']} "
                             f"upgraded, failed {fleet['failed']}, ACS {dict(states)}")
    peak = sum(memory.peak.values())
    return {"devices": devices, "workers": workers, "devices_per_worker": devices / workers,
            "seconds": round(seconds, 2), "upgrades_per_s": round(devices / seconds, 1),
            "host_rss_per_device_kib": round(peak / devices / KIB, 1),
            "upgrade_p50_s": fleet["time_to_upgrade"]["p50_ms"] / 1000,
            "upgrade_p95_s": fleet["time_to_upgrade"]["p95_ms"] / 1000}


def describe(figures: dict[str, Any]) -> str:
    return (f"{figures['devices']} CPEs on {figures['workers']} worker(s) "
            f"({figures['devices_per_worker']:.0f} each): {figures['seconds']:.1f} s, "
            f"{figures['upgrades_per_s']:.1f} upgrades/s, host RSS "
            f"{figures['host_rss_per_device_kib']:.0f} KiB per device, time to upgrade p50 "
            f"{figures['upgrade_p50_s']:.1f} s, p95 {figures['upgrade_p95_s']:.1f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, default=1000)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    arguments = parser.parse_args()
    results = []
    with tempfile.TemporaryDirectory(prefix="bench-locust-") as folder:
        for workers in arguments.workers:
            figures = measure(arguments.devices, workers, Path(folder))
            report("bench_locust", figures, describe(figures))
            results.append(figures)
    if len(results) > 1:
        ratio = results[-1]["upgrades_per_s"] / results[0]["upgrades_per_s"]
        print(json.dumps({"benchmark": "bench_locust", "scaling": round(ratio, 2),
                          "workers": [r["workers"] for r in results]}))
        print(f"upgrades/s with {results[-1]['workers']} workers = {ratio:.2f} x with "
              f"{results[0]['workers']}")


if __name__ == "__main__":
    main()

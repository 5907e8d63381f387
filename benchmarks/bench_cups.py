"""Fleet throughput of the Basics Station CUPS upgrade: N stations each take one signed update.

Run from the repository root: python -m benchmarks.bench_cups [--counts 10 200] [--update-size 4096]

Per N, in a fresh process on the virtual clock (the 24-hour CUPS interval costs no real time):
the Basics Station back end (CUPS + admin API, LNS, SQLite registry) and N emulated stations, each
with its own home directory and sig-0.key, all holding one signing key. The stations start and
connect (CUPS, then the LNS reports package v0). Then, per station, the provisioning tool's
`upgrade_firmware` uploads the signed update file and sets the twin; at the stations' next
regular CUPS check (24 virtual hours later) each one downloads the update, verifies its
ECDSA-SHA512 signature, runs the update program (a real /bin/sh process), restarts, asks CUPS
again (14-byte no-update) and reports v1 to the LNS. Timed in real seconds: connecting; the
uploads; the upgrade cycle from the start of the 24-hour wait to the last LNS report of v1.
Memory per station: growth of this process's resident set divided by N, after connecting and at
the end. Every station's registry entry is checked to report v1 before a result is printed.
"""

from __future__ import annotations

import argparse
import multiprocessing
import tempfile
import time
from pathlib import Path
from typing import Any

from emulators.basics_station import BasicsStation, StationHome, StationSettings
from otaharness.protocols.basics_station import format_eui
from otaharness.provision.basics_station import prepare_signature_key, upgrade_firmware, write_firmware_digest
from otaharness.runtime.clock import VirtualClock, VirtualEventLoop
from otaharness.runtime.runtime import raise_fd_limit
from otaharness.servers.basics_station.registry import StationRecord
from otaharness.servers.basics_station.server import BasicsStationServer

FIRST_EUI = 0x0016C001FF100000
DAY = 86400.0
UPDATE_PROGRAM = "#!/bin/sh\nprintf 'v1\\n' > version.txt\nrm -f update.bin\n: > station.restart\n"


def rss_bytes() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


def write_update(directory: Path, size: int) -> Path:
    """The update program padded with comment lines to ``size`` bytes."""
    script = UPDATE_PROGRAM
    while (missing := size - len(script)) > 0:
        script += "#" * (min(missing, 80) - 1) + "\n"
    path = directory / "update-v1.sh"
    path.write_text(script)
    return path


async def fleet_run(clock: VirtualClock, count: int, update_size: int, workdir: Path) -> dict[str, Any]:
    server = BasicsStationServer(workdir / "server", clock)
    await server.start()
    cups_url, lns_url = server.endpoints()["cups"], server.endpoints()["lns"]
    key = prepare_signature_key(workdir / "keys")
    firmware = write_update(workdir, update_size)
    digest = workdir / "update-v1.digest"
    write_firmware_digest(firmware, key.private_key_file, digest)
    stations: list[BasicsStation] = []
    try:
        euis = [FIRST_EUI + index for index in range(count)]
        for eui in euis:
            server.registry.put(StationRecord(eui, cups_uri=cups_url, tc_uri=lns_url))
        rss_before = rss_bytes()
        for eui in euis:
            home = StationHome(workdir / "stations" / format_eui(eui, "")).provision(
                cups_uri=cups_url, version="v0", sig_keys=(key.key_file.read_bytes(),))
            stations.append(BasicsStation(StationSettings(eui), home, clock, name=format_eui(eui, "")))

        def all_report(package: str) -> bool:
            sessions = server.lns.sessions
            return all((session := sessions.get(eui)) is not None and session.version is not None
                       and session.version.package == package for eui in euis)

        started = time.perf_counter()
        for station in stations:
            await station.start()
        assert await clock.run_until(lambda: all_report("v0"), timeout=3600), "not every station connected"
        connect_s = time.perf_counter() - started
        rss_connected = rss_bytes()

        started = time.perf_counter()
        for eui in euis:
            await upgrade_firmware(cups_url, format_eui(eui, ""), "v1", firmware, digest, key.checksum_file)
        upload_s = time.perf_counter() - started

        virtual_start = clock.monotonic()
        started = time.perf_counter()
        assert await clock.run_until(lambda: all_report("v1"), timeout=2 * DAY), "not every station upgraded"
        upgrade_s = time.perf_counter() - started
        virtual_s = clock.monotonic() - virtual_start
        rss_after = rss_bytes()

        reported = {server.registry.get(eui).reported_package for eui in euis}
        if reported != {"v1"} or any(station.boots != 2 for station in stations):
            raise AssertionError(f"not every station upgraded once: {reported}")
        return {
            "stations": count,
            "connect_s": connect_s,
            "upload_s": upload_s,
            "upgrade_s": upgrade_s,
            "stations_per_s": count / upgrade_s,
            "virtual_s": virtual_s,
            "rss_per_station_connected_kib": (rss_connected - rss_before) / count / 1024,
            "rss_per_station_after_kib": (rss_after - rss_before) / count / 1024,
        }
    finally:
        for station in stations:
            await station.wait_restart()
            await station.stop()
        await server.stop()


def measure(count: int, update_size: int) -> dict[str, Any]:
    raise_fd_limit()
    clock = VirtualClock(real_time_limit=120.0)
    loop = VirtualEventLoop(clock)
    try:
        with tempfile.TemporaryDirectory(prefix="bench-cups-") as workdir:
            return loop.run_until_complete(fleet_run(clock, count, update_size, Path(workdir)))
    finally:
        loop.run_until_complete(loop.shutdown_default_executor())
        loop.close()
        clock.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--counts", type=int, nargs="+", default=[10, 200])
    parser.add_argument("--update-size", type=int, default=4096, help="bytes of the update file")
    arguments = parser.parse_args()
    # A fresh process per N, so that one run's freed memory does not hide the next one's growth.
    context = multiprocessing.get_context("spawn")
    for count in arguments.counts:
        with context.Pool(1) as pool:
            result = pool.apply(measure, (count, arguments.update_size))
        print(f"N={result['stations']:>4}  connect {result['connect_s']:6.2f} s  uploads {result['upload_s']:6.2f} s"
              f"  upgrade cycle {result['upgrade_s']:6.2f} s ({result['stations_per_s']:6.1f} stations/s,"
              f" {result['virtual_s']:.0f} virtual s)"
              f"  RSS/station {result['rss_per_station_connected_kib']:.0f} KiB connected,"
              f" {result['rss_per_station_after_kib']:.0f} KiB after")


if __name__ == "__main__":
    main()

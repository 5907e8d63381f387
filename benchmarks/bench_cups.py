"""Fleet throughput of the Basics Station CUPS upgrade: N stations each take one signed update.

Run from the repository root: python -m benchmarks.bench_cups [--counts 100 1000] [--update-size 4096]
[--no-save]

Per N, in a fresh process on the virtual clock (the 24-hour CUPS interval costs no real time): the
Basics Station back end (CUPS + admin API, LNS, SQLite registry) and N emulated stations, each with
its own home directory and sig-0.key, all holding one signing key. The stations start and connect
(CUPS, then the LNS reports package v0), in waves of 500 a virtual second apart. Then, per station,
the provisioning tool's `upgrade_firmware` uploads the signed update file and sets the twin; at the
stations' next regular CUPS check (24 virtual hours later) each one downloads the update, verifies
its ECDSA-SHA512 signature, runs the update program (a real /bin/sh process), restarts, asks CUPS
again (14-byte no-update) and reports v1 to the LNS. Timed in real seconds: connecting; the
uploads; the upgrade cycle from the start of the 24-hour wait to the last LNS report of v1. Memory
per station: growth of this process's resident set divided by N, after connecting and at the end.
Every station's registry entry is checked to report v1 before a result is printed.

Baseline, in the same process against the same CUPS server once every station is connected:
each station's own /update-info request (its current credential CRCs, package v0 and key CRCs)
POSTed bare, byte for byte as the station does (``post_update_info``), 50 at a time (all N at
once would measure the listen backlog's SYN retries instead), answered with the no-update reply. The ratio "upgrade cycle / bare CUPS round trips" (upgrade_s /
baseline_s) is the cost of a full signed upgrade in units of one plain CUPS check.

Also per N: CPU seconds of the process for the whole run and the upgrade cycle, its peak RSS
(the update programs run as child processes, not counted), and the wall seconds of the whole run
(server start, stations, connecting, baseline, uploads, upgrade, teardown), on the fleet collector
settings (otaharness.runtime.collector). Results are merged into benchmarks/results/cups_fleet.json
(``--no-save``: not), which benchmarks/plot_fleet_scaling.py draws.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from functools import partial
from pathlib import Path
from urllib.parse import urlsplit

from benchmarks.measure import (Figures, MemoryGrowth, Stopwatch, gather_limited, on_virtual_clock,
                                peak_rss_mib, run_sizes, save_results)
from otaharness.emulators.basics_station import BasicsStation, StationHome, StationSettings
from otaharness.emulators.basics_station.cups_http import post_update_info
from otaharness.protocols.basics_station import format_eui
from otaharness.provision.basics_station import prepare_signature_key, upgrade_firmware, write_firmware_digest
from otaharness.runtime.clock import VirtualClock
from otaharness.runtime.collector import tune_for_fleets
from otaharness.servers.basics_station.registry import StationRecord
from otaharness.servers.basics_station.server import BasicsStationServer

FIRST_EUI = 0x0016C001FF100000
DAY = 86400.0
POSTS_AT_A_TIME = 50
# Stations that start in the same virtual second, and so check CUPS together every 24 hours: each
# update runs a /bin/sh child (pipes included), and a fleet updating in one instant would need more
# descriptors than a process may hold here (20,000).
WAVE = 500
UPDATE_PROGRAM = "#!/bin/sh\nprintf 'v1\\n' > version.txt\nrm -f update.bin\n: > station.restart\n"


def write_update(directory: Path, size: int) -> Path:
    """The update program padded with comment lines to ``size`` bytes."""
    script = UPDATE_PROGRAM
    while (missing := size - len(script)) > 0:
        script += "#" * (min(missing, 80) - 1) + "\n"
    path = directory / "update-v1.sh"
    path.write_text(script)
    return path


async def bare_update_info(cups_url: str, stations: list[BasicsStation]) -> None:
    """The baseline: every station's /update-info request POSTed once."""
    parts = urlsplit(cups_url)
    assert parts.hostname is not None and parts.port is not None
    replies = await gather_limited(POSTS_AT_A_TIME, (
        post_update_info((parts.hostname, parts.port), f"{parts.hostname}:{parts.port}",
                         station.update_info_request().encode()) for station in stations))
    if any(reply.status != 200 for reply in replies):
        raise AssertionError(f"bare /update-info answered {sorted({reply.status for reply in replies})}")


async def fleet_run(clock: VirtualClock, workdir: Path, *, count: int, update_size: int) -> Figures:
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
        memory = MemoryGrowth()
        for eui in euis:
            home = StationHome(workdir / "stations" / format_eui(eui, "")).provision(
                cups_uri=cups_url, version="v0", sig_keys=(key.key_file.read_bytes(),))
            stations.append(BasicsStation(StationSettings(eui), home, clock, name=format_eui(eui, "")))

        def reported(package: str) -> Callable[[], bool]:
            """Whether every station has reported ``package`` to the LNS. Checked at every quiet
            moment of the clock: each station is looked at until it has reported, so the checks
            of a whole run cost in proportion to the fleet, not to its square."""
            waiting = list(reversed(euis))

            def every_station() -> bool:
                sessions = server.lns.sessions
                while waiting:
                    session = sessions.get(waiting[-1])
                    if session is None or session.version is None or session.version.package != package:
                        return False
                    waiting.pop()
                return True
            return every_station

        with Stopwatch() as connecting:
            for start in range(0, len(stations), WAVE):
                for station in stations[start:start + WAVE]:
                    await station.start()
                await clock.run_for(1.0)
            assert await clock.run_until(reported("v0"), timeout=3600), "not every station connected"
        rss_connected = memory.per_unit_kib(count)

        with Stopwatch() as baseline:
            await bare_update_info(cups_url, stations)

        with Stopwatch() as uploads:
            for eui in euis:
                await upgrade_firmware(cups_url, format_eui(eui, ""), "v1", firmware, digest, key.checksum_file,
                                       token=server.admin_token)

        with Stopwatch(clock) as upgrade:
            assert await clock.run_until(reported("v1"), timeout=2 * DAY), "not every station upgraded"
        rss_after = memory.per_unit_kib(count)

        reported = {server.registry.get(eui).reported_package for eui in euis}
        if reported != {"v1"} or any(station.boots != 2 for station in stations):
            raise AssertionError(f"not every station upgraded once: {reported}")
        return {
            "stations": count,
            "devices": count,
            "upgrade_cpu_s": upgrade.cpu_seconds,
            "connect_s": connecting.seconds,
            "upload_s": uploads.seconds,
            "upgrade_s": upgrade.seconds,
            "stations_per_s": count / upgrade.seconds,
            "virtual_s": upgrade.virtual_seconds,
            "baseline_s": baseline.seconds,
            "baseline_posts_per_s": count / baseline.seconds,
            "cycle_per_post": upgrade.seconds / baseline.seconds,
            "rss_per_station_connected_kib": rss_connected,
            "rss_per_station_after_kib": rss_after,
        }
    finally:
        for station in stations:
            await station.wait_restart()
            await station.stop()
        await server.stop()


def measure(count: int, update_size: int) -> Figures:
    tune_for_fleets()
    with Stopwatch() as whole:
        figures = on_virtual_clock(partial(fleet_run, count=count, update_size=update_size),
                                   real_time_limit=600.0)
    return {**figures, "wall_s": whole.seconds, "cpu_s": whole.cpu_seconds, "peak_rss_mib": peak_rss_mib()}


def describe(result: Figures) -> str:
    return (f"N={result['stations']:>4}  connect {result['connect_s']:6.2f} s  uploads {result['upload_s']:6.2f} s"
            f"  upgrade cycle {result['upgrade_s']:6.2f} s ({result['stations_per_s']:6.1f} stations/s,"
            f" {result['virtual_s']:.0f} virtual s)"
            f"  baseline {result['baseline_posts_per_s']:.0f} bare /update-info POSTs/s,"
            f" cycle = {result['cycle_per_post']:.1f} POSTs"
            f"  RSS/station {result['rss_per_station_connected_kib']:.0f} KiB connected,"
            f" {result['rss_per_station_after_kib']:.0f} KiB after; whole run {result['wall_s']:.1f} s,"
            f" {result['cpu_s']:.1f} CPU s (upgrade {result['upgrade_cpu_s']:.1f}),"
            f" peak RSS {result['peak_rss_mib']:.0f} MiB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--counts", type=int, nargs="+", default=[100, 1000])
    parser.add_argument("--update-size", type=int, default=4096, help="bytes of the update file")
    parser.add_argument("--no-save", action="store_true", help="do not write benchmarks/results/")
    arguments = parser.parse_args()
    for count in arguments.counts:  # each size saved as it finishes
        results = run_sizes("bench_cups", measure, [(count, arguments.update_size)], describe)
        if not arguments.no_save:
            save_results("cups_fleet", results, description=__doc__.splitlines()[0])


if __name__ == "__main__":
    main()

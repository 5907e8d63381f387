"""Fleet throughput of a TR-069 batch upgrade: N MikroTik CHRs go from RouterOS 6.48 to 6.48.4.

Run from the repository root: python -m benchmarks.bench_tr069 [--counts 100 1000 10000]
[--default-collector] [--no-save]

Per N, in a fresh process on the virtual clock (the hour between Informs and the 30-minute
check cost no real time): the ACS (CWMP endpoint, file server, admin API, SQLite state) and N
emulated CPEs (mikrotik profile, each on its own loopback address, one shared Connection Request
listener). The CPEs boot and register (0 BOOTSTRAP, 1 BOOT), in waves of 1,000 a virtual second
apart (a fleet's power-on is never one instant; and two descriptors per open session, ACS and
CPE side in one process, would take 20,000 descriptors for 10,000 simultaneous sessions: this
machine's hard limit). The operator uploads the seed's
three files and adds a batch (group of every CHR, 6.48 -> 6.48.4, event Inform, no window, no
cap) through the admin API. At each CPE's next periodic Inform (one hour after its boot): the
Download, the upgrade XML and its two .npk packages fetched from the file server, a reboot
(30 virtual seconds), the Boot Inform with 7 TRANSFER COMPLETE + M Download and the
TransferComplete, and the ACS's version check 30 minutes later: Ready.
Timed in real seconds: booting; the upgrade cycle from the batch's creation to the last Ready.
Memory per CPE: growth of this process's resident set (ACS included) divided by N, after the
boot and at the end. Every CPE must run 6.48.4 and be Ready before a result is printed.

Baseline, in the same process against the same ACS once every CPE has booted (before the batch
exists): every CPE runs one bare CWMP session, a 2 PERIODIC Inform -> InformResponse, the empty
POST -> 204, all N at once. The ratio "upgrade cycle / bare Inform sessions" (upgrade_s /
baseline_s) is the cost of the batch upgrade in units of one plain periodic session.

Also per N: CPU seconds of the process for the whole run and the upgrade cycle (steadier than
wall seconds on a machine shared with other work), the process's peak RSS, and the wall seconds
of the whole run (ACS start, boot, baseline, upgrade, teardown). The process runs with the fleet collector settings
(otaharness.runtime.collector); ``--default-collector`` keeps CPython's defaults, to compare.
Results are merged into benchmarks/results/tr069_fleet.json (``--no-save``: not), which
benchmarks/plot_fleet_scaling.py draws.
"""

from __future__ import annotations

import argparse
import ipaddress
import random
from functools import partial
from pathlib import Path
from typing import Any

import aiohttp

from benchmarks.measure import (Figures, MemoryGrowth, Stopwatch, on_virtual_clock, peak_rss_mib,
                                run_sizes, save_results)
from otaharness.emulators.cpe.connection_request import ConnectionRequestServer
from otaharness.emulators.cpe.device import Cpe
from otaharness.fixtures import fixture_path
from otaharness.protocols.cwmp.codes import EVENT_PERIODIC
from otaharness.runtime.clock import VirtualClock
from otaharness.runtime.collector import tune_for_fleets
from otaharness.servers.tr069 import AcsServer

HOUR = 3600.0
FIRMWARE = "1 Firmware Upgrade Image"
PACKAGES = ("routeros-x86-6.48.4.npk", "tr069-client-6.48.4.npk")
XML = "upgrade_6.48.4.xml"
SEED_FILE_SERVER = b"https://splynx_domain:7567"
POLL = 60.0  # virtual seconds between progress checks (the SQL count is not free at N=5000)
WAVE = 1000  # CPEs that power on in the same virtual second (and so Inform together each hour)


async def operator_adds_batch(admin_url: str, files_url: str, token: str) -> int:
    """The seed's steps 1-3 through the admin API: three files, a group, a batch."""
    async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {token}"}) as http:
        uploads = {name: fixture_path("tr069", name).read_bytes() for name in PACKAGES}
        uploads[XML] = fixture_path("tr069", XML).read_bytes().replace(
            SEED_FILE_SERVER, files_url.encode())
        for name, content in uploads.items():
            async with http.put(f"{admin_url}/files/{name}", data=content, headers={
                    "fileType": FIRMWARE, "oui": "E48D8C", "productClass": "CHR",
                    "version": "6.48.4"}) as response:
                assert response.status == 201, await response.text()
        async with http.put(f"{admin_url}/groups/chr",
                            json={"oui": "E48D8C", "product_class": "CHR"}) as response:
            assert response.status == 200, await response.text()
        async with http.post(f"{admin_url}/batches", json={
                "group": "chr", "original_version": "6.48", "file": XML,
                "new_version": "6.48.4", "event": "Inform"}) as response:
            assert response.status == 201, await response.text()
            return int((await response.json())["id"])


def count_in_state(server: AcsServer, batch_id: int, state: str) -> int:
    (count,) = server.store.db.execute(
        "SELECT COUNT(*) FROM batch_devices WHERE batch_id=? AND state=?",
        (batch_id, state)).fetchone()
    return int(count)


def states(server: AcsServer, batch_id: int) -> dict[str, Any]:
    """How many devices are in each state, and the most common last faults (for failures)."""
    rows = server.store.db.execute(
        "SELECT state, COUNT(*), MAX(last_fault) FROM batch_devices WHERE batch_id=? "
        "GROUP BY state", (batch_id,)).fetchall()
    return {state: (number, fault) for state, number, fault in rows}


def waves(cpes: list[Cpe]) -> list[list[Cpe]]:
    return [cpes[start:start + WAVE] for start in range(0, len(cpes), WAVE)]


async def boot(clock: VirtualClock, cpes: list[Cpe]) -> None:
    """Power on wave by wave, a virtual second apart; every CPE finishes its first session."""
    for wave in waves(cpes):
        for cpe in wave:
            await cpe.start()
        await clock.run_for(1.0)
    booted = await clock.run_until(lambda: all(c.sessions_completed for c in cpes), timeout=HOUR / 2)
    assert booted, "not every CPE finished its first session"


async def bare_sessions(clock: VirtualClock, cpes: list[Cpe]) -> None:
    """The baseline: one 2 PERIODIC session per CPE, a wave's sessions queued at once."""
    for wave in waves(cpes):
        done_before = [cpe.sessions_completed for cpe in wave]
        for cpe in wave:
            cpe.queue_event(EVENT_PERIODIC)
        finished = await clock.run_until(
            lambda wave=wave, done_before=done_before: all(
                cpe.sessions_completed > before for cpe, before in zip(wave, done_before)),
            timeout=HOUR / 2)
        assert finished, "not every CPE finished its bare Inform session"


async def fleet_run(clock: VirtualClock, workdir: Path, *, count: int) -> Figures:
    server = AcsServer(workdir / "acs", clock, random.Random(1))
    await server.start()
    listener = ConnectionRequestServer()
    await listener.start()
    cpes: list[Cpe] = []
    try:
        memory = MemoryGrowth()
        first_address = ipaddress.IPv4Address("127.1.0.1")
        for index in range(count):
            cpes.append(Cpe(f"CHR{index:06d}", acs_url=server.endpoints()["acs"], clock=clock,
                            rng=random.Random(index), connection_requests=listener,
                            bind_address=str(first_address + index)))
        with Stopwatch() as booting:
            await boot(clock, cpes)
        rss_booted = memory.per_unit_kib(count)

        with Stopwatch() as baseline:
            await bare_sessions(clock, cpes)

        with Stopwatch(clock) as upgrade:
            batch_id = await operator_adds_batch(server.endpoints()["admin"],
                                                 server.endpoints()["files"],
                                                 server.tokens()["admin"])
            while count_in_state(server, batch_id, "ready") < count:
                if upgrade.virtual_so_far() > 3 * HOUR:
                    raise AssertionError(f"not every CPE Ready after 3 h: {states(server, batch_id)}")
                await clock.run_for(POLL)
        rss_after = memory.per_unit_kib(count)

        versions = {cpe.software_version for cpe in cpes}
        if versions != {"6.48.4"}:
            raise AssertionError(f"not every CPE runs 6.48.4: {versions}")
        return {
            "cpes": count,
            "devices": count,
            "upgrade_cpu_s": upgrade.cpu_seconds,
            "boot_s": booting.seconds,
            "upgrade_s": upgrade.seconds,
            "cpes_per_s": count / upgrade.seconds,
            "virtual_s": upgrade.virtual_seconds,
            "downloads": server.files.downloads_served,
            "baseline_s": baseline.seconds,
            "baseline_sessions_per_s": count / baseline.seconds,
            "cycle_per_session": upgrade.seconds / baseline.seconds,
            "rss_per_cpe_booted_kib": rss_booted,
            "rss_per_cpe_after_kib": rss_after,
        }
    finally:
        for cpe in cpes:
            await cpe.stop()
        await listener.stop()
        await server.stop()


def measure(count: int, collector: str = "fleet") -> Figures:
    if collector == "fleet":
        tune_for_fleets()
    with Stopwatch() as whole:  # server start, boot, baseline, upgrade and teardown
        figures = on_virtual_clock(partial(fleet_run, count=count), real_time_limit=1800.0)
    return {**figures, "wall_s": whole.seconds, "cpu_s": whole.cpu_seconds,
            "peak_rss_mib": peak_rss_mib(), "collector": collector}


def describe(result: Figures) -> str:
    return (f"N={result['cpes']:>5}  boot {result['boot_s']:7.2f} s  upgrade cycle "
            f"{result['upgrade_s']:7.2f} s ({result['cpes_per_s']:6.1f} CPEs/s, "
            f"{result['virtual_s']:.0f} virtual s, {result['downloads']} file downloads)  "
            f"baseline {result['baseline_sessions_per_s']:.0f} bare Inform sessions/s, "
            f"cycle = {result['cycle_per_session']:.1f} sessions  "
            f"RSS/CPE {result['rss_per_cpe_booted_kib']:.0f} KiB booted, "
            f"{result['rss_per_cpe_after_kib']:.0f} KiB after; "
            f"whole run {result['wall_s']:.1f} s, {result['cpu_s']:.1f} CPU s "
            f"(upgrade {result['upgrade_cpu_s']:.1f}), peak RSS {result['peak_rss_mib']:.0f} MiB, "
            f"{result['collector']} collector")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--counts", type=int, nargs="+", default=[100, 1000, 10000])
    parser.add_argument("--default-collector", action="store_true",
                        help="CPython's collector thresholds instead of the fleet settings")
    parser.add_argument("--no-save", action="store_true", help="do not write benchmarks/results/")
    arguments = parser.parse_args()
    collector = "default" if arguments.default_collector else "fleet"
    for count in arguments.counts:  # each size saved as it finishes
        results = run_sizes("bench_tr069", measure, [(count, collector)], describe)
        if not arguments.no_save:
            save_results("tr069_fleet" if collector == "fleet" else "tr069_fleet_default_collector",
                         results, description=__doc__.splitlines()[0])


if __name__ == "__main__":
    main()

"""Fleet throughput of a TR-069 batch upgrade: N MikroTik CHRs go from RouterOS 6.48 to 6.48.4.

Run from the repository root: python -m benchmarks.bench_tr069 [--counts 100 5000]

Per N, in a fresh process on the virtual clock (the hour between Informs and the 30-minute
check cost no real time): the ACS (CWMP endpoint, file server, admin API, SQLite state) and N
emulated CPEs (mikrotik profile, each on its own loopback address, one shared Connection Request
listener). The CPEs boot and register (0 BOOTSTRAP, 1 BOOT). The operator uploads the seed's
three files and adds a batch (group of every CHR, 6.48 -> 6.48.4, event Inform, no window, no
cap) through the admin API. At each CPE's next periodic Inform (one hour after its boot): the
Download, the upgrade XML and its two .npk packages fetched from the file server, a reboot
(30 virtual seconds), the Boot Inform with 7 TRANSFER COMPLETE + M Download and the
TransferComplete, and the ACS's version check 30 minutes later: Ready.
Timed in real seconds: booting; the upgrade cycle from the batch's creation to the last Ready.
Memory per CPE: growth of this process's resident set (ACS included) divided by N, after the
boot and at the end. Every CPE must run 6.48.4 and be Ready before a result is printed.
"""

from __future__ import annotations

import argparse
import ipaddress
import multiprocessing
import random
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp

from emulators.cpe.connection_request import ConnectionRequestServer
from emulators.cpe.device import Cpe
from fixtures import fixture_path
from otaharness.runtime.clock import VirtualClock, VirtualEventLoop
from otaharness.runtime.runtime import raise_fd_limit
from otaharness.servers.tr069 import AcsServer

HOUR = 3600.0
FIRMWARE = "1 Firmware Upgrade Image"
PACKAGES = ("routeros-x86-6.48.4.npk", "tr069-client-6.48.4.npk")
XML = "upgrade_6.48.4.xml"
SEED_FILE_SERVER = b"https://splynx_domain:7567"
POLL = 60.0  # virtual seconds between progress checks (the SQL count is not free at N=5000)


def rss_bytes() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


async def operator_adds_batch(admin_url: str, files_url: str) -> int:
    """The seed's steps 1-3 through the admin API: three files, a group, a batch."""
    async with aiohttp.ClientSession() as http:
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


async def fleet_run(clock: VirtualClock, count: int, workdir: Path) -> dict[str, Any]:
    server = AcsServer(workdir / "acs", clock, random.Random(1))
    await server.start()
    listener = ConnectionRequestServer()
    await listener.start()
    cpes: list[Cpe] = []
    try:
        rss_before = rss_bytes()
        first_address = ipaddress.IPv4Address("127.1.0.1")
        for index in range(count):
            cpes.append(Cpe(f"CHR{index:06d}", acs_url=server.endpoints()["acs"], clock=clock,
                            rng=random.Random(index), connection_requests=listener,
                            bind_address=str(first_address + index)))
        started = time.perf_counter()
        for cpe in cpes:
            await cpe.start()
        booted = await clock.run_until(lambda: all(c.sessions_completed for c in cpes),
                                       timeout=HOUR / 2)
        assert booted, "not every CPE finished its first session"
        boot_s = time.perf_counter() - started
        rss_booted = rss_bytes()

        started = time.perf_counter()
        virtual_start = clock.monotonic()
        batch_id = await operator_adds_batch(server.endpoints()["admin"],
                                             server.endpoints()["files"])
        while count_in_state(server, batch_id, "ready") < count:
            if clock.monotonic() - virtual_start > 3 * HOUR:
                raise AssertionError(f"not every CPE Ready after 3 h: {states(server, batch_id)}")
            await clock.run_for(POLL)
        upgrade_s = time.perf_counter() - started
        virtual_s = clock.monotonic() - virtual_start
        rss_after = rss_bytes()

        versions = {cpe.software_version for cpe in cpes}
        if versions != {"6.48.4"}:
            raise AssertionError(f"not every CPE runs 6.48.4: {versions}")
        return {
            "cpes": count,
            "boot_s": boot_s,
            "upgrade_s": upgrade_s,
            "cpes_per_s": count / upgrade_s,
            "virtual_s": virtual_s,
            "downloads": len(server.files.downloads),
            "rss_per_cpe_booted_kib": (rss_booted - rss_before) / count / 1024,
            "rss_per_cpe_after_kib": (rss_after - rss_before) / count / 1024,
        }
    finally:
        for cpe in cpes:
            await cpe.stop()
        await listener.stop()
        await server.stop()


def measure(count: int) -> dict[str, Any]:
    raise_fd_limit()
    clock = VirtualClock(real_time_limit=1800.0)
    loop = VirtualEventLoop(clock)
    try:
        with tempfile.TemporaryDirectory(prefix="bench-tr069-") as workdir:
            return loop.run_until_complete(fleet_run(clock, count, Path(workdir)))
    finally:
        loop.run_until_complete(loop.shutdown_default_executor())
        loop.close()
        clock.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--counts", type=int, nargs="+", default=[100, 5000])
    arguments = parser.parse_args()
    # A fresh process per N, so that one run's freed memory does not hide the next one's growth.
    context = multiprocessing.get_context("spawn")
    for count in arguments.counts:
        with context.Pool(1) as pool:
            result = pool.apply(measure, (count,))
        print(f"N={result['cpes']:>5}  boot {result['boot_s']:7.2f} s  upgrade cycle "
              f"{result['upgrade_s']:7.2f} s ({result['cpes_per_s']:6.1f} CPEs/s, "
              f"{result['virtual_s']:.0f} virtual s, {result['downloads']} file downloads)  "
              f"RSS/CPE {result['rss_per_cpe_booted_kib']:.0f} KiB booted, "
              f"{result['rss_per_cpe_after_kib']:.0f} KiB after", flush=True)


if __name__ == "__main__":
    main()

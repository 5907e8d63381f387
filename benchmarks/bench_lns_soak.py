"""Soak of the LNS from outside: does ``otaharness serve lorawan`` keep its memory flat under
long-lived station traffic?

Run from the repository root: python -m benchmarks.bench_lns_soak [--seconds 60] [--frame-kib 60]

``otaharness serve lorawan --json`` runs as a child process (real time, TLS on the LNS, as a user
runs it). Through its CUPS admin API (the bearer token it printed) the benchmark registers one
station and has a station token issued, then connects to ``/router-data/<EUI>`` over TLS with that
token, as a Basics Station does, and sends text frames of ``--frame-kib`` KiB (JSON objects with a
``msgtype`` the LNS logs and ignores, padded) as fast as the connection takes them. Every
``--frames-per-connection`` frames it closes the connection and opens a new one, so closed
connections pile up in the server's history as well. It stops after ``--seconds``.

The server's resident set (``/proc/<pid>/status`` VmRSS) is sampled every 2 s. Reported: RSS
after the first connection's warm-up (the first sample after 10 % of the run), at the end, the
largest, the growth end − warm-up, and the least-squares slope over the second half of the run
in MiB per 1,000 frames (flat memory: near 0, whatever the run's length). Before the fix, 3,000
such frames took the server from 95 to 440 MiB and kept it there.

Baseline, in the same run against the same server: the same number of bytes sent as small
frames would measure nothing about memory, so the baseline here is the server's RSS before any
station traffic (after start and the admin calls): growth is reported against it too.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import ssl
import time

import aiohttp

from benchmarks.measure import ServedFlows, report, rss_bytes
from otaharness.protocols.basics_station import format_eui
from otaharness.protocols.basics_station.credentials import station_auth_header_lines

STATION_EUI = 0x0016C001FF1F0001
SAMPLE_EVERY = 2.0
MIB = 1024 * 1024


def station_headers(key_file: bytes) -> dict[str, str]:
    lines = station_auth_header_lines(key_file)
    assert lines is not None, "the issued token file is one the station would refuse"
    headers = {}
    for line in lines.decode().split("\r\n"):
        if line:
            name, _, value = line.partition(": ")
            headers[name] = value
    return headers


async def register_station(session: aiohttp.ClientSession, endpoints: dict, tls: ssl.SSLContext) -> dict[str, str]:
    admin = endpoints["cups"]
    bearer = {"Authorization": f"Bearer {endpoints['tokens']['cups']}"}
    eui = format_eui(STATION_EUI, "")
    async with session.put(f"{admin}/admin/stations/{eui}", json={"tcUri": endpoints["lns"]},
                           headers=bearer, ssl=tls) as answer:
        assert answer.status == 200, await answer.text()
    async with session.post(f"{admin}/admin/stations/{eui}/credentials", json={"auth": "token"},
                            headers=bearer, ssl=tls) as answer:
        assert answer.status == 200, await answer.text()
        files = (await answer.json())["files"]
    return station_headers(base64.b64decode(files["tc.key"]))


def slope_mib_per_kiloframe(samples: list[tuple[int, int]]) -> float:
    """Least squares of RSS (MiB) over frames sent (thousands)."""
    if len(samples) < 2:
        return 0.0
    xs = [frames / 1000 for frames, _ in samples]
    ys = [rss / MIB for _, rss in samples]
    mean_x, mean_y = sum(xs) / len(xs), sum(ys) / len(ys)
    spread = sum((x - mean_x) ** 2 for x in xs)
    if spread == 0:
        return 0.0
    return sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys)) / spread


async def soak(served: ServedFlows, seconds: float, frame_kib: int, per_connection: int) -> dict:
    endpoints = served.endpoints
    tls = ssl.create_default_context(cafile=endpoints["ca"])
    tls.check_hostname = False  # the server certificate names 127.0.0.1 / localhost
    padding = "x" * (frame_kib * 1024 - 64)
    frames = connections = 0
    samples: list[tuple[float, int, int]] = []  # (seconds, frames, rss)
    async with aiohttp.ClientSession() as session:
        headers = await register_station(session, endpoints, tls)
        baseline = rss_bytes(served.pid)
        started = time.monotonic()
        next_sample = started
        url = f"{endpoints['lns']}/router-data/{format_eui(STATION_EUI, '')}"
        while time.monotonic() - started < seconds:
            async with session.ws_connect(url, headers=headers, ssl=tls, max_msg_size=0) as websocket:
                connections += 1
                for _ in range(per_connection):
                    await websocket.send_str(json.dumps({"msgtype": "soak", "n": frames, "pad": padding}))
                    frames += 1
                    now = time.monotonic()
                    if now >= next_sample:
                        samples.append((now - started, frames, rss_bytes(served.pid)))
                        next_sample = now + SAMPLE_EVERY
                    if now - started >= seconds:
                        break
                assert not websocket.closed, f"the LNS closed the connection: {websocket.close_code}"
        await asyncio.sleep(0.5)  # the last frames are read and the connection closes
        samples.append((time.monotonic() - started, frames, rss_bytes(served.pid)))
    warm = next(rss for at, _, rss in samples if at >= seconds * 0.1)
    second_half = [(sent, rss) for at, sent, rss in samples if at >= seconds / 2]
    return {
        "seconds": round(samples[-1][0], 1), "frames": frames, "frame_kib": frame_kib,
        "connections": connections, "sent_mib": round(frames * frame_kib / 1024, 1),
        "rss_before_traffic_mib": round(baseline / MIB, 1), "rss_warm_mib": round(warm / MIB, 1),
        "rss_end_mib": round(samples[-1][2] / MIB, 1),
        "rss_max_mib": round(max(rss for _, _, rss in samples) / MIB, 1),
        "growth_after_warmup_mib": round((samples[-1][2] - warm) / MIB, 1),
        "slope_second_half_mib_per_1000_frames": round(slope_mib_per_kiloframe(second_half), 2),
        "samples": [(round(at), sent, round(rss / MIB, 1)) for at, sent, rss in samples],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--frame-kib", type=int, default=60)
    parser.add_argument("--frames-per-connection", type=int, default=500)
    arguments = parser.parse_args()
    with ServedFlows("lorawan") as served:
        figures = asyncio.run(soak(served, arguments.seconds, arguments.frame_kib,
                                   arguments.frames_per_connection))
    report("bench_lns_soak", figures,
           f"{figures['frames']} frames of {figures['frame_kib']} KiB ({figures['sent_mib']} MiB) over "
           f"{figures['connections']} connections in {figures['seconds']} s: server RSS "
           f"{figures['rss_before_traffic_mib']} MiB before traffic, {figures['rss_warm_mib']} warm, "
           f"{figures['rss_end_mib']} at the end (max {figures['rss_max_mib']}); "
           f"{figures['slope_second_half_mib_per_1000_frames']} MiB per 1,000 frames over the second half")


if __name__ == "__main__":
    main()

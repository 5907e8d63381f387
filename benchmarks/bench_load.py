"""A bounded load check per server: 200 concurrent connections for 20 s against each HTTP API of
``otaharness serve``, from outside.

Run from the repository root: python -m benchmarks.bench_load [--flows cups tr069 olt fuota lorawan]
[--connections 200] [--seconds 20]

Per flow, ``otaharness serve FLOW --json`` runs as a child process (real time, TLS as it serves by
default). ``--connections`` clients, each on its own keep-alive connection, send one request after
the other for ``--seconds``: an authenticated read of the flow's API (its bearer token from what
serve printed) that touches its store. Reported per flow: requests, errors (anything but the
expected 200, or a failed connection), p50 / p99 latency, the request rate, and the server's
resident set before the load and after it.

Baseline, in the same run against the same server: the flow's ``GET /openapi.json`` (a static
document, no store) at the same concurrency for a quarter of the time; "p99 / baseline p99" is
the cost of the store and authentication under load.
"""

from __future__ import annotations

import argparse
import asyncio
import ssl
import time
from dataclasses import dataclass

import aiohttp

from benchmarks.measure import ServedFlows, report, rss_bytes

MIB = 1024 * 1024


@dataclass(frozen=True)
class Target:
    flow: str
    endpoint: str  # key of serve's JSON
    path: str  # the authenticated read
    token: str | None  # key under "tokens"


TARGETS = {
    "cups": Target("cups", "cups", "/admin/stations/0016C001FF000001", "cups"),
    "tr069": Target("tr069", "admin", "/devices", "admin"),
    "olt": Target("olt", "olt", "/v1/firmwares", "olt"),
    "fuota": Target("fuota", "fuota", "/campaigns", "fuota"),
    "lorawan": Target("lorawan", "lorawan-app", "/api/devices/0004A30B001C0001", "lorawan-app"),
}
EXPECTED = {"cups": (200, 404), "lorawan": (200, 404)}  # reads of what may not exist: a store lookup


def percentile(sorted_values: list[float], fraction: float) -> float:
    if not sorted_values:
        return float("nan")
    return sorted_values[min(len(sorted_values) - 1, int(fraction * len(sorted_values)))]


async def hammer(url: str, headers: dict[str, str], tls: ssl.SSLContext | None, connections: int,
                 seconds: float, expected: tuple[int, ...]) -> dict:
    latencies: list[float] = []
    errors: dict[str, int] = {}
    deadline = time.monotonic() + seconds

    async def client() -> None:
        connector = aiohttp.TCPConnector(limit=1, ssl=tls if tls is not None else False)
        async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=30)) as session:
            while time.monotonic() < deadline:
                started = time.perf_counter()
                try:
                    async with session.get(url, headers=headers) as reply:
                        await reply.read()
                        outcome = None if reply.status in expected else f"HTTP {reply.status}"
                except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as error:
                    outcome = type(error).__name__
                if outcome is None:
                    latencies.append(time.perf_counter() - started)
                else:
                    errors[outcome] = errors.get(outcome, 0) + 1

    started = time.monotonic()
    await asyncio.gather(*(client() for _ in range(connections)))
    elapsed = time.monotonic() - started
    latencies.sort()
    return {"requests": len(latencies) + sum(errors.values()), "errors": sum(errors.values()),
            "error_kinds": errors, "rate_per_s": round(len(latencies) / elapsed, 1),
            "p50_ms": round(percentile(latencies, 0.50) * 1000, 1),
            "p99_ms": round(percentile(latencies, 0.99) * 1000, 1)}


def measure(target: Target, connections: int, seconds: float) -> dict:
    with ServedFlows(target.flow) as served:
        endpoints = served.endpoints
        base = endpoints[target.endpoint]
        tls = None
        if base.startswith("https"):
            tls = ssl.create_default_context(cafile=endpoints["ca"])
            tls.check_hostname = False
        headers = {"Authorization": f"Bearer {endpoints['tokens'][target.token]}"} if target.token else {}
        before = rss_bytes(served.pid)
        load = asyncio.run(hammer(base + target.path, headers, tls, connections, seconds,
                                  EXPECTED.get(target.flow, (200,))))
        after = rss_bytes(served.pid)
        baseline = asyncio.run(hammer(base + "/openapi.json", headers, tls, connections, seconds / 4, (200,)))
    return {"flow": target.flow, "path": target.path, "connections": connections, "seconds": seconds,
            **load, "rss_before_mib": round(before / MIB, 1), "rss_after_mib": round(after / MIB, 1),
            "baseline_p99_ms": baseline["p99_ms"], "baseline_errors": baseline["errors"],
            "p99_over_baseline": round(load["p99_ms"] / baseline["p99_ms"], 2) if baseline["p99_ms"] else None}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--flows", nargs="+", default=list(TARGETS), choices=list(TARGETS))
    parser.add_argument("--connections", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=20.0)
    arguments = parser.parse_args()
    for flow in arguments.flows:
        figures = measure(TARGETS[flow], arguments.connections, arguments.seconds)
        report("bench_load", figures,
               f"{flow} GET {figures['path']}: {figures['requests']} requests, {figures['errors']} errors "
               f"{figures['error_kinds'] or ''}, {figures['rate_per_s']}/s, p50 {figures['p50_ms']} ms, "
               f"p99 {figures['p99_ms']} ms (openapi.json p99 {figures['baseline_p99_ms']} ms), RSS "
               f"{figures['rss_before_mib']} -> {figures['rss_after_mib']} MiB")


if __name__ == "__main__":
    main()

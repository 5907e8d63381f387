"""Fleet throughput of the AWS IoT Jobs FOTA flow: N autonomous trackers each take one job end to end.

Run from the repository root: python -m benchmarks.bench_aws_trackers [--counts 100 2000]
[--image-size 5120] [--fragment-size 2048]

Per N, in one process on the virtual clock (reboots cost no real time): a mosquitto broker, the
AWS IoT back end (moto + jobs bridge), N things and one public S3 image. The N trackers connect
(each subscribes and asks `$next/get`), then ONE job targets all N: every tracker goes IN_PROGRESS,
downloads the image in range requests from moto, reboots (10 virtual seconds), updates SUCCEEDED
and reports `appV` in its shadow. Timed: connecting, and job creation -> the last shadow report.
Memory per thing: growth of this process's resident set (trackers, their MQTT clients and
sockets, and the back end's per-thing state) divided by N, measured after connecting and at the
end, in a fresh process per N. Every execution is checked SUCCEEDED in moto before a result is printed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import time
from typing import Any

from emulators.aws_tracker import Tracker
from otaharness.runtime.broker import MosquittoBroker
from otaharness.runtime.clock import VirtualClock, VirtualEventLoop
from otaharness.runtime.runtime import raise_fd_limit
from otaharness.servers.aws_iot import AwsIotBackend

BUCKET = "fota-bucket"
CONNECT_CONCURRENCY = 100


def rss_bytes() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


async def fleet_run(clock: VirtualClock, count: int, image_size: int, fragment_size: int) -> dict[str, Any]:
    broker = MosquittoBroker()
    await broker.start()
    clock.add_quiet_probe(broker.flush)
    backend = AwsIotBackend(clock)
    moto_probe = backend.moto.wait_quiet  # holds the clock while moto's threads serve a request
    await backend.start(broker.host, broker.port)
    clock.add_quiet_probe(moto_probe)
    trackers: list[Tracker] = []
    try:
        iot, s3 = backend.client("iot"), backend.client("s3")
        arns = [iot.create_thing(thingName=f"bench-{i}")["thingArn"] for i in range(count)]
        s3.create_bucket(Bucket=BUCKET)
        s3.put_object(Bucket=BUCKET, Key="fleet", Body=bytes(range(256)) * (image_size // 256) +
                      bytes(image_size % 256), ACL="public-read")
        host, port = backend.endpoints()["aws"].rsplit("/", 1)[1].split(":")
        rss_before = rss_bytes()

        trackers = [Tracker(f"bench-{i}", mqtt_host=broker.host, mqtt_port=broker.port, clock=clock,
                            s3_endpoint=(host, int(port)), fragment_size=fragment_size, reboot_seconds=10.0)
                    for i in range(count)]
        gate = asyncio.Semaphore(CONNECT_CONCURRENCY)

        async def connect(tracker: Tracker) -> None:
            async with gate:
                await tracker.connect()

        started = time.perf_counter()
        await run_until_done(clock, asyncio.gather(*(connect(t) for t in trackers)))
        connect_s = time.perf_counter() - started
        rss_connected = rss_bytes()

        finished = asyncio.get_running_loop().create_future()
        remaining = {tracker.thing_name for tracker in trackers}

        def watch(tracker: Tracker) -> None:
            def listener(text: str) -> None:
                if text.startswith("reported appV"):
                    remaining.discard(tracker.thing_name)
                    if not remaining and not finished.done():
                        finished.set_result(None)
            tracker.listeners.append(listener)

        for tracker in trackers:
            watch(tracker)
        document = {"operation": "app_fw_update", "size": image_size, "fwversion": "1.0.1",
                    "location": {"protocol": "https", "host": f"{BUCKET}.s3.amazonaws.com", "path": "fleet"}}
        virtual_start = clock.monotonic()
        started = time.perf_counter()
        iot.create_job(jobId="fleet", targets=arns, document=json.dumps(document), targetSelection="SNAPSHOT")
        await run_until_done(clock, finished)
        upgrade_s = time.perf_counter() - started
        virtual_s = clock.monotonic() - virtual_start
        rss_after = rss_bytes()

        summaries = iot.list_job_executions_for_job(jobId="fleet", maxResults=250)
        statuses = [s["jobExecutionSummary"]["status"] for s in summaries["executionSummaries"]]
        while "nextToken" in summaries:
            summaries = iot.list_job_executions_for_job(jobId="fleet", maxResults=250,
                                                        nextToken=summaries["nextToken"])
            statuses += [s["jobExecutionSummary"]["status"] for s in summaries["executionSummaries"]]
        if len(statuses) != count or set(statuses) != {"SUCCEEDED"}:
            raise AssertionError(f"not every execution SUCCEEDED: {len(statuses)} {set(statuses)}")
        requests = sum(t.counters["range_requests"] for t in trackers)
        return {
            "trackers": count,
            "connect_s": connect_s,
            "connects_per_s": count / connect_s,
            "upgrade_s": upgrade_s,
            "things_per_s": count / upgrade_s,
            "virtual_s": virtual_s,
            "http_requests": requests,
            "rss_per_thing_connected_kib": (rss_connected - rss_before) / count / 1024,
            "rss_per_thing_after_kib": (rss_after - rss_before) / count / 1024,
        }
    finally:
        for tracker in trackers:
            await tracker.disconnect()
        clock.remove_quiet_probe(moto_probe)
        backend.reset()
        await backend.stop()
        clock.remove_quiet_probe(broker.flush)
        await broker.stop()


async def run_until_done(clock: VirtualClock, awaitable: Any) -> None:
    task = asyncio.ensure_future(awaitable)
    await clock.run_until(task.done, timeout=24 * 3600)
    task.result()


def measure(count: int, image_size: int, fragment_size: int) -> dict[str, Any]:
    raise_fd_limit()
    clock = VirtualClock(real_time_limit=120.0)
    loop = VirtualEventLoop(clock)
    try:
        return loop.run_until_complete(fleet_run(clock, count, image_size, fragment_size))
    finally:
        loop.run_until_complete(loop.shutdown_default_executor())
        loop.close()
        clock.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--counts", type=int, nargs="+", default=[100, 2000])
    parser.add_argument("--image-size", type=int, default=5120)
    parser.add_argument("--fragment-size", type=int, default=2048)
    arguments = parser.parse_args()
    # A fresh process per N, so that one run's freed memory does not hide the next one's growth.
    context = multiprocessing.get_context("spawn")
    for count in arguments.counts:
        with context.Pool(1) as pool:
            result = pool.apply(measure, (count, arguments.image_size, arguments.fragment_size))
        print(f"N={result['trackers']:>5}  connect {result['connect_s']:6.2f} s ({result['connects_per_s']:7.1f}/s)"
              f"  upgrade {result['upgrade_s']:6.2f} s ({result['things_per_s']:6.1f} things/s,"
              f" {result['virtual_s']:.0f} virtual s, {result['http_requests']} range GETs)"
              f"  RSS/thing {result['rss_per_thing_connected_kib']:.0f} KiB connected,"
              f" {result['rss_per_thing_after_kib']:.0f} KiB after")


if __name__ == "__main__":
    main()

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

Baseline, in the same process against the same broker and moto (before the job exists): N bare
exchanges, each one MqttClient request/response round trip through the jobs bridge
(`$aws/things/<thing>/jobs/get` -> `.../get/accepted`, answered from moto) plus one HTTP range GET
of the first fragment of the image from moto; as many at a time as trackers connect. It is the
transport a tracker's FOTA cycle rides on without the tracker; the ratio "full FOTA cycle per
tracker / bare MQTT+HTTP exchange" (upgrade_s / baseline_s) is the cost of the flow in units of
that exchange, comparable between machines.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
from functools import partial
from pathlib import Path
from typing import Any

import aiohttp

from benchmarks.measure import (Figures, MemoryGrowth, Stopwatch, gather_limited, on_virtual_clock,
                                run_sizes, run_until_done)
from emulators.aws_tracker import Tracker
from otaharness.runtime.broker import MosquittoBroker
from otaharness.runtime.clock import VirtualClock
from otaharness.runtime.mqtt import MqttClient
from otaharness.servers.aws_iot import AwsIotBackend

BUCKET = "fota-bucket"
CONNECT_CONCURRENCY = 100


async def bare_exchanges(broker: MosquittoBroker, s3_endpoint: tuple[str, int], count: int,
                         fragment_size: int) -> None:
    """The baseline: per thing, one jobs/get round trip over MQTT and one range GET from moto."""
    client = MqttClient("bench-baseline", broker.host, broker.port)
    await client.connect()
    waiting: dict[str, asyncio.Future[None]] = {}
    tokens = itertools.count()

    def on_reply(topic: str, payload: bytes) -> None:
        future = waiting.pop(json.loads(payload).get("clientToken", ""), None)
        if future is not None and not future.done():
            future.set_result(None)

    client.add_handler("$aws/things/+/jobs/get/accepted", on_reply)
    await client.subscribe("$aws/things/+/jobs/get/accepted")
    url = f"http://{s3_endpoint[0]}:{s3_endpoint[1]}/fleet"
    range_headers = {"Host": f"{BUCKET}.s3.amazonaws.com", "Range": f"bytes=0-{fragment_size - 1}"}
    connector = aiohttp.TCPConnector(limit=CONNECT_CONCURRENCY)

    async def exchange(http: aiohttp.ClientSession, index: int) -> None:
        token = f"baseline-{next(tokens)}"
        reply = waiting[token] = asyncio.get_running_loop().create_future()
        await client.publish(f"$aws/things/bench-{index}/jobs/get", {"clientToken": token}, qos=1)
        await reply  # it may have come before the PUBACK
        async with http.get(url, headers=range_headers) as response:
            assert response.status == 206, response.status
            await response.read()

    try:
        async with aiohttp.ClientSession(connector=connector, auto_decompress=False) as http:
            await gather_limited(CONNECT_CONCURRENCY, (exchange(http, i) for i in range(count)))
    finally:
        await client.disconnect()


async def fleet_run(clock: VirtualClock, workdir: Path, *, count: int, image_size: int,
                    fragment_size: int) -> Figures:
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
        s3_endpoint = (host, int(port))

        with Stopwatch() as baseline:
            await run_until_done(clock, bare_exchanges(broker, s3_endpoint, count, fragment_size))

        memory = MemoryGrowth()
        trackers = [Tracker(f"bench-{i}", mqtt_host=broker.host, mqtt_port=broker.port, clock=clock,
                            s3_endpoint=s3_endpoint, fragment_size=fragment_size, reboot_seconds=10.0)
                    for i in range(count)]
        with Stopwatch() as connecting:
            await run_until_done(clock, gather_limited(CONNECT_CONCURRENCY, (t.connect() for t in trackers)))
        rss_connected = memory.per_unit_kib(count)

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
        with Stopwatch(clock) as upgrade:
            iot.create_job(jobId="fleet", targets=arns, document=json.dumps(document), targetSelection="SNAPSHOT")
            await run_until_done(clock, finished)
        rss_after = memory.per_unit_kib(count)

        summaries = iot.list_job_executions_for_job(jobId="fleet", maxResults=250)
        statuses = [s["jobExecutionSummary"]["status"] for s in summaries["executionSummaries"]]
        while "nextToken" in summaries:
            summaries = iot.list_job_executions_for_job(jobId="fleet", maxResults=250,
                                                        nextToken=summaries["nextToken"])
            statuses += [s["jobExecutionSummary"]["status"] for s in summaries["executionSummaries"]]
        if len(statuses) != count or set(statuses) != {"SUCCEEDED"}:
            raise AssertionError(f"not every execution SUCCEEDED: {len(statuses)} {set(statuses)}")
        return {
            "trackers": count,
            "connect_s": connecting.seconds,
            "connects_per_s": count / connecting.seconds,
            "upgrade_s": upgrade.seconds,
            "things_per_s": count / upgrade.seconds,
            "virtual_s": upgrade.virtual_seconds,
            "http_requests": sum(t.counters["range_requests"] for t in trackers),
            "baseline_s": baseline.seconds,
            "baseline_exchanges_per_s": count / baseline.seconds,
            "cycle_per_exchange": upgrade.seconds / baseline.seconds,
            "rss_per_thing_connected_kib": rss_connected,
            "rss_per_thing_after_kib": rss_after,
        }
    finally:
        for tracker in trackers:
            await tracker.disconnect()
        clock.remove_quiet_probe(moto_probe)
        backend.reset()
        await backend.stop()
        clock.remove_quiet_probe(broker.flush)
        await broker.stop()


def measure(count: int, image_size: int, fragment_size: int) -> Figures:
    return on_virtual_clock(partial(fleet_run, count=count, image_size=image_size, fragment_size=fragment_size))


def describe(result: dict[str, Any]) -> str:
    return (f"N={result['trackers']:>5}  connect {result['connect_s']:6.2f} s ({result['connects_per_s']:7.1f}/s)"
            f"  upgrade {result['upgrade_s']:6.2f} s ({result['things_per_s']:6.1f} things/s,"
            f" {result['virtual_s']:.0f} virtual s, {result['http_requests']} range GETs)"
            f"  baseline {result['baseline_exchanges_per_s']:.0f} bare MQTT+HTTP exchanges/s,"
            f" cycle = {result['cycle_per_exchange']:.1f} exchanges"
            f"  RSS/thing {result['rss_per_thing_connected_kib']:.0f} KiB connected,"
            f" {result['rss_per_thing_after_kib']:.0f} KiB after")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--counts", type=int, nargs="+", default=[100, 2000])
    parser.add_argument("--image-size", type=int, default=5120)
    parser.add_argument("--fragment-size", type=int, default=2048)
    arguments = parser.parse_args()
    run_sizes("bench_aws_trackers", measure,
              ((count, arguments.image_size, arguments.fragment_size) for count in arguments.counts), describe)


if __name__ == "__main__":
    main()

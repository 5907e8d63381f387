"""Fleet throughput of the AWS IoT Jobs FOTA flow, over mutual TLS and over plain MQTT/HTTP:
N autonomous trackers each take one job end to end.

Run from the repository root: python -m benchmarks.bench_aws_trackers [--counts 100 500]
[--modes plain mtls] [--repeat 3] [--image-size 5120] [--fragment-size 2048]
[--rollout-per-minute 1000] [--no-save]

Per N and per mode, in a fresh process on the virtual clock (reboots cost no real time): a
mosquitto broker, the AWS IoT back end (moto + jobs bridge + MQTT gateway), N things and one
public S3 image. The N trackers connect (each subscribes and asks `$next/get`), then ONE job
targets all N: every tracker goes IN_PROGRESS, downloads the image in range requests from moto,
reboots (10 virtual seconds), connects again, updates SUCCEEDED and reports `appV` in its shadow.
Timed: connecting, and job creation -> the last shadow report (the FOTA cycle).
``--rollout-per-minute M``: the job is a staged rollout (CreateJob's
``jobExecutionsRolloutConfig.maximumPerMinute``, at most 1000 in AWS): M things a virtual minute.
Without it every tracker downloads at once, and each holds 5 descriptors in this process then
(MQTT client, gateway side and gateway link to the broker; HTTPS client and moto's side): above
about 3,800 trackers that passes the 20,000 a process may hold here.

The two modes differ only in the transport, every hop being the same:

* ``mtls`` — what AWS IoT devices do: each thing has its own certificate from the device CA
  (issued and registered directly in moto, attached to the thing: provisioning is timed apart and
  not part of either figure) and its own TLS context; MQTT over TLS with the client certificate
  through the gateway's mqtts listener (identity and policy enforced), the image over HTTPS from
  moto (the S3 host name checked against the server certificate).
* ``plain`` — the same gateway's plain MQTT listener (``AwsIotBackend(plain_mqtt=True)``, identity
  not enforced) and the image over plain HTTP from moto (moto started without its TLS context).

Reported per N: each run's figures, then the ratio mTLS / plain of the FOTA cycle (the target:
at most 1.3) and of connecting, from the medians of ``--repeat`` runs per mode (the modes
alternate which runs first, so that neither always meets the other's leftovers or a quieter
machine). Memory per thing: growth of the process's resident set (trackers, their TLS contexts,
MQTT clients and sockets, and the back end's per-connection state) divided by N, after connecting
and at the end. Every execution is checked SUCCEEDED in moto before a result is printed.

Baseline, in the same process against the same broker and moto (before the job exists): N bare
exchanges, each one MqttClient request/response round trip through the jobs bridge straight on
the broker as its service user (`$aws/things/<thing>/jobs/get` -> `.../get/accepted`, answered
from moto) plus one range GET of the first fragment of the image from moto — over HTTPS in the
mtls mode, HTTP in the plain one, on a pool of kept-alive connections; as many at a time as
trackers connect. It is the transport a tracker's FOTA cycle rides on without the tracker; the
ratio "full FOTA cycle per tracker / bare MQTT+HTTP exchange" (upgrade_s / baseline_s) is the
cost of the flow in units of that exchange, comparable between machines.

Also per run: the most file descriptors the process held while the trackers connected and
during the FOTA cycle (sampled each second: a process may hold 20,000 here), CPU seconds of the process (moto's threads included) for the whole run and the FOTA
cycle, its peak RSS, and the wall seconds of the whole run (broker and back end start, things,
certificates, baseline, connecting, FOTA, teardown), on the fleet collector settings
(otaharness.runtime.collector). mTLS runs are merged into benchmarks/results/aws_fleet.json
(``--no-save``: not), which benchmarks/plot_fleet_scaling.py draws.

``--backend served`` measures the fleet as a user runs it (issue #19: "one process runs 5,000
AWS trackers through a FOTA job"): the back end is ``otaharness serve aws-iot --json`` in its own
process on real time, the system under test; this process holds only the trackers, built as
``otaharness emulate aws-tracker --direct`` builds them (emulators/aws_tracker/cli.py
``build_trackers``: mutual TLS, per-thing identities from ``--credentials-dir``). Before the
clock starts, the operator (otaharness/load/aws_operator.py) stores the image and provisions
every thing, key and certificate through the IoT API, and the trackers connect. Timed: job
creation -> every tracker has reported the new ``appV`` (the FOTA cycle, real seconds; the reboot
takes ``--reboot-seconds`` of it), judged from the trackers and cross-checked with the back end's
execution statuses. No staged rollout: each tracker holds 2 descriptors here (MQTT and HTTPS).
Reported: CPU seconds of each process (serve's counted with its child processes, mosquitto),
peak RSS and descriptors of the fleet process. Baseline, before the trackers connect: N bare
exchanges through ``serve`` as the first tracker (its certificate and client id, through the
gateway over mutual TLS: `jobs/get` -> `get/accepted`) plus one range GET each over HTTPS from
serve's moto, as the in-process baseline; ``cycle_per_exchange`` = FOTA cycle / baseline. Saved to
benchmarks/results/aws_fleet_served.json.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import ssl
import statistics
import tempfile
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path
from typing import Any, Self
from urllib.parse import urlsplit

import aiohttp
from otaharness.emulators.aws_tracker import Tracker
from otaharness.emulators.aws_tracker import cli as tracker_cli

from benchmarks.measure import (
    Figures,
    MemoryGrowth,
    ServedFlows,
    Stopwatch,
    gather_limited,
    on_virtual_clock,
    peak_rss_mib,
    report,
    rss_bytes,
    run_sizes,
    run_until_done,
    save_results,
)
from otaharness.load.aws_operator import Image, IotOperator
from otaharness.runtime.broker import MosquittoBroker
from otaharness.runtime.clock import RealClock, VirtualClock
from otaharness.runtime.collector import tune_for_fleets
from otaharness.runtime.mqtt import MqttClient
from otaharness.runtime.pki import client_context
from otaharness.runtime.runtime import raise_fd_limit
from otaharness.servers.aws_iot import DATA_ENDPOINT, AwsIotBackend
from otaharness.servers.aws_iot.moto_server import DUMMY_CREDENTIALS

BUCKET = "fota-bucket"
S3_HOST = f"{BUCKET}.s3.amazonaws.com"
CONNECT_CONCURRENCY = 100
MODES = ("plain", "mtls")
TARGET_RATIO = 1.3  # mTLS FOTA cycle / plain FOTA cycle


def host_and_port(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    assert parts.hostname is not None and parts.port is not None, url
    return parts.hostname, parts.port


async def bare_exchanges(client: MqttClient, thing_of: Callable[[int], str], s3_endpoint: tuple[str, int],
                         count: int, fragment_size: int, https: ssl.SSLContext | None,
                         replies: str = "$aws/things/+/jobs/get/accepted") -> None:
    """The baseline: per thing, one jobs/get round trip over MQTT (on ``client``, for the thing
    ``thing_of(index)``, the answers subscribed as ``replies``) and one range GET from moto;
    ``client`` is disconnected at the end."""
    await client.connect()
    waiting: dict[str, asyncio.Future[None]] = {}
    tokens = itertools.count()

    def on_reply(topic: str, payload: bytes) -> None:
        future = waiting.pop(json.loads(payload).get("clientToken", ""), None)
        if future is not None and not future.done():
            future.set_result(None)

    client.add_handler(replies, on_reply)
    await client.subscribe(replies)
    scheme = "https" if https is not None else "http"
    url = f"{scheme}://{s3_endpoint[0]}:{s3_endpoint[1]}/fleet"
    range_headers = {"Host": S3_HOST, "Range": f"bytes=0-{fragment_size - 1}"}
    tls: dict[str, Any] = {"ssl": https, "server_hostname": S3_HOST} if https is not None else {}
    connector = aiohttp.TCPConnector(limit=CONNECT_CONCURRENCY)

    async def exchange(http: aiohttp.ClientSession, index: int) -> None:
        token = f"baseline-{next(tokens)}"
        reply = waiting[token] = asyncio.get_running_loop().create_future()
        await client.publish(f"$aws/things/{thing_of(index)}/jobs/get", {"clientToken": token}, qos=1)
        await reply  # it may have come before the PUBACK
        async with http.get(url, headers=range_headers, **tls) as response:
            assert response.status == 206, response.status
            await response.read()

    try:
        async with aiohttp.ClientSession(connector=connector, auto_decompress=False) as http:
            await gather_limited(CONNECT_CONCURRENCY, (exchange(http, i) for i in range(count)))
    finally:
        await client.disconnect()


class DescriptorPeak:
    """The most file descriptors this process held while the block ran, sampled every
    ``interval`` seconds from a thread (counting /proc/self/fd costs milliseconds at 20,000)."""

    def __init__(self, interval: float = 1.0) -> None:
        self.interval = interval
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, name="descriptor-peak", daemon=True)

    def _sample(self) -> None:
        while True:
            self.peak = max(self.peak, len(os.listdir("/proc/self/fd")))
            if self._stop.wait(self.interval):
                return

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, len(os.listdir("/proc/self/fd")))


def provision_certificates(backend: AwsIotBackend, names: list[str]) -> list[tuple[Path, Path]]:
    """Per thing: a certificate from the device CA, registered ACTIVE and attached to the thing
    (what create_keys_and_certificate + attach_thing_principal do, without N HTTPS calls)."""
    iot_backend = backend.moto.iot_backend()
    files = []
    for name in names:
        issued = backend.pki.device_ca.issue("AWS IoT Certificate")
        registered = backend.register_issued_certificate(issued)
        iot_backend.attach_thing_principal(name, registered["certificateArn"])
        files.append(backend.pki.write_identity(name, issued))
    return files


def every_tracker_reported_a_version(trackers: list[Tracker]) -> asyncio.Future[None]:
    """Done when each tracker has reported its application version to its shadow (after its
    reboot into the job's image): judged from the trackers' own logs."""
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
    return finished


async def fleet_run(clock: VirtualClock, workdir: Path, *, mode: str, count: int, image_size: int,
                    fragment_size: int, rollout_per_minute: int | None = None) -> Figures:
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, not {mode!r}")
    mtls = mode == "mtls"
    broker = MosquittoBroker()
    await broker.start()
    clock.add_quiet_probe(broker.flush)
    backend = AwsIotBackend(clock, plain_mqtt=not mtls, https=mtls)
    moto_probe = backend.moto.wait_quiet  # holds the clock while moto's threads serve a request
    await backend.start(broker.host, broker.port, broker.service_credentials)
    clock.add_quiet_probe(moto_probe)
    trackers: list[Tracker] = []
    try:
        endpoints = backend.endpoints()
        iot, s3 = backend.client("iot"), backend.client("s3")
        names = [f"bench-{i}" for i in range(count)]
        arns = [iot.create_thing(thingName=name)["thingArn"] for name in names]
        s3.create_bucket(Bucket=BUCKET)
        s3.put_object(Bucket=BUCKET, Key="fleet", Body=bytes(range(256)) * (image_size // 256) +
                      bytes(image_size % 256), ACL="public-read")
        s3_endpoint = host_and_port(endpoints["aws"])
        mqtt_host, mqtt_port = host_and_port(endpoints["mqtts" if mtls else "mqtt"])
        ca_file = Path(endpoints["ca"])
        with Stopwatch() as provisioning:
            identities = provision_certificates(backend, names) if mtls else []

        with Stopwatch() as baseline:
            username, password = broker.service_credentials or (None, None)
            straight_to_mosquitto = MqttClient("bench-baseline", broker.host, broker.port, username=username,
                                               password=password)
            await run_until_done(clock, bare_exchanges(straight_to_mosquitto, lambda index: f"bench-{index}",
                                                       s3_endpoint, count, fragment_size,
                                                       client_context(ca_file) if mtls else None))

        memory = MemoryGrowth()
        with Stopwatch() as contexts:
            tls = [client_context(ca_file, certificate, key) for certificate, key in identities]
        trackers = [Tracker(name, mqtt_host=mqtt_host, mqtt_port=mqtt_port, clock=clock,
                            s3_endpoint=s3_endpoint, fragment_size=fragment_size, reboot_seconds=10.0,
                            tls=tls[i] if mtls else None, mqtt_server_name=DATA_ENDPOINT if mtls else None)
                    for i, name in enumerate(names)]
        with Stopwatch() as connecting, DescriptorPeak() as connect_descriptors:
            await run_until_done(clock, gather_limited(CONNECT_CONCURRENCY, (t.connect() for t in trackers)))
        rss_connected = memory.per_unit_kib(count)

        finished = every_tracker_reported_a_version(trackers)
        # "https" either way: without a TLS context the tracker downloads over plain HTTP.
        document = {"operation": "app_fw_update", "size": image_size, "fwversion": "1.0.1",
                    "location": {"protocol": "https", "host": S3_HOST, "path": "fleet"}}
        with Stopwatch(clock) as upgrade, DescriptorPeak() as upgrade_descriptors:
            rollout = ({"jobExecutionsRolloutConfig": {"maximumPerMinute": rollout_per_minute}}
                       if rollout_per_minute else {})
            iot.create_job(jobId="fleet", targets=arns, document=json.dumps(document), targetSelection="SNAPSHOT",
                           **rollout)
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
        secure = sum(tracker.tls is not None for tracker in trackers)
        if secure != (count if mtls else 0):
            raise AssertionError(f"{secure} of {count} trackers on TLS in mode {mode}")
        return {
            "mode": mode,
            "trackers": count,
            "devices": count,
            "upgrade_cpu_s": upgrade.cpu_seconds,
            "provision_s": provisioning.seconds,
            "tls_contexts_s": contexts.seconds,
            "connect_s": connecting.seconds,
            "connects_per_s": count / connecting.seconds,
            "upgrade_s": upgrade.seconds,
            "things_per_s": count / upgrade.seconds,
            "virtual_s": upgrade.virtual_seconds,
            "rollout_per_minute": rollout_per_minute,
            "http_requests": sum(t.counters["range_requests"] for t in trackers),
            "baseline_s": baseline.seconds,
            "baseline_exchanges_per_s": count / baseline.seconds,
            "cycle_per_exchange": upgrade.seconds / baseline.seconds,
            "rss_per_thing_connected_kib": rss_connected,
            "rss_per_thing_after_kib": rss_after,
            "peak_fds_connect": connect_descriptors.peak,
            "peak_fds_upgrade": upgrade_descriptors.peak,
        }
    finally:
        for tracker in trackers:
            await tracker.disconnect()
        clock.remove_quiet_probe(moto_probe)
        backend.reset()
        await backend.stop()
        clock.remove_quiet_probe(broker.flush)
        await broker.stop()


# ---------------------------------------------------------------- back end in its own process

SERVED_TIME_LIMIT = 900.0  # real seconds the FOTA cycle may take before the run is given up
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
PROVISION_THREADS = 10  # botocore's default connection pool per client


def process_tree_cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` (all its threads) and of its live
    descendants, from /proc (a child's own figure, not RUSAGE_CHILDREN, which counts only
    children already waited for)."""
    total = 0.0
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime, stime (proc(5))
        children = [int(child) for task in Path(f"/proc/{pid}/task").iterdir()
                    for child in (task / "children").read_text().split()]
    except OSError:
        return total
    return total + sum(process_tree_cpu_seconds(child) for child in children)


def thing_arns(operator: IotOperator, prefix: str) -> dict[str, str]:
    """name -> ARN of the account's things named ``prefix``… (ListThings pages, not one call a thing)."""
    arns = {}
    for page in operator.iot.get_paginator("list_things").paginate(PaginationConfig={"PageSize": 250}):
        arns.update((thing["thingName"], thing["thingArn"]) for thing in page["things"]
                    if thing["thingName"].startswith(prefix))
    return arns


async def served_fleet_run(served: ServedFlows, operator: IotOperator, image: Image, credentials: Path,
                           *, count: int, fragment_size: int, reboot_seconds: float) -> Figures:
    endpoints = served.endpoints
    prefix = "bench-"
    arguments = argparse.ArgumentParser()
    tracker_cli.add_arguments(arguments)
    options = arguments.parse_args([
        "--mqtt", endpoints["mqtts"], "--ca", endpoints["ca"], "--credentials-dir", str(credentials),
        "--s3-endpoint", endpoints["aws"], "--server-name", DATA_ENDPOINT, "--count", str(count),
        "--prefix", prefix, "--fragment-size", str(fragment_size),
        "--reboot-seconds", str(reboot_seconds), "--direct"])
    memory = MemoryGrowth()
    trackers = tracker_cli.build_trackers(options, RealClock())
    try:
        with Stopwatch() as baseline:
            # the first tracker's identity (the gateway takes only a thing's own client id), through
            # the gateway, before the trackers connect
            first = trackers[0]
            as_first = MqttClient(first.thing_name, first.mqtt_host, first.mqtt_port,
                                  tls=first.tls, server_hostname=first.mqtt_server_name)
            await bare_exchanges(as_first, lambda _index: first.thing_name, host_and_port(endpoints["aws"]),
                                 count, fragment_size, client_context(endpoints["ca"]),
                                 replies=f"$aws/things/{first.thing_name}/jobs/get/accepted")
        with Stopwatch() as connecting, DescriptorPeak() as connect_descriptors:
            await gather_limited(tracker_cli.CONNECT_CONCURRENCY, (t.connect() for t in trackers))
        rss_connected = memory.per_unit_kib(count)
        arns = await asyncio.to_thread(thing_arns, operator, prefix)
        if len(arns) != count:
            raise AssertionError(f"{len(arns)} things of {count} exist")

        finished = every_tracker_reported_a_version(trackers)
        serve_cpu_before = process_tree_cpu_seconds(served.pid)
        with Stopwatch() as upgrade, DescriptorPeak() as upgrade_descriptors:
            # boto3 blocks: from a thread, so that the trackers are served meanwhile
            await asyncio.to_thread(operator.create_job, "fleet", list(arns.values()), image)
            try:
                await asyncio.wait_for(finished, SERVED_TIME_LIMIT)
            except TimeoutError:
                waiting = sum(tracker.app_version != image.version for tracker in trackers)
                raise AssertionError(f"{waiting} of {count} trackers not upgraded after "
                                     f"{SERVED_TIME_LIMIT:g} s") from None
        serve_upgrade_cpu = process_tree_cpu_seconds(served.pid) - serve_cpu_before
        rss_after = memory.per_unit_kib(count)

        upgraded = sum(tracker.app_version == image.version for tracker in trackers)
        statuses = await asyncio.to_thread(operator.execution_statuses, "fleet")
        if upgraded != count or len(statuses) != count or set(statuses.values()) != {"SUCCEEDED"}:
            raise AssertionError(f"{upgraded} of {count} trackers run {image.version}; back end:"
                                 f" {len(statuses)} executions, {set(statuses.values())}")
        if any(tracker.tls is None for tracker in trackers):
            raise AssertionError("a tracker is not on mutual TLS")
        return {
            "connect_s": connecting.seconds,
            "connects_per_s": count / connecting.seconds,
            "upgrade_s": upgrade.seconds,
            "things_per_s": count / upgrade.seconds,
            "fleet_upgrade_cpu_s": upgrade.cpu_seconds,
            "serve_upgrade_cpu_s": serve_upgrade_cpu,
            "reboot_s": reboot_seconds,
            "http_requests": sum(t.counters["range_requests"] for t in trackers),
            "fleet_rss_per_thing_connected_kib": rss_connected,
            "fleet_rss_per_thing_after_kib": rss_after,
            "fleet_peak_fds_connect": connect_descriptors.peak,
            "fleet_peak_fds_upgrade": upgrade_descriptors.peak,
            "baseline_s": baseline.seconds,
            "baseline_exchanges_per_s": count / baseline.seconds,
            "cycle_per_exchange": upgrade.seconds / baseline.seconds,
        }
    finally:
        await asyncio.gather(*(tracker.disconnect() for tracker in trackers), return_exceptions=True)


def measure_served(count: int, image_size: int, fragment_size: int, reboot_seconds: float) -> Figures:
    """One run with the back end in its own process (in a fresh process: run_sizes)."""
    tune_for_fleets()
    raise_fd_limit()
    # moto takes any credentials; boto3 reads them from the environment, as for a user's shell
    os.environ.setdefault("AWS_ACCESS_KEY_ID", DUMMY_CREDENTIALS["aws_access_key_id"])
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", DUMMY_CREDENTIALS["aws_secret_access_key"])
    with Stopwatch() as whole, ServedFlows("aws-iot") as served, \
            tempfile.TemporaryDirectory(prefix="bench-aws-") as folder:
        operator = IotOperator(served.endpoints)
        image = operator.store_image(BUCKET, "fleet", "1.0.1", bytes(range(256)) * (
            image_size // 256) + bytes(image_size % 256))
        credentials = Path(folder) / "credentials"
        names = [f"bench-{index}" for index in range(1, count + 1)]
        with Stopwatch() as provisioning, ThreadPoolExecutor(PROVISION_THREADS) as pool:
            # each IoT call waits on the wire more than it works: several at a time (boto3
            # clients are thread-safe), as a factory script would
            list(pool.map(partial(operator.provision, folder=credentials),
                          (names[i::PROVISION_THREADS] for i in range(PROVISION_THREADS))))
        figures = asyncio.run(served_fleet_run(served, operator, image, credentials, count=count,
                                               fragment_size=fragment_size,
                                               reboot_seconds=reboot_seconds))
        serve_cpu = process_tree_cpu_seconds(served.pid)
        serve_rss_mib = rss_bytes(served.pid) / 2**20
    return {"backend": "served", "mode": "mtls", "trackers": count, "devices": count,
            "provision_s": provisioning.seconds, **figures, "wall_s": whole.seconds,
            "fleet_cpu_s": whole.cpu_seconds, "serve_cpu_s": serve_cpu,
            "serve_rss_mib": serve_rss_mib, "fleet_peak_rss_mib": peak_rss_mib()}


def describe_served(result: dict[str, Any]) -> str:
    return (f"N={result['trackers']:>5} served mtls  provision {result['provision_s']:.1f} s,"
            f" connect {result['connect_s']:.2f} s ({result['connects_per_s']:.0f}/s);"
            f" FOTA cycle {result['upgrade_s']:.2f} s ({result['things_per_s']:.1f} things/s,"
            f" reboot {result['reboot_s']:g} s, {result['http_requests']} range GETs),"
            f" CPU s fleet {result['fleet_upgrade_cpu_s']:.1f} / serve {result['serve_upgrade_cpu_s']:.1f};"
            f" whole run {result['wall_s']:.1f} s, CPU s fleet {result['fleet_cpu_s']:.1f} /"
            f" serve {result['serve_cpu_s']:.1f}; fleet process: peak RSS"
            f" {result['fleet_peak_rss_mib']:.0f} MiB ({result['fleet_rss_per_thing_after_kib']:.0f}"
            f" KiB/thing), descriptors at most {result['fleet_peak_fds_connect']} connected,"
            f" {result['fleet_peak_fds_upgrade']} in FOTA; serve RSS {result['serve_rss_mib']:.0f} MiB;"
            f" baseline {result['baseline_exchanges_per_s']:.0f} bare MQTT+HTTPS exchanges/s,"
            f" FOTA cycle = {result['cycle_per_exchange']:.1f} x bare exchange")


def measure(count: int, image_size: int, fragment_size: int, mode: str,
            rollout_per_minute: int | None = None) -> Figures:
    tune_for_fleets()
    with Stopwatch() as whole:
        figures = on_virtual_clock(partial(fleet_run, mode=mode, count=count, image_size=image_size,
                                           fragment_size=fragment_size, rollout_per_minute=rollout_per_minute),
                                   real_time_limit=600.0)
    return {**figures, "wall_s": whole.seconds, "cpu_s": whole.cpu_seconds, "peak_rss_mib": peak_rss_mib()}


def describe(result: dict[str, Any]) -> str:
    rollout = f", rollout {result['rollout_per_minute']}/min" if result.get("rollout_per_minute") else ""
    return (f"N={result['trackers']:>5} {result['mode']:>5}  connect {result['connect_s']:6.2f} s"
            f" ({result['connects_per_s']:7.1f}/s)"
            f"  upgrade {result['upgrade_s']:6.2f} s ({result['things_per_s']:6.1f} things/s,"
            f" {result['virtual_s']:.0f} virtual s, {result['http_requests']} range GETs"
            f"{rollout})"
            f"  baseline {result['baseline_exchanges_per_s']:.0f} bare MQTT+HTTP exchanges/s,"
            f" cycle = {result['cycle_per_exchange']:.1f} exchanges"
            f"  RSS/thing {result['rss_per_thing_connected_kib']:.0f} KiB connected,"
            f" {result['rss_per_thing_after_kib']:.0f} KiB after; descriptors at most"
            f" {result['peak_fds_connect']} connected, {result['peak_fds_upgrade']} in FOTA; whole run {result['wall_s']:.1f} s,"
            f" {result['cpu_s']:.1f} CPU s (FOTA {result['upgrade_cpu_s']:.1f}),"
            f" peak RSS {result['peak_rss_mib']:.0f} MiB")


def compare(by_mode: dict[str, list[Figures]]) -> Figures:
    """mTLS against plain for one N: medians over the repeats."""
    def median(mode: str, key: str) -> float:
        return statistics.median(result[key] for result in by_mode[mode])

    ratio = median("mtls", "upgrade_s") / median("plain", "upgrade_s")
    return {
        "trackers": by_mode["mtls"][0]["trackers"],
        "comparison": "mtls/plain",
        "repeats": min(len(by_mode["mtls"]), len(by_mode["plain"])),
        "mtls_upgrade_s": median("mtls", "upgrade_s"),
        "plain_upgrade_s": median("plain", "upgrade_s"),
        "mtls_upgrade_runs_s": [result["upgrade_s"] for result in by_mode["mtls"]],
        "plain_upgrade_runs_s": [result["upgrade_s"] for result in by_mode["plain"]],
        "upgrade_ratio": ratio,
        "mtls_connect_s": median("mtls", "connect_s"),
        "plain_connect_s": median("plain", "connect_s"),
        "connect_ratio": median("mtls", "connect_s") / median("plain", "connect_s"),
        "baseline_ratio": median("mtls", "baseline_s") / median("plain", "baseline_s"),
        "mtls_rss_per_thing_after_kib": median("mtls", "rss_per_thing_after_kib"),
        "plain_rss_per_thing_after_kib": median("plain", "rss_per_thing_after_kib"),
        "target_ratio": TARGET_RATIO,
        "within_target": ratio <= TARGET_RATIO,
    }


def describe_comparison(result: dict[str, Any]) -> str:
    verdict = "within" if result["within_target"] else "OVER"
    return (f"N={result['trackers']:>5}  mTLS/plain (median of {result['repeats']}): FOTA cycle"
            f" {result['mtls_upgrade_s']:.2f} s / {result['plain_upgrade_s']:.2f} s ="
            f" {result['upgrade_ratio']:.2f}x ({verdict} the {result['target_ratio']}x target),"
            f" connect {result['mtls_connect_s']:.2f} s / {result['plain_connect_s']:.2f} s ="
            f" {result['connect_ratio']:.2f}x, baseline {result['baseline_ratio']:.2f}x,"
            f" RSS/thing {result['mtls_rss_per_thing_after_kib']:.0f} / "
            f"{result['plain_rss_per_thing_after_kib']:.0f} KiB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--counts", type=int, nargs="+", default=[100, 500])
    parser.add_argument("--modes", nargs="+", choices=MODES, default=list(MODES))
    parser.add_argument("--repeat", type=int, default=3,
                        help="runs per mode and N, the modes alternating; the comparison takes medians")
    parser.add_argument("--image-size", type=int, default=5120)
    parser.add_argument("--fragment-size", type=int, default=2048)
    parser.add_argument("--rollout-per-minute", type=int, default=None,
                        help="a staged rollout: the job reaches this many things a (virtual) minute")
    parser.add_argument("--backend", choices=("in-process", "served"), default="in-process",
                        help="served: the back end is `otaharness serve aws-iot` in its own process, "
                        "on real time, and this process holds only the trackers (mTLS)")
    parser.add_argument("--reboot-seconds", type=float, default=1.0,
                        help="served: the trackers' boot after the upgrade (real seconds)")
    parser.add_argument("--no-save", action="store_true", help="do not write benchmarks/results/")
    arguments = parser.parse_args()
    if arguments.backend == "served":
        for count in arguments.counts:
            for _ in range(arguments.repeat):  # each run saved as it ends, before a larger one
                [result] = run_sizes("bench_aws_trackers", measure_served,
                                     [(count, arguments.image_size, arguments.fragment_size,
                                       arguments.reboot_seconds)], describe_served)
                if not arguments.no_save:
                    save_results("aws_fleet_served", [result], description=__doc__.splitlines()[0]
                                 + " (back end in its own process)")
        return
    modes = list(dict.fromkeys(arguments.modes))
    for count in arguments.counts:
        by_mode: dict[str, list[Figures]] = {mode: [] for mode in modes}
        for run in range(arguments.repeat):
            order = modes if run % 2 == 0 else modes[::-1]  # neither mode always runs first
            for result in run_sizes("bench_aws_trackers", measure,
                                    ((count, arguments.image_size, arguments.fragment_size, mode,
                                      arguments.rollout_per_minute)
                                     for mode in order), describe):
                by_mode[result["mode"]].append(result)
                if result["mode"] == "mtls" and not arguments.no_save:
                    save_results("aws_fleet", [result], description=__doc__.splitlines()[0])
        if set(modes) == set(MODES):
            comparison = compare(by_mode)
            report("bench_aws_trackers", comparison, describe_comparison(comparison))


if __name__ == "__main__":
    main()

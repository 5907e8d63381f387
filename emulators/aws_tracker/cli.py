"""`otaharness emulate aws-tracker`: N nRF asset trackers on real time against any broker and S3
endpoint, until interrupted. Every tracker event is logged (logger `emulators.aws_tracker`).

    otaharness emulate aws-tracker --mqtt mqtt://127.0.0.1:1883 \\
        --s3-endpoint http://127.0.0.1:5000 --count 100 --prefix tracker-
"""

from __future__ import annotations

import argparse
import asyncio
import logging
from urllib.parse import urlsplit

from emulators.aws_tracker.tracker import Tracker, TrackerError
from otaharness.runtime.clock import RealClock
from otaharness.runtime.mqtt import MqttError

log = logging.getLogger("emulators.aws_tracker")

# Connections opened at once: a fleet starting together should not flood the broker's backlog.
CONNECT_CONCURRENCY = 50


class EndpointError(ValueError):
    """An --mqtt or --s3-endpoint URL that names no host and port."""


def endpoint(url: str, schemes: tuple[str, ...], default_port: int) -> tuple[str, int]:
    parts = urlsplit(url)
    if parts.scheme not in schemes or not parts.hostname:
        raise EndpointError(f"{url!r} is not a {' or '.join(s + '://host:port' for s in schemes)} URL")
    return parts.hostname, parts.port or default_port


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--mqtt", required=True, metavar="URL", help="broker, mqtt://host:port")
    parser.add_argument("--s3-endpoint", metavar="URL",
                        help="where <bucket>.s3.amazonaws.com is dialled, http://host:port "
                             "(default: the job document's host on port 80)")
    parser.add_argument("--count", type=int, default=1, help="number of trackers (default 1)")
    parser.add_argument("--prefix", default="tracker-", help="thing name prefix; names are "
                        "<prefix>1 ... <prefix>N (default tracker-)")
    parser.add_argument("--step-driven", action="store_true",
                        help="do not act on jobs by themselves (only connect)")
    parser.add_argument("--app-version", default="1.0.0", help="installed version (default 1.0.0)")
    parser.add_argument("--fragment-size", type=int, default=2048, help="download range size in bytes")
    parser.add_argument("--reboot-seconds", type=float, default=10.0, help="boot time after an upgrade")
    parser.add_argument("--bind-address", help="local address the trackers' connections bind to")


def build_trackers(args: argparse.Namespace, clock: RealClock) -> list[Tracker]:
    if args.count < 1:
        raise EndpointError(f"--count must be at least 1, not {args.count}")
    mqtt_host, mqtt_port = endpoint(args.mqtt, ("mqtt", "tcp"), 1883)
    s3 = endpoint(args.s3_endpoint, ("http",), 80) if args.s3_endpoint else None
    return [
        Tracker(f"{args.prefix}{index}", mqtt_host=mqtt_host, mqtt_port=mqtt_port, clock=clock,
                s3_endpoint=s3, bind_address=args.bind_address, app_version=args.app_version,
                autonomous=not args.step_driven, fragment_size=args.fragment_size,
                reboot_seconds=args.reboot_seconds)
        for index in range(1, args.count + 1)
    ]


async def run(args: argparse.Namespace) -> int:
    try:
        trackers = build_trackers(args, RealClock())
    except EndpointError as error:
        log.error("%s", error)
        return 2
    gate = asyncio.Semaphore(CONNECT_CONCURRENCY)

    async def connect(tracker: Tracker) -> bool:
        async with gate:
            try:
                await tracker.connect()
                return True
            except (MqttError, TrackerError) as error:
                log.error("%s: %s", tracker.thing_name, error)
                return False

    try:
        connected = await asyncio.gather(*(connect(tracker) for tracker in trackers))
        log.info("%d of %d trackers connected; running until interrupted", sum(connected), len(trackers))
        if not any(connected):
            return 1
        await asyncio.Event().wait()  # until the task is cancelled (Ctrl-C)
        return 0
    finally:
        await asyncio.gather(*(tracker.disconnect() for tracker in trackers), return_exceptions=True)

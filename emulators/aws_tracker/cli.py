"""`otaharness emulate aws-tracker`: N nRF asset trackers on real time against any broker and S3
endpoint, until interrupted. Every tracker event is logged (logger `otaharness.emulators.aws_tracker`).

A real AWS IoT account (mutual TLS on 8883; the thing's certificate and key as downloaded from
AWS, Amazon Root CA 1 from the system's trust store unless --ca names a file)::

    otaharness emulate aws-tracker --mqtt mqtts://xxxx-ats.iot.eu-west-1.amazonaws.com:8883 \\
        --cert tracker-1.cert.pem --key tracker-1.private.key --prefix tracker- --count 1

Many trackers, each with its own certificate: ``--credentials-dir DIR`` holding
``<thing>.cert.pem`` and ``<thing>.private.key`` per thing. Against ``otaharness serve aws-iot``::

    otaharness emulate aws-tracker --mqtt mqtts://127.0.0.1:P --ca CA --credentials-dir creds \\
        --s3-endpoint https://127.0.0.1:Q --server-name a1b2c3d4e5f6g7-ats.iot.us-east-1.amazonaws.com

Plain MQTT (``mqtt://``) and HTTP stay available for back ends without TLS.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
from pathlib import Path
from urllib.parse import urlsplit

from otaharness.emulators.aws_tracker.tracker import Tracker, TrackerError
from otaharness.runtime.clock import RealClock
from otaharness.runtime.mqtt import MqttError
from otaharness.runtime.pki import client_context

log = logging.getLogger("otaharness.emulators.aws_tracker")

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
    parser.add_argument("--mqtt", required=True, metavar="URL",
                        help="broker: mqtts://host:8883 (mutual TLS, as AWS IoT) or mqtt://host:port")
    parser.add_argument("--s3-endpoint", metavar="URL",
                        help="where <bucket>.s3.amazonaws.com is dialled, https://host:port or "
                             "http://host:port (default: the job document's host)")
    parser.add_argument("--ca", metavar="FILE", help="PEM file of the CA the servers chain to "
                        "(default: the system's trust store, which holds Amazon Root CA 1)")
    parser.add_argument("--cert", metavar="FILE", help="the tracker's certificate (PEM); with --count 1")
    parser.add_argument("--key", metavar="FILE", help="the tracker's private key (PEM)")
    parser.add_argument("--credentials-dir", metavar="DIR", help="per tracker <thing>.cert.pem and "
                        "<thing>.private.key")
    parser.add_argument("--server-name", metavar="HOST", help="host name the broker's certificate "
                        "is checked for (default: the --mqtt host)")
    parser.add_argument("--count", type=int, default=1, help="number of trackers (default 1)")
    parser.add_argument("--prefix", default="tracker-", help="thing name prefix; names are "
                        "<prefix>1 ... <prefix>N (default tracker-)")
    parser.add_argument("--step-driven", action="store_true",
                        help="do not act on jobs by themselves (only connect)")
    parser.add_argument("--app-version", default="1.0.0", help="installed version (default 1.0.0)")
    parser.add_argument("--fragment-size", type=int, default=2048, help="download range size in bytes")
    parser.add_argument("--reboot-seconds", type=float, default=10.0, help="boot time after an upgrade")
    parser.add_argument("--bind-address", help="local address the trackers' connections bind to")


def _credentials(args: argparse.Namespace, thing: str) -> tuple[str, str]:
    if args.credentials_dir:
        folder = Path(args.credentials_dir)
        cert, key = folder / f"{thing}.cert.pem", folder / f"{thing}.private.key"
    elif args.cert and args.key:
        cert, key = Path(args.cert), Path(args.key)
    else:
        raise EndpointError("mqtts:// needs --cert and --key, or --credentials-dir")
    for path in (cert, key):
        if not path.is_file():
            raise EndpointError(f"{path} does not exist")
    return str(cert), str(key)


def build_trackers(args: argparse.Namespace, clock: RealClock) -> list[Tracker]:
    if args.count < 1:
        raise EndpointError(f"--count must be at least 1, not {args.count}")
    secure = urlsplit(args.mqtt).scheme == "mqtts"
    mqtt_host, mqtt_port = endpoint(args.mqtt, ("mqtts",) if secure else ("mqtt", "tcp"),
                                    8883 if secure else 1883)
    s3 = None
    if args.s3_endpoint:
        s3 = endpoint(args.s3_endpoint, ("https",) if secure else ("http",), 443 if secure else 80)
    if args.cert and args.count != 1 and not args.credentials_dir:
        raise EndpointError("--cert/--key are one tracker's identity: use --count 1 or --credentials-dir")
    trackers = []
    for index in range(1, args.count + 1):
        thing = f"{args.prefix}{index}"
        tls = None
        if secure:
            cert, key = _credentials(args, thing)
            try:
                tls = client_context(args.ca, cert, key)
            except (OSError, ValueError) as error:  # ssl.SSLError included
                raise EndpointError(f"{thing}: cannot use {cert} / {key}: {error}") from None
        trackers.append(Tracker(
            thing, mqtt_host=mqtt_host, mqtt_port=mqtt_port, clock=clock, s3_endpoint=s3,
            bind_address=args.bind_address, app_version=args.app_version,
            autonomous=not args.step_driven, fragment_size=args.fragment_size,
            reboot_seconds=args.reboot_seconds, tls=tls,
            mqtt_server_name=args.server_name or mqtt_host))
    return trackers


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

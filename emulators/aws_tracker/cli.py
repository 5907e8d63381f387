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

The trackers reach the broker and ``--s3-endpoint`` through the fleet's local proxy, each from
its own loopback address, so ``--fault``, ``--capture``, ``--json`` and ``-v`` work as for every
kind (emulators/fleet.py); without ``--s3-endpoint`` the download goes straight to the job
document's host (no link fault or capture on it). A shared ``--bind-address`` means ``--direct``.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import re
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit

from otaharness.emulators.aws_tracker.tracker import Tracker, TrackerError
from otaharness.emulators.fleet import (
    HTTP,
    MQTT,
    Fleet,
    FleetError,
    add_fleet_arguments,
    device_count,
    url_argument,
)
from otaharness.emulators.fleet_report import FleetReport

from otaharness.runtime.clock import RealClock
from otaharness.runtime.collector import tune_for_fleets
from otaharness.runtime.mqtt import MqttError
from otaharness.runtime.pki import client_context

log = logging.getLogger("otaharness.emulators.aws_tracker")

# Connections opened at once: a fleet starting together should not flood the broker's backlog.
CONNECT_CONCURRENCY = 50


class EndpointError(FleetError):
    """An --mqtt or --s3-endpoint URL that names no host and port, or tracker credentials that
    are missing or do not load."""


def endpoint(url: str, schemes: tuple[str, ...], default_port: int) -> tuple[str, int]:
    parts = urlsplit(url)
    if parts.scheme not in schemes or not parts.hostname:
        raise EndpointError(f"{url!r} is not a {' or '.join(s + '://host:port' for s in schemes)} URL")
    return parts.hostname, parts.port or default_port


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--mqtt", required=True, metavar="URL", type=url_argument(MQTT),
                        help="broker: mqtts://host:8883 (mutual TLS, as AWS IoT) or mqtt://host:port")
    parser.add_argument("--s3-endpoint", metavar="URL", type=url_argument(HTTP),
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
    parser.add_argument("--count", type=device_count, default=1, help="number of trackers (default 1)")
    parser.add_argument("--prefix", default="tracker-", help="thing name prefix; names are "
                        "<prefix>1 ... <prefix>N (default tracker-)")
    parser.add_argument("--step-driven", action="store_true",
                        help="do not act on jobs by themselves (only connect)")
    parser.add_argument("--app-version", default="1.0.0", help="installed version (default 1.0.0)")
    parser.add_argument("--fragment-size", type=int, default=2048, help="download range size in bytes")
    parser.add_argument("--reboot-seconds", type=float, default=10.0, help="boot time after an upgrade")
    parser.add_argument("--bind-address", help="local address the trackers' connections bind to "
                        "(all of them: no local proxy then, as with --direct)")
    add_fleet_arguments(parser)


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


def endpoints(args: argparse.Namespace) -> tuple[tuple[str, int], tuple[str, int] | None]:
    """The broker's and S3's (host, port) as the user named them (EndpointError if not URLs)."""
    if args.count < 1:
        raise EndpointError(f"--count must be at least 1, not {args.count}")
    secure = urlsplit(args.mqtt).scheme == "mqtts"
    mqtt = endpoint(args.mqtt, ("mqtts",) if secure else ("mqtt", "tcp"), 8883 if secure else 1883)
    s3 = None
    if args.s3_endpoint:
        s3 = endpoint(args.s3_endpoint, ("https",) if secure else ("http",), 443 if secure else 80)
    return mqtt, s3


def build_trackers(args: argparse.Namespace, clock: RealClock, *,
                   dialled: tuple[tuple[str, int], tuple[str, int] | None] | None = None,
                   address_of: Callable[[str], str | None] | None = None,
                   keylog: str | None = None) -> list[Tracker]:
    """The trackers; ``dialled``: the (host, port) they dial for the broker and S3 (the fleet's
    proxies; default the endpoints themselves), ``address_of``: each one's source address."""
    secure = urlsplit(args.mqtt).scheme == "mqtts"
    (mqtt_host, _), s3_named = endpoints(args)
    (dial_host, dial_port), s3 = dialled or (endpoints(args)[0], s3_named)
    if args.cert and args.count != 1 and not args.credentials_dir:
        raise EndpointError("--cert/--key are one tracker's identity: use --count 1 or --credentials-dir")
    trackers = []
    for index in range(1, args.count + 1):
        thing = f"{args.prefix}{index}"
        tls = None
        if secure:
            cert, key = _credentials(args, thing)
            try:
                tls = client_context(args.ca, cert, key, keylog=keylog)
            except (OSError, ValueError) as error:  # ssl.SSLError included
                raise EndpointError(f"{thing}: cannot use {cert} / {key}: {error}") from None
        trackers.append(Tracker(
            thing, mqtt_host=dial_host, mqtt_port=dial_port, clock=clock, s3_endpoint=s3,
            bind_address=address_of(thing) if address_of else args.bind_address,
            app_version=args.app_version,
            autonomous=not args.step_driven, fragment_size=args.fragment_size,
            reboot_seconds=args.reboot_seconds, tls=tls,
            mqtt_server_name=args.server_name or mqtt_host))
    return trackers


# A tracker's event texts (tracker.py `_event`) as fleet events.
_TRACKER_EVENTS: list[tuple[re.Pattern[str], str]] = [(re.compile(pattern), event) for pattern, event in (
    (r"connected to .*", "connected"),
    (r"download of .* started", "download_started"),
    (r"download (?P<percent>\d+)%", "download_progress"),
    (r"download resumes at byte (?P<bytes>\d+) .*", "download_resumed"),
    (r"download complete: (?P<bytes>\d+) bytes.*", "download_complete"),
    (r"job (?P<job>\S+) SUCCEEDED .*", "upgraded"),
    (r"job (?P<job>\S+) failed: (?P<reason>.*)", "upgrade_failed"),
    (r"job (?P<job>\S+) IN_PROGRESS .*", "session_started"),
    (r"MQTT connection lost: (?P<reason>.*)", "disconnected"),
    (r"connection failed: (?P<reason>.*)", "connection_failed"),
    (r"reboot: going down", "rebooting"),
    (r"booted (?P<version>.*)", "booted"),
    (r"power cut: going down", ""),  # the fleet tells its own power cuts
)]


async def power_cut(tracker: Tracker, off_seconds: float) -> None:
    """A fault plan's power cut: off for ``off_seconds``, then the tracker's own boot."""
    boot = tracker.reboot_seconds
    tracker.reboot_seconds = boot + off_seconds
    try:
        await tracker.power_cut()
    finally:
        tracker.reboot_seconds = boot


def tell(report: FleetReport, tracker: Tracker, text: str) -> None:
    """One tracker event as a fleet event (``note`` when it has no name of its own)."""
    for pattern, event in _TRACKER_EVENTS:
        match = pattern.fullmatch(text)
        if match is None:
            continue
        if not event:
            return
        fields: dict[str, object] = {key: int(value) if value.isdigit() else value
                                     for key, value in match.groupdict().items()}
        if event == "upgraded":
            fields["version"] = tracker.app_version
        report.event(tracker.thing_name, event, text, **fields)
        return
    report.event(tracker.thing_name, "note", text)


async def run(args: argparse.Namespace) -> int:
    tune_for_fleets()  # thousands of devices in this process: see runtime/collector.py
    try:
        endpoints(args)  # checked before any device starts
        fleet = Fleet("aws-tracker", args, direct=bool(args.bind_address))
        async with fleet:
            dialled = (await fleet.link(args.mqtt), await fleet.link(args.s3_endpoint)
                       if args.s3_endpoint else None)
            trackers = build_trackers(args, RealClock(), dialled=dialled,
                                      address_of=fleet.address_of, keylog=fleet.keylog)
            return await _run_trackers(fleet, trackers)
    except FleetError as error:
        log.error("%s", error)
        return 2


async def _run_trackers(fleet: Fleet, trackers: list[Tracker]) -> int:
    """The trackers connected, until the fleet's wait ends; 1 if none connected."""
    gate = asyncio.Semaphore(CONNECT_CONCURRENCY)

    async def connect(tracker: Tracker) -> bool:
        async with gate:
            try:
                await tracker.connect()
                return True
            except (MqttError, TrackerError) as error:
                # the reason without the thing's name, so that the summary counts trackers
                # failing alike in one line (the event names the tracker)
                reason = str(error).removeprefix(f"{tracker.thing_name}: ")
                fleet.report.event(tracker.thing_name, "connection_failed", reason,
                                   reason=reason)
                return False

    for tracker in trackers:
        tracker.listeners.append(lambda text, tracker=tracker: tell(fleet.report, tracker, text))
        fleet.add(tracker.thing_name,
                  power_cut=lambda off, tracker=tracker: power_cut(tracker, off))
        fleet.report.event(tracker.thing_name, "started", f"runs {tracker.app_version}",
                           version=tracker.app_version)
    try:
        connected = await asyncio.gather(*(connect(tracker) for tracker in trackers))
        log.info("%d of %d trackers connected; running until interrupted", sum(connected),
                 len(trackers))
        if not any(connected):
            return 1
        await fleet.wait()  # until the task is cancelled (Ctrl-C, SIGTERM)
        return 0
    finally:
        await asyncio.gather(*(tracker.disconnect() for tracker in trackers),
                             return_exceptions=True)
        for tracker in trackers:
            fleet.report.event(tracker.thing_name, "stopped", f"runs {tracker.app_version}")

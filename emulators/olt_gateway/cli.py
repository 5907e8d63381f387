"""``otaharness emulate olt-gateway``: one gateway and its devices against any OLT-style API and
MQTT broker, on real time, until interrupted.

The gateway reaches the API and the broker through the fleet's local proxy from its own loopback
address, so ``--fault`` (on the gateway), ``--capture``, ``--json`` and ``-v`` work as for every
kind (emulators/fleet.py); the report follows the gateway and each device's installation. A
``--bind-address`` means ``--direct``. Through the proxy the API's certificate is checked for
127.0.0.1 (``serve olt``'s is); use ``--direct`` for an API whose certificate names only its host.
"""

from __future__ import annotations

import argparse
import logging
from typing import Any
from urllib.parse import urlsplit

from otaharness.emulators.fleet import (
    HTTP,
    MQTT,
    Fleet,
    FleetError,
    add_fleet_arguments,
    url_argument,
)
from otaharness.emulators.fleet_report import FleetReport
from otaharness.emulators.olt_gateway.api_client import OltApiClient
from otaharness.emulators.olt_gateway.device import FieldDevice
from otaharness.emulators.olt_gateway.gateway import OltGateway

log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--api", required=True, type=url_argument(HTTP),
                        help="API base URL, e.g. https://127.0.0.1:8443")
    parser.add_argument("--ca", default=None,
                        help="CA file the API's certificate must chain to (default: the system's "
                             "trust store; `serve olt --json` prints it as \"ca\")")
    parser.add_argument("--mqtt", required=True, type=url_argument(MQTT),
                        help="broker URL, e.g. mqtt://127.0.0.1:1883")
    parser.add_argument("--gateway-id", required=True, help="the gateway's device id")
    parser.add_argument("--client-id", required=True, help="the gateway's client credentials")
    parser.add_argument("--client-secret", required=True,
                        help="the secret issued with --client-id (OAuth2 client credentials)")
    parser.add_argument("--device", action="append", default=[], metavar="DEVICE_ID",
                        help="a device behind the gateway (repeat for more)")
    parser.add_argument("--bind-address", default=None, help="source address for connections "
                        "(no local proxy then, as with --direct)")
    parser.add_argument("--chunk-size", type=int, default=1024, help="field procedure chunk bytes")
    parser.add_argument("--retry-delay", type=float, default=5.0,
                        help="seconds before a broken download or report is tried again")
    add_fleet_arguments(parser)


class GatewayWatch:
    """The gateway's installations told as fleet events of the devices they are for: instructed,
    downloaded into the gateway's flash (progress at each quarter), finished."""

    def __init__(self, report: FleetReport, gateway: OltGateway) -> None:
        self.report = report
        self.gateway = gateway
        self._instructions = 0
        self._installations: dict[str, dict[str, Any]] = {}  # id -> its instruction
        self._finished: set[str] = set()
        self._resumes = 0

    def poll(self) -> None:
        gateway, report = self.gateway, self.report
        for message in gateway.instructions[self._instructions:]:
            installation, device = message.get("installationId", ""), message.get("deviceId", "")
            if message.get("operation") == "cancel":
                report.event(device, "note", f"installation {installation} canceled: "
                             f"{message.get('reason', '')}")
                continue
            self._installations[installation] = message
            firmware = message.get("firmware", {})
            report.event(device, "session_started", f"installation {installation} of version "
                         f"{firmware.get('version')} into slot {message.get('slot')}",
                         installation=installation, version=firmware.get("version"))
        self._instructions = len(gateway.instructions)
        resumed = gateway.resumed_at
        for offset in resumed[self._resumes:]:
            device = next((message.get("deviceId", "") for installation, message
                           in self._installations.items() if installation not in self._finished
                           and installation not in gateway.results), self.gateway.gateway_id)
            report.event(device, "download_resumed", f"from byte {offset} (Range request)",
                         bytes=offset)
        self._resumes = len(resumed)
        for installation, message in self._installations.items():
            device, firmware = message.get("deviceId", ""), message.get("firmware", {})
            if installation in self._finished:
                continue
            result = gateway.results.get(installation)
            if result is None:
                held = len(gateway.flash.get(installation, b""))
                if held:
                    report.progress(device, held, firmware.get("size") or None)
                continue
            self._finished.add(installation)
            if result == "succeeded":
                report.event(device, "upgraded", f"slot {message.get('slot')} holds "
                             f"{firmware.get('version')}", version=firmware.get("version"))
            elif result == "canceled":
                report.event(device, "note", f"installation {installation} canceled")
            else:
                report.event(device, "upgrade_failed", f"installation {installation}: {result}",
                             reason=f"installation {result}")


async def run(args: argparse.Namespace) -> int:
    from otaharness.runtime.clock import RealClock
    from otaharness.runtime.mqtt import MqttClient
    from otaharness.runtime.pki import client_context

    try:
        fleet = Fleet("olt-gateway", args, direct=bool(args.bind_address), power_off_seconds=False)
        async with fleet:
            gateway_name = args.gateway_id
            address = fleet.address_of(gateway_name) or args.bind_address
            api_url, broker = args.api, urlsplit(args.mqtt)
            mqtt_host, mqtt_port = broker.hostname or "127.0.0.1", broker.port or 1883
            if not fleet.direct:
                host, port = await fleet.link(args.api)
                api_url = f"{urlsplit(args.api).scheme}://{host}:{port}{urlsplit(args.api).path}"
                mqtt_host, mqtt_port = await fleet.link(args.mqtt)
            mqtt = MqttClient(f"olt-gateway-{args.gateway_id}", mqtt_host, mqtt_port,
                              bind_address=address)
            try:
                ssl_context = client_context(args.ca, keylog=fleet.keylog) if args.ca or fleet.keylog \
                    else None
            except OSError as error:  # ssl.SSLError included: a --ca that does not load
                raise FleetError(f"--ca {args.ca}: {error}") from None
            api = OltApiClient(api_url, args.client_id, args.client_secret, bind_address=address,
                               ssl_context=ssl_context)
            gateway = OltGateway(args.gateway_id, api, mqtt, RealClock(),
                                 devices=[FieldDevice(device_id) for device_id in args.device],
                                 chunk_size=args.chunk_size, retry_delay=args.retry_delay)
            fleet.add(gateway_name, power_cut=lambda _off: gateway.power_cut())
            for device_id in args.device:
                fleet.report.add(device_id)
            fleet.report.event(gateway_name, "started", f"gateway with devices {', '.join(args.device)}")
            watch = GatewayWatch(fleet.report, gateway)
            fleet.watch_bytes(gateway_name, lambda _received: watch.poll())  # progress as bytes come
            await gateway.start()
            fleet.report.event(gateway_name, "connected", f"API {args.api}, broker {args.mqtt}")
            for device_id in args.device:
                fleet.report.event(device_id, "connected", f"behind gateway {gateway_name}")

            fleet.poll([watch])
            try:
                await fleet.wait()  # until the CLI cancels us (Ctrl-C, SIGTERM)
            finally:
                await gateway.stop()
                watch.poll()
                fleet.report.event(gateway_name, "stopped", f"results {gateway.results}")
    except FleetError as error:
        log.error("%s", error)
        return 2
    return 0

"""``otaharness emulate olt-gateway``: one gateway and its devices against any OLT-style API and
MQTT broker, on real time, until interrupted."""

from __future__ import annotations

import argparse
import asyncio
import logging
from urllib.parse import urlsplit

from otaharness.emulators.olt_gateway.api_client import OltApiClient
from otaharness.emulators.olt_gateway.device import FieldDevice
from otaharness.emulators.olt_gateway.gateway import OltGateway

log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--api", required=True, help="API base URL, e.g. https://127.0.0.1:8443")
    parser.add_argument("--ca", default=None,
                        help="CA file the API's certificate must chain to (default: the system's "
                             "trust store; `serve olt --json` prints it as \"ca\")")
    parser.add_argument("--mqtt", required=True, help="broker URL, e.g. mqtt://127.0.0.1:1883")
    parser.add_argument("--gateway-id", required=True, help="the gateway's device id")
    parser.add_argument("--client-id", required=True, help="the gateway's client credentials")
    parser.add_argument("--client-secret", required=True)
    parser.add_argument("--device", action="append", default=[], metavar="DEVICE_ID",
                        help="a device behind the gateway (repeat for more)")
    parser.add_argument("--bind-address", default=None, help="source address for connections")
    parser.add_argument("--chunk-size", type=int, default=1024, help="field procedure chunk bytes")


async def run(args: argparse.Namespace) -> int:
    from otaharness.runtime.clock import RealClock
    from otaharness.runtime.mqtt import MqttClient

    broker = urlsplit(args.mqtt)
    mqtt = MqttClient(f"olt-gateway-{args.gateway_id}", broker.hostname or "127.0.0.1",
                      broker.port or 1883, bind_address=args.bind_address)
    from otaharness.runtime.pki import client_context

    api = OltApiClient(args.api, args.client_id, args.client_secret, bind_address=args.bind_address,
                       ssl_context=client_context(args.ca) if args.ca else None)
    gateway = OltGateway(args.gateway_id, api, mqtt, RealClock(),
                         devices=[FieldDevice(device_id) for device_id in args.device],
                         chunk_size=args.chunk_size)
    await gateway.start()
    log.info("olt-gateway %s up with devices %s", args.gateway_id, ", ".join(args.device))
    try:
        await asyncio.Event().wait()  # until the CLI cancels us (Ctrl-C)
    finally:
        await gateway.stop()
        log.info("olt-gateway %s stopped; results %s", args.gateway_id, gateway.results)
    return 0

"""The OLT service under the scenario runtime: virtual clock, per-device source addresses, the
link proxy, and a schedule a day ahead that passes in no real time; the emulator's CLI module."""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
from pathlib import Path

import aiohttp
from olt_world import Api, ShiftedClock, fetch_token, fixture_json, image, start_server

from otaharness.emulators.olt_gateway import FieldDevice, OltApiClient, OltGateway
from otaharness.emulators.olt_gateway import cli as gateway_cli
from otaharness.runtime.broker import MosquittoBroker
from otaharness.runtime.mqtt import MqttClient
from otaharness.runtime.pki import Pki, client_context
from otaharness.runtime.runtime import Runtime
from otaharness.runtime.targets import HarnessConfig
from otaharness.servers.olt import service as olt_service


async def provision(api: Api) -> tuple[dict, dict, dict]:
    """A gateway and a switch behind it; the gateway's client credentials."""
    switch_type = await api.ok("POST", "/v1/device-types", fixture_json("osram_switch_all_slots_type.json"))
    gateway_type = await api.ok("POST", "/v1/device-types", fixture_json("gateway_type.json"))
    gateway = await api.ok("POST", "/v1/devices", {"info": {"name": "gw", "deviceTypeId": gateway_type["id"]}})
    switch = await api.ok("POST", "/v1/devices", {"info": {
        "name": "switch", "deviceTypeId": switch_type["id"], "connectedBy": gateway["id"]}})
    credentials = await api.ok("POST", f"/v1/devices/{gateway['id']}/credentials")
    return gateway, switch, credentials


def test_scheduled_installation_a_day_ahead_on_the_virtual_clock(tmp_path: Path) -> None:
    runtime = Runtime(HarnessConfig(artifacts_dir=tmp_path, broker="mosquitto"), name="olt service")

    async def scenario() -> tuple[dict, float]:
        service = await olt_service.start(runtime)
        runtime.add_cleanup(service.stop)
        endpoints, tokens = service.endpoints(), service.tokens()
        assert endpoints["olt"].startswith("https://")
        trust = client_context(endpoints["ca"])
        session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=trust))
        runtime.add_cleanup(session.close)
        api = Api(session, endpoints["olt"], tokens["olt"])  # the printed token works as it is
        gateway_device, switch, credentials = await provision(api)

        address = runtime.address_of("gateway-1")
        api_host, api_port = await runtime.link(endpoints["olt"])
        mqtt_host, mqtt_port = await runtime.link(endpoints["mqtt"])
        field_device = FieldDevice(switch["id"])
        gateway = OltGateway(
            gateway_device["id"],
            OltApiClient(f"https://{api_host}:{api_port}", credentials["clientId"],
                         credentials["clientSecret"], bind_address=address, ssl_context=trust),
            MqttClient("gateway-1", mqtt_host, mqtt_port, bind_address=address),
            runtime.clock, devices=[field_device])
        await gateway.start()
        runtime.devices["gateway-1"] = gateway
        runtime.add_cleanup(gateway.stop)

        firmware = await api.ok("POST", "/v1/firmwares", {"name": "fw", "version": "3.0"})
        await api.ok("PUT", f"/v1/firmwares/{firmware['id']}/blob", raw=image(30_000, "virtual"))
        start_at = runtime.clock.epoch() + 86_400
        installation = await api.ok("POST", f"/v1/devices/{switch['id']}/firmware-installations", {
            "firmwareId": firmware["id"], "slot": "firmware",
            "schedule": {"startAt": dt.datetime.fromtimestamp(start_at, dt.UTC).isoformat()}})
        while installation["id"] not in gateway.results:
            await asyncio.sleep(600)
        await gateway.wait_idle()
        api.token = await fetch_token(session, endpoints["olt"], tokens["olt-client-id"],
                                      tokens["olt-client-secret"])  # a day later: a new token
        done = await api.ok("GET", f"/v1/devices/{switch['id']}/firmware-installations/{installation['id']}")
        assert field_device.slots["firmware"].data == image(30_000, "virtual")
        return done, start_at

    try:
        done, start_at = runtime.run(scenario(), timeout=3 * 86_400)
    finally:
        leftovers = runtime.close()
    assert done["status"] == "succeeded", done
    instructed = dt.datetime.fromisoformat(done["instructedAt"]).timestamp()
    assert start_at <= instructed < start_at + 1
    assert leftovers == []


async def test_cli_gateway_installs_firmware(tmp_path: Path, broker: MosquittoBroker) -> None:
    """Over HTTPS: the gateway's CLI trusts the server through --ca."""
    pki = Pki(tmp_path / "pki")
    server, server_mqtt = await start_server(tmp_path / "olt.sqlite3", ShiftedClock(), broker,
                                             ssl_context=pki.server_context(["localhost"]))
    assert server.url.startswith("https://")
    session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=pki.client_context()))
    try:
        tenant = server.backend.create_tenant("cli")
        api = Api(session, server.url, await fetch_token(session, server.url, tenant.client_id,
                                                          tenant.client_secret))
        gateway_device, switch, credentials = await provision(api)
        parser = argparse.ArgumentParser()
        gateway_cli.add_arguments(parser)
        args = parser.parse_args([
            "--api", server.url, "--ca", str(pki.ca_file), "--mqtt", f"mqtt://{broker.host}:{broker.port}",
            "--gateway-id", gateway_device["id"], "--client-id", credentials["clientId"],
            "--client-secret", credentials["clientSecret"], "--device", switch["id"]])
        running = asyncio.create_task(gateway_cli.run(args))
        await asyncio.sleep(0.3)  # connected and subscribed
        firmware = await api.ok("POST", "/v1/firmwares", {"name": "fw", "version": "1.1"})
        await api.ok("PUT", f"/v1/firmwares/{firmware['id']}/blob", raw=image(5000, "cli"))
        path = f"/v1/devices/{switch['id']}/firmware-installations"
        installation = await api.ok("POST", path, {"firmwareId": firmware["id"], "slot": "firmware"})
        for _ in range(300):
            current = await api.ok("GET", f"{path}/{installation['id']}")
            if current["status"] == "succeeded":
                break
            await asyncio.sleep(0.01)
        assert current["status"] == "succeeded", current
        running.cancel()
        await asyncio.gather(running, return_exceptions=True)
    finally:
        await session.close()
        await server.stop()
        await server_mqtt.disconnect()

"""OLT gateways under load: the emulator's :class:`OltGateway`, one field device behind each.

Each device onboards itself as a fleet does at first power-on, through the firmware REST API
with the tenant's token (``--olt-token``): the gateway (``--gateway-type``), its client
credentials, its field device (``--device-type``, ``connectedBy`` the gateway). Then the gateway
runs as ``otaharness emulate olt-gateway`` runs it: MQTT for instructions, the API for the blob
and its reports.

Request entries: ``HTTP job update`` (each PATCH of an installation's status), ``HTTP range GET``
(each blob download, whole or resumed with ``Range``), ``HTTP API`` (the other API calls, token
and onboarding included). An upgrade starts with the install instruction and ends with the
gateway's final report: succeeded, or failed with the status it reported.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import urlsplit

import aiohttp

from otaharness.emulators.olt_gateway.api_client import OltApiClient, OltApiError
from otaharness.emulators.olt_gateway.device import FieldDevice
from otaharness.emulators.olt_gateway.gateway import OltGateway
from otaharness.runtime.clock import RealClock
from otaharness.runtime.mqtt import MqttClient
from otaharness.runtime.pki import client_context

from ..fleet import DeviceFleet, Reporter

POLL_SECONDS = 0.2  # how often the gateways' installations are read for outcomes


class ReportedApiClient(OltApiClient):
    """The gateway's API client, each call a request entry of the device it speaks for."""

    def __init__(self, *args: Any, report: Reporter, device: str, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.report = report
        self.device = device

    async def call(self, method: str, path: str, body: Any = None) -> Any:
        name = "job update" if method == "PATCH" and "firmware-installations" in path else "API"
        started = time.monotonic()
        try:
            answer = await super().call(method, path, body)
        except (OltApiError, aiohttp.ClientError, OSError, TimeoutError) as failure:
            self.report.request("HTTP", name, started, 0, self.device, str(failure))
            raise
        self.report.request("HTTP", name, started, 0, self.device)
        return answer

    @asynccontextmanager
    async def download(self, link: str, headers: dict[str, str]
                       ) -> AsyncIterator[aiohttp.ClientResponse]:
        started = time.monotonic()
        error: str | None = None
        length = 0
        try:
            async with super().download(link, headers) as response:
                length = int(response.headers.get("Content-Length") or 0)
                if response.status not in (200, 206):
                    error = f"HTTP {response.status}"
                yield response
        except (aiohttp.ClientError, OSError, TimeoutError) as failure:
            error = str(failure) or type(failure).__name__
            raise
        finally:
            self.report.request("HTTP", "range GET", started, length, self.device, error)


class Onboarded:
    """A gateway, its field device and what the load run watches of them."""

    def __init__(self, name: str, gateway: OltGateway, device_id: str) -> None:
        self.name = name
        self.gateway = gateway
        self.device_id = device_id
        self.started: dict[str, tuple[float, int]] = {}  # installation -> (when, image size)
        self.ended: set[str] = set()
        self.running = False


class OltGatewayFleet(DeviceFleet):
    kind = "olt-gateway"

    def default_prefix(self) -> str:
        return "OLTGW"

    async def open(self) -> None:
        await super().open()
        for option in ("api", "mqtt", "olt_token", "gateway_type", "device_type"):
            if not self.options.get(option):
                raise SystemExit(f"otaharness load olt-gateway needs --{option.replace('_', '-')}")
        self.clock = RealClock()
        self.tls = client_context(self.options.get("ca")) if self.options.get("ca") else None
        self.tenant = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(ssl=self.tls if self.tls is not None else True),
            headers={"Authorization": f"Bearer {self.options['olt_token']}"})
        self.watcher = asyncio.ensure_future(self._watch())

    async def _onboard(self, path: str, name: str, body: Any = None) -> dict[str, Any]:
        started = time.monotonic()
        async with self.tenant.post(self.options["api"].rstrip("/") + path, json=body) as answer:
            data = await answer.json(content_type=None)
            if answer.status >= 300:
                self.report.request("HTTP", "API", started, 0, name, f"HTTP {answer.status}")
                raise OltApiError(answer.status, str(data))
        self.report.request("HTTP", "API", started, 0, name)
        return data["data"]

    async def _start_device(self, number: int) -> Onboarded:
        name = self.name_of(number)
        gateway_id = (await self._onboard("/v1/devices", name, {"info": {
            "name": name, "deviceTypeId": self.options["gateway_type"]}}))["id"]
        credentials = await self._onboard(f"/v1/devices/{gateway_id}/credentials", name)
        device_id = (await self._onboard("/v1/devices", name, {"info": {
            "name": f"{name}-1", "deviceTypeId": self.options["device_type"],
            "connectedBy": gateway_id}}))["id"]
        address = self.links.address_of(name)
        api_url, broker = self.options["api"], urlsplit(self.options["mqtt"])
        mqtt_host, mqtt_port = broker.hostname or "127.0.0.1", broker.port or 1883
        if not self.links.direct:
            host, port = await self.links.link(api_url)
            api_url = f"{urlsplit(api_url).scheme}://{host}:{port}{urlsplit(api_url).path}"
            mqtt_host, mqtt_port = await self.links.link(self.options["mqtt"])
        api = ReportedApiClient(api_url, credentials["clientId"], credentials["clientSecret"],
                                bind_address=address, ssl_context=self.tls, report=self.report,
                                device=name)
        gateway = OltGateway(gateway_id, api, MqttClient(f"olt-gateway-{gateway_id}", mqtt_host,
                                                         mqtt_port, bind_address=address),
                             self.clock, devices=[FieldDevice(device_id)], retry_delay=1.0)
        onboarded = Onboarded(name, gateway, device_id)
        self.links.add(name, power_cut=lambda _off: gateway.power_cut())
        started = time.monotonic()
        await gateway.start()
        onboarded.running = True
        self.report.request("MQTT", "connect", started, 0, name)
        return onboarded

    async def _watch(self) -> None:
        """Instructions become upgrades started; the gateway's final reports, their ends."""
        while True:
            await asyncio.sleep(POLL_SECONDS)
            for device in list(self.devices.values()):
                gateway = device.gateway
                for message in gateway.instructions:
                    installation = message.get("installationId", "")
                    if message.get("operation") != "install" or installation in device.started:
                        continue
                    device.started[installation] = (time.monotonic(),
                                                    message.get("firmware", {}).get("size") or 0)
                    self.report.upgrade_started(device.name)
                for installation, (started, size) in device.started.items():
                    result = gateway.results.get(installation)
                    if result is None or installation in device.ended:
                        continue
                    device.ended.add(installation)
                    self.report.upgrade_ended(device.name, result == "succeeded",
                                              "" if result == "succeeded" else
                                              f"installation {result}", started,
                                              size if result == "succeeded" else 0)

    async def _stop_device(self, device: Onboarded) -> None:
        device.running = False
        await device.gateway.stop()

    async def _reboot_device(self, device: Onboarded) -> None:
        await device.gateway.reboot()

    async def _close_shared(self) -> None:
        self.watcher.cancel()
        await asyncio.gather(self.watcher, return_exceptions=True)
        await self.tenant.close()

    def _connected(self, device: Onboarded) -> bool:
        return device.running

    def _upgrading(self, device: Onboarded) -> bool:
        return len(device.started) > len(device.ended)

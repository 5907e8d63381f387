"""The asyncio side of a load run: a worker's devices, what they report, and their faults.

Everything here runs in the device host process (``host.py``), which never imports Locust or
gevent. A kind (``kinds/<kind>.py``) subclasses :class:`DeviceFleet`; its devices are the
emulators' own classes, observed through :class:`Reporter`, which writes one JSON line per event
for the Locust worker to turn into request entries and fleet counters.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from yarl import URL

from otaharness.runtime.faults import (
    ALL_DEVICES, DeviceSelection, FaultPlan, PowerCut, parse_device_selection, parse_faults)
from otaharness.runtime.proxy import LinkProxy

log = logging.getLogger(__name__)

# Device numbers are worker_index * STRIDE + n (n = 1, 2, ... on that worker): unique across
# workers and the same on every run with the same workers and users.
STRIDE = 1_000_000
# Devices of one worker bind 127.<1 + worker_index % 250>.x.y: unique source addresses, so a
# server (and our link proxy) tells them apart; Linux routes all of 127/8 to lo.
_FIRST_ADDRESS = int(ipaddress.IPv4Address("127.0.0.0"))
POWER_WATCH_SECONDS = 0.05  # how often a "power cut at N bytes" device's byte count is read


def device_number(worker_index: int, local: int) -> int:
    if not 1 <= local < STRIDE:
        raise ValueError(f"device {local} of a worker is outside 1..{STRIDE - 1}")
    return worker_index * STRIDE + local


def loopback_address(number: int) -> str:
    worker, local = divmod(number, STRIDE)
    if local >= 1 << 16:
        raise ValueError(f"a worker hosts at most {(1 << 16) - 1} devices with their own "
                         "loopback address")
    return str(ipaddress.IPv4Address(_FIRST_ADDRESS + ((1 + worker % 250) << 16) + local))


def is_loopback(url: str) -> bool:
    host = URL(url).host or ""
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


class Reporter:
    """One JSON line per event on the host's stdout (an asyncio pipe: never blocks the loop).

    ``r``: a protocol round trip [type, name, milliseconds, bytes, error or null, device];
    ``s``: an upgrade started [device]; ``o``: an upgrade ended [device, ok, reason,
    milliseconds, bytes]; ``g``: gauges {connected, in_progress}.
    """

    def __init__(self, write: Callable[[bytes], None]) -> None:
        self._write = write

    def _emit(self, record: dict[str, Any]) -> None:
        self._write(json.dumps(record, separators=(",", ":")).encode() + b"\n")

    def request(self, request_type: str, name: str, started: float, length: int,
                device: str, error: str | None = None) -> None:
        elapsed_ms = (time.monotonic() - started) * 1000
        self._emit({"r": [request_type, name, round(elapsed_ms, 3), length, error, device]})

    def upgrade_started(self, device: str) -> None:
        self._emit({"s": device})

    def upgrade_ended(self, device: str, ok: bool, reason: str, started: float,
                      length: int) -> None:
        elapsed_ms = (time.monotonic() - started) * 1000
        self._emit({"o": [device, ok, reason, round(elapsed_ms, 3), length]})

    def gauges(self, connected: int, in_progress: int) -> None:
        self._emit({"g": {"connected": connected, "in_progress": in_progress}})

    def note(self, text: str) -> None:
        self._emit({"n": text})


@dataclass
class HostSettings:
    """What the worker hands its host: the kind, the worker's index and the run's options."""

    kind: str
    worker_index: int
    options: dict[str, Any]
    faults: FaultPlan = field(default_factory=FaultPlan)
    faulted: DeviceSelection = ALL_DEVICES

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> HostSettings:
        options = data["options"]
        texts = options.get("fault") or []
        selection = options.get("fault_devices") or "all"
        return cls(kind=data["kind"], worker_index=int(data["worker_index"]), options=options,
                   faults=parse_faults(texts), faulted=parse_device_selection(selection))

    def fault_plan_of(self, number: int) -> FaultPlan:
        """The device's faults: the run's plan when the selection picks its number."""
        return self.faults if self.faults and self.faulted.selects(number) else FaultPlan()


class FaultedLinks:
    """Link faults and power cuts of the devices that have a fault plan.

    A faulted device reaches each upstream through a :class:`LinkProxy` of this host (made on
    first use per upstream), from its own loopback address; the proxy applies the device's link
    fault and counts its bytes, which is how ``power cut at 64 KiB`` knows when to strike.
    """

    def __init__(self) -> None:
        self._proxies: dict[tuple[str, int], LinkProxy] = {}
        self._making: dict[tuple[str, int], asyncio.Future[LinkProxy]] = {}
        self._devices: dict[str, str] = {}  # source address -> device name
        self._plans: dict[str, FaultPlan] = {}
        self._watchers: dict[str, asyncio.Task[None]] = {}
        self._armed: set[tuple[LinkProxy, str]] = set()  # a link fault is set once per link

    def link_for(self, device: str, address: str, plan: FaultPlan
                 ) -> Callable[[str], Awaitable[tuple[str, int]]]:
        self._devices[address] = device
        self._plans[device] = plan

        async def link(url: str) -> tuple[str, int]:
            proxy = await self._proxy(url)
            if plan.link is not None and (proxy, device) not in self._armed:
                self._armed.add((proxy, device))
                proxy.set_fault(device, plan.link)
            return proxy.address
        return link

    async def _proxy(self, url: str) -> LinkProxy:
        parsed = URL(url)
        upstream = (parsed.host or "127.0.0.1", parsed.port or 80)
        proxy = self._proxies.get(upstream)
        if proxy is not None:
            return proxy
        if upstream in self._making:
            return await asyncio.shield(self._making[upstream])
        future: asyncio.Future[LinkProxy] = asyncio.get_running_loop().create_future()
        self._making[upstream] = future
        proxy = LinkProxy(f"{upstream[0]}:{upstream[1]}", upstream,
                          service_port=upstream[1], device_of=self._devices.__getitem__)
        await proxy.start()
        self._proxies[upstream] = proxy
        future.set_result(proxy)
        return proxy

    def bytes_to(self, device: str) -> int:
        return sum(proxy.counters(device).bytes_to_device for proxy in self._proxies.values())

    def watch_power(self, device: str, power_cut: PowerCut,
                    cut: Callable[[float], Awaitable[None]]) -> None:
        """Cut the device's power once, when its byte count or its time comes."""

        async def watch() -> None:
            if power_cut.after_seconds is not None:
                await asyncio.sleep(power_cut.after_seconds)
            else:
                while self.bytes_to(device) < (power_cut.at_bytes or 0):
                    await asyncio.sleep(POWER_WATCH_SECONDS)
            await cut(power_cut.off_seconds)

        self._watchers[device] = asyncio.ensure_future(watch())

    async def forget(self, device: str) -> None:
        watcher = self._watchers.pop(device, None)
        if watcher is not None:
            watcher.cancel()
            await asyncio.gather(watcher, return_exceptions=True)
        self._armed = {(proxy, name) for proxy, name in self._armed if name != device}
        for proxy in self._proxies.values():
            proxy.disconnect(device)

    async def close(self) -> None:
        for device in list(self._watchers):
            await self.forget(device)
        for proxy in self._proxies.values():
            await proxy.close()
        self._proxies.clear()


class DeviceFleet:
    """A worker's devices of one kind. Subclasses implement the ``_start_device`` family."""

    kind = ""

    def __init__(self, settings: HostSettings, report: Reporter) -> None:
        self.settings = settings
        self.options = settings.options
        self.report = report
        self.links = FaultedLinks()
        self.devices: dict[int, Any] = {}

    def name_of(self, number: int) -> str:
        prefix = self.options.get("device_prefix") or self.default_prefix()
        return f"{prefix}{number:09d}"

    def default_prefix(self) -> str:
        return "OTAH"

    async def open(self) -> None:
        """Start what the worker's devices share (listeners, PKI)."""

    async def add(self, number: int) -> None:
        if number in self.devices:
            return
        self.devices[number] = await self._start_device(number)

    async def remove(self, number: int) -> None:
        device = self.devices.pop(number, None)
        if device is not None:
            await self.links.forget(self.name_of(number))
            await self._stop_device(device)

    async def reboot(self, numbers: list[int]) -> None:
        await asyncio.gather(*(self._reboot_device(self.devices[n]) for n in numbers
                               if n in self.devices), return_exceptions=True)

    async def close(self) -> None:
        for number in list(self.devices):
            await self.remove(number)
        await self.links.close()
        await self._close_shared()

    def gauges(self) -> tuple[int, int]:
        """(devices connected, upgrades in progress)."""
        return (sum(1 for d in self.devices.values() if self._connected(d)),
                sum(1 for d in self.devices.values() if self._upgrading(d)))

    # -- per kind --------------------------------------------------------------------------
    async def _start_device(self, number: int) -> Any:
        raise NotImplementedError

    async def _stop_device(self, device: Any) -> None:
        raise NotImplementedError

    async def _reboot_device(self, device: Any) -> None:
        raise NotImplementedError

    async def _close_shared(self) -> None:
        pass

    def _connected(self, device: Any) -> bool:
        raise NotImplementedError

    def _upgrading(self, device: Any) -> bool:
        raise NotImplementedError

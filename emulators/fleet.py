"""An emulated fleet as ``otaharness emulate`` runs it, the same for every kind: faults, capture
and reporting against any endpoint, as a scenario has them.

Every device reaches its servers through local :class:`LinkProxy` instances (one per upstream
host and port, made when a device first dials it), each device from its own loopback address —
the contract scenarios give the emulators (``dial``/``link`` and ``bind_address``), on real time.
TLS passes through the proxy untouched; the device still checks the server's own name. So the
scenario vocabulary applies to a user's endpoint: link faults (``--fault "cut after 40 KiB"``)
and power cuts at a byte count or a time (``--fault "power cut at 64 KiB"``), on the devices
``--fault-devices`` chooses; ``--capture FILE`` writes the links as pcapng with the TLS key log
embedded, as a scenario's capture. ``--direct`` leaves the proxies out (devices dial their servers
themselves; no faults, capture or byte counts then).

A kind's CLI uses it as::

    async with Fleet("cpe", args) as fleet:
        device = Cpe(..., bind_address=fleet.address_of(name), link=fleet.link, tls_keylog=fleet.keylog)
        fleet.add(name, power_cut=device.power_cut)
        fleet.report.event(name, "connected")
        await fleet.wait(args.duration)
"""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import logging
import sys
import time
from collections.abc import Awaitable, Callable, Iterable
from pathlib import Path
from typing import Any, Self
from urllib.parse import SplitResult, urlsplit, urlunsplit

from otaharness.emulators.fleet_report import FleetReport

from otaharness.runtime.capture import PcapWriter, embed_tls_secrets
from otaharness.runtime.faults import (
    ALL_DEVICES,
    DeviceSelection,
    FaultPlan,
    LinkFaultError,
    PowerCut,
    add_fault_arguments,
    describe_fault,
    parse_device_selection,
    parse_faults,
)
from otaharness.runtime.proxy import LinkProxy
from otaharness.runtime.runtime import WELL_KNOWN_PORTS

log = logging.getLogger(__name__)

# First device address: devices are 127.1.0.1, 127.1.0.2, ... as in scenarios (Linux routes all
# of 127/8 to lo).
DEFAULT_ADDRESS_BASE = "127.1.0.0"
# How often the links' counters are read for cuts and refusals to report.
_WATCH_SECONDS = 0.25
# How often a kind's watches read its devices' state (Fleet.poll).
POLL_SECONDS = 0.2

PowerCutAction = Callable[[float], Awaitable[Any]]


class FleetError(ValueError):
    """Inputs the fleet's devices cannot use: options that cannot work together, a key or CA file
    that does not load (the CLI says so in one line and exits with 2, with no summary)."""


HTTP = ("http", "https")
MQTT = ("mqtt", "mqtts")
WEBSOCKET = ("ws", "wss")


def url_argument(schemes: tuple[str, ...]) -> Callable[[str], str]:
    """An argparse type for a server's URL: one of ``schemes`` with a host, or the command stops
    at once with one line (``127.0.0.1:7547/acs`` without its scheme made every device fail
    alike, mid-run, each with a traceback)."""

    def url(text: str) -> str:
        parts = urlsplit(text)
        shown = repr(_without_password(text, parts))
        try:
            parts.port  # noqa: B018 (raises on a port that is not a number or out of range)
        except ValueError as error:
            raise argparse.ArgumentTypeError(f"{shown}: {error}") from None
        if parts.scheme not in schemes or not parts.hostname:
            raise argparse.ArgumentTypeError(
                f"{shown} is not a URL like {' or '.join(s + '://host[:port]' for s in schemes)}")
        return text

    url.__name__ = "URL"  # argparse names the type in its message
    return url


def device_count(text: str) -> int:
    """An argparse type for how many devices a kind starts: a whole number from 1, or the command
    stops at once with one line (``--count -3`` started no device and then waited, its summary
    empty, until interrupted)."""
    try:
        count = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if count < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: at least 1 device")
    return count


def _without_password(text: str, parts: SplitResult) -> str:
    """``text`` with the password of its ``user:password@`` part (if any) as ``***``, for messages."""
    if parts.password is None:
        return text
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{parts.username}:***@{host}"))


def add_fleet_arguments(parser: argparse.ArgumentParser) -> None:
    """The options every ``emulate`` kind shares."""
    group = parser.add_argument_group(
        "faults, capture and reporting (every kind)",
        "Faults use the scenarios' phrases and strike through a local proxy in front of the "
        "endpoints (TLS passes through it untouched).")
    add_fault_arguments(group)
    group.add_argument("--capture", type=Path, metavar="FILE",
                       help="write the devices' TCP traffic as pcapng with the TLS key log "
                       "embedded (Wireshark and tshark decrypt it unaided)")
    group.add_argument("--direct", action="store_true",
                       help="devices dial their servers themselves, not through the local proxy "
                       "(no --fault, --capture or byte counts then)")
    group.add_argument("--json", action="store_true",
                       help="stream events as JSON lines on stdout (ISO 8601 UTC times), the "
                       "summary last; readable output goes to stderr")
    group.add_argument("-v", "--verbose", dest="device_log", action="store_true",
                       help="log each device's session: one line per event")


class Fleet:
    """The links, faults, capture and report of one ``emulate`` run (an async context manager:
    on the way out, even when cancelled, it stops the links, writes the capture and prints the
    summary — unless a :class:`FleetError` ends it: then the error says why no device ran)."""

    def __init__(self, kind: str, args: argparse.Namespace, *, direct: bool = False,
                 address_base: str | None = None, report: FleetReport | None = None,
                 power_off_seconds: bool = True) -> None:
        """``power_off_seconds``: whether the kind's devices can stay off a while after a power
        cut (``power cut ... for 5 s``); ``direct``: the kind's own options ask for no proxy."""
        try:
            self.plan: FaultPlan = parse_faults(getattr(args, "fault", []) or [])
            self.selection: DeviceSelection = (
                parse_device_selection(args.fault_devices) if getattr(args, "fault_devices", None)
                else ALL_DEVICES)
        except LinkFaultError as error:
            raise FleetError(str(error)) from None
        self.direct = direct or bool(getattr(args, "direct", False))
        self.capture_file: Path | None = getattr(args, "capture", None)
        power = self.plan.power
        if power is not None and power.off_seconds and not power_off_seconds:
            raise FleetError(f"{kind} devices come back at once after a power cut: leave out "
                             f"'for {power.off_seconds:g} s'")
        if self.direct and (self.plan or self.capture_file):
            raise FleetError("--fault and --capture need the local proxy: leave out --direct "
                             "(and a shared --bind-address)")
        self.fault_endpoint = _endpoint_key(args.fault_endpoint) if getattr(
            args, "fault_endpoint", None) else None
        verbose = bool(getattr(args, "device_log", False) or getattr(args, "verbose", False))
        self.report = report or FleetReport(
            kind, verbose=verbose, json_out=sys.stdout if getattr(args, "json", False) else None)
        self._base = ipaddress.IPv4Address(address_base or DEFAULT_ADDRESS_BASE)
        self._addresses: dict[str, str] = {}
        self._devices_by_address: dict[str, str] = {}
        self._numbers: dict[str, int] = {}
        self._power_cuts: dict[str, PowerCutAction] = {}
        self._struck: set[str] = set()
        self._received: dict[str, int] = {}
        self._byte_watchers: dict[str, list[Callable[[int], None]]] = {}
        self._proxies: dict[str, LinkProxy] = {}
        self._seen: dict[tuple[str, str], tuple[int, int]] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._timers: list[asyncio.TimerHandle] = []
        self._watch: asyncio.Task[None] | None = None
        self._capture: PcapWriter | None = None
        self.keylog: str | None = None
        if self.capture_file is not None:
            self.capture_file.parent.mkdir(parents=True, exist_ok=True)
            self._capture = PcapWriter(self._scratch(".pcap"))
            self.keylog = str(self._scratch(".keys"))
            Path(self.keylog).unlink(missing_ok=True)
        self.report.faults.update(self._fault_figures())

    async def __aenter__(self) -> Self:
        self.report.start()
        if not self.direct:
            self._watch = asyncio.create_task(self._watch_links())
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, *exc_info: object) -> None:
        await self.close(summary=not (exc_type and issubclass(exc_type, FleetError)))

    async def close(self, *, summary: bool = True) -> None:
        for timer in self._timers:
            timer.cancel()
        for task in [*self._tasks, *([self._watch] if self._watch else [])]:
            task.cancel()
        await asyncio.gather(*self._tasks, *([self._watch] if self._watch else []),
                             return_exceptions=True)
        self._watch = None
        self._report_link_faults()
        self.report.faults.update(self._fault_figures())
        for proxy in self._proxies.values():
            await proxy.close()
        self._proxies.clear()
        self._finish_capture()
        self.report.close(summary=summary)

    # -- the runtime contract: addresses and links -------------------------------------------------

    def address_of(self, device: str) -> str | None:
        """The device's own loopback source address (None with ``--direct``)."""
        if self.direct:
            return None
        address = self._addresses.get(device)
        if address is None:
            address = str(self._base + len(self._addresses) + 1)
            self._addresses[device] = address
            self._devices_by_address[address] = device
        return address

    async def link(self, url: str) -> tuple[str, int]:
        """The (host, port) a device dials to reach ``url``: the local proxy in front of it."""
        parts = urlsplit(url)
        port = parts.port or WELL_KNOWN_PORTS.get(parts.scheme, 80)
        host = parts.hostname or "127.0.0.1"
        if self.direct:
            return host, port
        key = f"{host}:{port}"
        proxy = self._proxies.get(key)
        if proxy is None:
            proxy = LinkProxy(key, (host, port), service_port=WELL_KNOWN_PORTS.get(parts.scheme, port),
                              device_of=self._device_of, capture=self._capture,
                              wall_time=time.time, on_forward=self._forwarded)
            await proxy.start()
            self._proxies[key] = proxy
            self.report.name_proxy("{}:{}".format(*proxy.address), key)
            for device in self._numbers:
                self._apply_link_fault(device, key, proxy)
        return proxy.address

    dial = link  # the name the Basics Station emulator gives the same contract

    def _device_of(self, address: str) -> str:
        return self._devices_by_address[address]  # LookupError: not a device's; the proxy closes it

    # -- devices and faults --------------------------------------------------------------------

    def add(self, device: str, *, power_cut: PowerCutAction | None = None) -> int:
        """A device of the fleet (numbered from 1 in the order added); ``power_cut(off_seconds)``
        is how it loses power. Arms the faults when ``--fault-devices`` chooses it."""
        number = self._numbers.setdefault(device, len(self._numbers) + 1)
        self.report.add(device)
        if power_cut is not None:
            self._power_cuts[device] = power_cut
        if not self.plan or not self.selection.selects(number):
            return number
        power = self.plan.power
        if power is not None:
            if power_cut is None:
                raise FleetError(f"{self.report.kind} devices cannot lose power here: leave out "
                                 f"{describe_fault(power)!r}")
            if power.after_seconds is not None:
                loop = asyncio.get_running_loop()
                self._timers.append(loop.call_later(power.after_seconds, self._strike, device))
        for key, proxy in self._proxies.items():
            self._apply_link_fault(device, key, proxy)
        self.report.event(device, "fault_armed", self.plan.describe(), fault=self.plan.describe())
        return number

    def faulted(self, device: str) -> bool:
        number = self._numbers.get(device)
        return bool(self.plan) and number is not None and self.selection.selects(number)

    def watch_bytes(self, device: str, watcher: Callable[[int], None]) -> None:
        """Call ``watcher(bytes received so far)`` whenever bytes reach the device."""
        self._byte_watchers.setdefault(device, []).append(watcher)

    def received(self, device: str) -> int:
        """Bytes that reached the device over its links since it started (every connection)."""
        return self._received.get(device, 0)

    def _apply_link_fault(self, device: str, key: str, proxy: LinkProxy) -> None:
        link = self.plan.link
        if link is None or not self.faulted(device):
            return
        if self.fault_endpoint is not None and key != self.fault_endpoint:
            return
        proxy.set_fault(device, link)

    def _forwarded(self, device: str, to_upstream: bool, nbytes: int) -> None:
        if to_upstream:
            return
        received = self._received[device] = self._received.get(device, 0) + nbytes
        for watcher in self._byte_watchers.get(device, ()):
            watcher(received)
        power = self.plan.power
        if (power is not None and power.at_bytes is not None and received >= power.at_bytes
                and device not in self._struck and self.faulted(device)):
            # Nothing more reaches the device once its power is gone: its links close now, the
            # power cut (which may take the loop's next turn) follows.
            asyncio.get_running_loop().call_soon(self._disconnect, device)
            self._strike(device)

    def _disconnect(self, device: str) -> None:
        for proxy in self._proxies.values():
            proxy.disconnect(device)

    def _strike(self, device: str) -> None:
        power = self.plan.power
        action = self._power_cuts.get(device)
        if power is None or action is None or device in self._struck:
            return
        self._struck.add(device)
        received = self.received(device)
        self.report.event(device, "power_cut", f"{describe_fault(power)} (after {received} bytes "
                          "received)", fault=describe_fault(power), bytes=received)
        task = asyncio.get_running_loop().create_task(self._power_cycle(device, action, power))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _power_cycle(self, device: str, action: PowerCutAction, power: PowerCut) -> None:
        try:
            await action(power.off_seconds)
        except Exception as error:  # noqa: BLE001 - a device that cannot boot is reported, not fatal
            log.warning("%s: power cut failed: %r", device, error)
            self.report.event(device, "connection_failed", f"after the power cut: {error}",
                              reason=f"boot after power cut: {error}")
            return
        if self.report.devices[device].state == "powered off":  # unless it told its own boot
            self.report.event(device, "booted", "power back")

    async def _watch_links(self) -> None:
        while True:
            await asyncio.sleep(_WATCH_SECONDS)
            self._report_link_faults()

    def _report_link_faults(self) -> None:
        for key, proxy in self._proxies.items():
            for device in self._numbers:
                counters = proxy.counters(device)
                seen = self._seen.get((key, device), (0, 0))
                if (counters.cuts, counters.refused) == seen:
                    continue
                self._seen[(key, device)] = (counters.cuts, counters.refused)
                if counters.cuts > seen[0]:
                    self.report.event(device, "link_fault", f"link to {key} cut "
                                      f"({counters.cuts} so far)", endpoint=key, cuts=counters.cuts)
                if counters.refused > seen[1]:
                    self.report.event(device, "link_fault", f"connection to {key} refused "
                                      f"({counters.refused} so far)", endpoint=key,
                                      refused=counters.refused)

    def _fault_figures(self) -> dict[str, Any]:
        if not self.plan:
            return {}
        chosen = [device for device in self._numbers if self.faulted(device)]
        figures: dict[str, Any] = {"plan": self.plan.describe(), "devices": len(chosen)}
        if self.plan.power is not None:
            figures["power_cuts"] = len(self._struck)
        if self.plan.link is not None:
            figures["link_cuts"] = sum(proxy.counters(device).cuts for proxy in self._proxies.values()
                                       for device in chosen)
            figures["refused"] = sum(proxy.counters(device).refused
                                     for proxy in self._proxies.values() for device in chosen)
        return figures

    # -- capture -------------------------------------------------------------------------------

    def _scratch(self, suffix: str) -> Path:
        assert self.capture_file is not None
        return self.capture_file.with_name(f".{self.capture_file.name}{suffix}")

    def _finish_capture(self) -> None:
        if self._capture is None:
            return
        self._capture.close()
        pcap, keys = self._capture.path, Path(self.keylog or "")
        embed_tls_secrets(pcap, keys, self.capture_file)
        pcap.unlink(missing_ok=True)
        keys.unlink(missing_ok=True)
        self._capture = None
        self.report.totals["capture"] = str(self.capture_file)

    # -- running -------------------------------------------------------------------------------

    def spawn(self, coroutine: Awaitable[Any]) -> asyncio.Task[Any]:
        """A task of the fleet's, cancelled when the fleet closes."""
        task = asyncio.ensure_future(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def poll(self, watches: Iterable[Any]) -> asyncio.Task[Any]:
        """Read each watch's device every POLL_SECONDS (for kinds whose devices are read, not
        heard): a fleet task, so it ends with the fleet."""

        async def poll_forever() -> None:
            while True:
                for watch in watches:
                    watch.poll()
                await asyncio.sleep(POLL_SECONDS)

        return self.spawn(poll_forever())

    async def wait(self, duration: float = 0.0) -> None:
        """Run ``duration`` seconds, or until cancelled (Ctrl-C, SIGTERM) when 0."""
        await (asyncio.sleep(duration) if duration and duration > 0 else asyncio.Event().wait())


def _endpoint_key(text: str) -> str:
    parts = urlsplit(text if "//" in text else f"//{text}")
    if not parts.hostname or not parts.port:
        raise FleetError(f"--fault-endpoint takes HOST:PORT or a URL with a port, not {text!r}")
    return f"{parts.hostname}:{parts.port}"

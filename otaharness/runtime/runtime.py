"""A scenario's world: its loop and clock, seed, services, links, devices, and their teardown.

A :class:`Runtime` is made per scenario (or per ``serve``/``emulate`` process). Services (the
broker, a flow's back ends) start lazily on first use on free loopback ports and stop in reverse
order; emulated devices reach them through per-endpoint :class:`LinkProxy` instances, which is
where link faults and captures live. :meth:`Runtime.close` tears everything down and reports
whatever was left behind (tasks, timers, threads, processes).
"""

from __future__ import annotations

import asyncio
import hashlib
import importlib
import ipaddress
import logging
import os
import random
import re
import resource
import shutil
import threading
from collections.abc import Awaitable, Callable, Coroutine
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit

from otaharness.runtime.broker import PROCESS_LIFETIME_THREAD_PREFIX
from otaharness.runtime.clock import Clock, RealClock, VirtualClock, VirtualEventLoop
from otaharness.runtime.faults import LinkFault
from otaharness.runtime.targets import HarnessConfig, Target

log = logging.getLogger(__name__)

# Where each flow's back ends are started: the one place to add a flow. Each module defines
# `async def start(runtime) -> Service`.
FLOW_SERVICES: dict[str, str] = {
    "broker": "otaharness.runtime.broker_service",
    "aws-iot": "otaharness.servers.aws_iot.service",
    "cups": "otaharness.servers.basics_station.service",
    "lorawan": "otaharness.servers.lorawan.service",
    "olt": "otaharness.servers.olt.service",
    "tr069": "otaharness.servers.tr069.service",
    "fuota": "otaharness.servers.fuota.service",
}

# Well-known ports under which captured traffic appears, so Wireshark dissects it unaided.
WELL_KNOWN_PORTS = {"mqtt": 1883, "mqtts": 8883, "http": 80, "https": 443, "ws": 80, "wss": 443}

DEFAULT_ACTION_TIMEOUT = 3600.0


class Service(Protocol):
    def endpoints(self) -> dict[str, str]: ...

    async def stop(self) -> None: ...


class Device(Protocol):
    """What the common fault steps need of an emulated device."""

    async def reboot(self) -> None: ...

    async def power_cut(self) -> None: ...


def raise_fd_limit() -> int:
    """Thousands of emulated clients need thousands of descriptors: lift the soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def scenario_seed(name: str) -> int:
    """The default seed of a scenario: stable per name, so a CI failure replays locally."""
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:4], "big")


def slug(text: str, limit: int = 80) -> str:
    """A file name for a scenario: its words, cut to ``limit`` characters with a short hash of the
    whole name when cut, so that scenarios with a long common beginning keep apart."""
    words = re.sub(r"[^A-Za-z0-9]+", "-", text).strip("-") or "scenario"
    if len(words) <= limit:
        return words
    return f"{words[:limit - 9].rstrip('-')}-{hashlib.sha256(text.encode()).hexdigest()[:8]}"


class Runtime:
    def __init__(self, config: HarnessConfig, *, name: str = "scenario",
                 seed: int | None = None, virtual: bool | None = None,
                 state_dir: Path | None = None, tls_key_log: bool = True,
                 record: bool = False) -> None:
        self.config = config
        # TLS session secrets for Wireshark: kept for a scenario's artifacts and pcaps; `serve`
        # keeps them only when it captures (anyone with the log could read tokens off the wire).
        self.tls_key_log = tls_key_log
        self.state_dir = Path(state_dir) if state_dir is not None else None
        self.name = name
        self.seed = seed if seed is not None else (
            config.seed if config.seed is not None else scenario_seed(name))
        self.virtual = (not config.any_external) if virtual is None else virtual
        if self.virtual:
            self.clock: Clock = VirtualClock(real_time_limit=config.real_time_limit,
                                             follow_wall_clock=True)
            self.loop = VirtualEventLoop(self.clock)
        else:
            self.clock = RealClock()
            self.loop = asyncio.new_event_loop()
        asyncio.set_event_loop(self.loop)
        self.artifacts = config.artifacts_dir / slug(name)
        self.devices: dict[str, Device] = {}
        self._services: dict[str, Service] = {}
        self._service_order: list[str] = []
        self._proxies: dict[str, Any] = {}
        self._addresses: dict[str, str] = {}
        self._devices_by_address: dict[str, str] = {}
        self._cleanups: list[Callable[[], Awaitable[None]]] = []
        self._capture = None
        self._pki = None
        self._threads_before = set(threading.enumerate())
        self._children_before = _child_pids()
        self.values: dict[str, Any] = {}  # scenario variables for ${name} substitution
        self._targets: dict[str, Target] = {}
        # A scenario's timeline and transcripts, and the secrets its artifacts must not show:
        # what servers and emulators report through otaharness.runtime.timeline's hooks.
        self.recorder = None
        self.secrets = None
        if record:
            from otaharness.runtime import redaction, timeline

            self.secrets = redaction.SecretSet()
            self.recorder = timeline.Recorder(self.clock, device_of=self.device_of)
            redaction.activate(self.secrets)
            timeline.attach(self.recorder)

    def data_dir(self, service: str) -> Path:
        """Where service ``service`` keeps its files. Under ``serve --state-dir DIR``:
        ``DIR/<service>``, kept as it is, so a restarted server finds everything it acknowledged;
        otherwise a folder in the scenario's artifacts, emptied (each scenario starts from
        nothing)."""
        if self.state_dir is not None:
            path = self.state_dir / service
        else:
            path = self.artifacts / service
            shutil.rmtree(path, ignore_errors=True)
        path.mkdir(parents=True, exist_ok=True)
        return path

    # -- running the loop (sync, for steps) ------------------------------------------------------
    def run(self, coro: Coroutine, *, timeout: float = DEFAULT_ACTION_TIMEOUT) -> Any:
        """Run ``coro`` on the scenario's loop, letting time pass as it needs, then settle."""

        async def main():
            task = asyncio.ensure_future(coro)
            await self.clock.run_until(task.done, timeout=timeout)
            if not task.done():
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
                raise TimeoutError(f"not finished within {timeout:g} s of scenario time")
            result = task.result()
            await self.clock.settle()
            return result

        return self.loop.run_until_complete(main())

    def run_for(self, seconds: float) -> None:
        self.loop.run_until_complete(self.clock.run_for(seconds))

    def run_until(self, predicate: Callable[[], bool], *, timeout: float) -> bool:
        return self.loop.run_until_complete(self.clock.run_until(predicate, timeout=timeout))

    def rng(self, purpose: str) -> random.Random:
        """A random stream per purpose, derived from the scenario seed (replayable)."""
        digest = hashlib.sha256(f"{self.seed}:{purpose}".encode()).digest()
        return random.Random(int.from_bytes(digest[:8], "big"))

    # -- addresses ----------------------------------------------------------------------------
    def address_of(self, device: str) -> str:
        """Each device's own loopback source address (127.1.0.1, 127.1.0.2, ...)."""
        address = self._addresses.get(device)
        if address is None:
            index = len(self._addresses) + 1
            address = str(ipaddress.IPv4Address("127.1.0.0") + index)
            self._addresses[device] = address
            self._devices_by_address[address] = device
        return address

    def device_of(self, address: str) -> str:
        return self._devices_by_address.get(address, address)

    # -- services and targets ----------------------------------------------------------------
    def target(self, flow: str) -> Target:
        return self._targets.get(flow) or self.config.target(flow)

    def resolve_target(self, target: Target) -> None:
        """What a flow's target turned out to be for this scenario (a docker target: external,
        at the endpoints of the container the harness started)."""
        self._targets[target.flow] = target

    async def service(self, name: str) -> Service:
        """The running service ``name``, started on first use."""
        service = self._services.get(name)
        if service is None:
            if self.config.target(name).kind == "docker":  # the back end runs in a container
                from otaharness.runtime.docker_targets import start_service

                service = await start_service(self, name)
            else:
                module = importlib.import_module(FLOW_SERVICES[name])
                service = await module.start(self)
            self._services[name] = service
            self._service_order.append(name)
            log.info("%s started: %s", name, service.endpoints())
        return service

    async def endpoints(self, *names: str) -> dict[str, str]:
        result: dict[str, str] = {}
        for name in names:
            result.update((await self.service(name)).endpoints())
        return result

    def running_endpoints(self) -> dict[str, str]:
        """Every endpoint of every running service (a flow's and those it started)."""
        known: dict[str, str] = {}
        for service in self._services.values():
            known.update(service.endpoints())
        return known

    def running_tokens(self) -> dict[str, str]:
        """Bearer tokens of the running services' APIs, by endpoint name (a service that has any
        offers ``tokens()``): what ``serve --json`` prints under ``"tokens"`` and steps use."""
        tokens: dict[str, str] = {}
        for service in self._services.values():
            tokens.update(getattr(service, "tokens", dict)())
        return tokens

    def token_for(self, endpoint: str) -> str | None:
        """The bearer token the API at ``endpoint`` (by name) requires, or None if it takes none."""
        return self.running_tokens().get(endpoint)

    def internal_endpoints(self) -> set[str]:
        """Endpoint names a running service keeps to itself (not for devices: e.g. the broker
        behind the AWS IoT gateway), left out of what ``serve`` prints."""
        hidden: set[str] = set()
        for service in self._services.values():
            hidden |= getattr(service, "internal_endpoints", set)()
        return hidden

    def endpoint_url(self, name: str) -> str:
        """The URL of a running service's endpoint, by name (case-insensitive)."""
        known = {key.lower(): url for key, url in self.running_endpoints().items()}
        try:
            return known[name.lower()]
        except KeyError:
            raise LookupError(f"no running endpoint named {name!r} (running: "
                              f"{', '.join(sorted(known)) or 'none'})") from None

    def log_files(self) -> dict[str, Path]:
        """Log files of the running services (e.g. the broker's), for a failed scenario."""
        found: dict[str, Path] = {}
        for service in self._services.values():
            found.update(getattr(service, "log_files", dict)())
        if self._pki is not None and self._pki.keylog is not None and self._pki.keylog.exists():
            found["tls-keys"] = self._pki.keylog  # session secrets (no private key): for Wireshark
        return found

    def issued_secrets(self):
        """The secrets of this scenario's artifacts (a ``redaction.SecretSet``, or None when it
        does not record): those remembered as they were made, and the running APIs' tokens."""
        if self.secrets is not None:
            for token in self.running_tokens().values():
                self.secrets.add(token)
        return self.secrets

    def add_cleanup(self, cleanup: Callable[[], Awaitable[None]]) -> None:
        self._cleanups.append(cleanup)

    # -- links: how devices reach endpoints --------------------------------------------------------
    async def link(self, url: str) -> tuple[str, int]:
        """The (host, port) a device dials to reach ``url``: through the runtime's proxy, so that
        link faults and captures apply. Against external targets: the URL's own address."""
        parts = urlsplit(url)
        port = parts.port or WELL_KNOWN_PORTS.get(parts.scheme, 80)
        if not self.virtual:
            return parts.hostname or "127.0.0.1", port
        key = f"{parts.hostname}:{port}"
        proxy = self._proxies.get(key)
        if proxy is None:
            from otaharness.runtime.proxy import LinkProxy

            proxy = LinkProxy(key, (parts.hostname or "127.0.0.1", port),
                              service_port=WELL_KNOWN_PORTS.get(parts.scheme, port),
                              device_of=self.device_of, capture=self.capture(),
                              wall_time=self.clock.epoch)
            await proxy.start()
            self._proxies[key] = proxy
        return proxy.address

    def proxy_for(self, url: str):
        parts = urlsplit(url)
        port = parts.port or WELL_KNOWN_PORTS.get(parts.scheme, 80)
        proxy = self._proxies.get(f"{parts.hostname}:{port}")
        if proxy is None:
            raise LookupError(f"no device has dialled {url} yet")
        return proxy

    async def set_link_fault(self, device: str, url: str, fault: LinkFault | None) -> None:
        await self.link(url)
        proxy = self.proxy_for(url)
        if fault is None:
            proxy.clear_fault(device)
        else:
            proxy.set_fault(device, fault)
        if self.recorder is not None:
            self.recorder.note(device, "fault", f"link to {url}: {fault or 'restored'}")

    def capture(self):
        """The scenario's TCP/IP capture, written as it goes; at close it becomes
        ``<scenario>.pcapng`` with the TLS key log embedded (Wireshark decrypts unaided)."""
        if self._capture is None and self.config.capture_dir is not None:
            from otaharness.runtime.capture import PcapWriter

            self.config.capture_dir.mkdir(parents=True, exist_ok=True)
            self._capture = PcapWriter(self.config.capture_dir / f".{slug(self.name)}.pcap")
        return self._capture

    def pki(self):
        """The scenario's PKI (CAs, certificates, TLS contexts), made on first use; every TLS
        context it makes logs session secrets to the scenario's key log. Under ``serve
        --state-dir DIR`` its CAs are kept in ``DIR/pki`` and reused by the next start."""
        if self._pki is None:
            from otaharness.runtime.pki import Pki

            kept = self.state_dir / "pki" if self.state_dir is not None else None
            self._pki = Pki(authorities=kept)
            if self.tls_key_log:
                self._pki.keylog = self._pki.directory / "tls-keys.log"
        return self._pki

    def _finish_capture(self) -> None:
        if self._capture is None:
            return
        from otaharness.runtime.capture import embed_tls_secrets

        self._capture.close()
        pcap = self._capture.path
        keylog = self._pki.keylog if self._pki is not None else None
        embed_tls_secrets(pcap, keylog or pcap.with_suffix(".no-keys"),
                          pcap.with_name(pcap.name.lstrip(".") + "ng"))
        pcap.unlink(missing_ok=True)

    # -- teardown -----------------------------------------------------------------------------------
    async def _shutdown(self) -> None:
        for cleanup in reversed(self._cleanups):
            await _logged(cleanup(), "cleanup")
        for name in reversed(self._service_order):
            await _logged(self._services[name].stop(), f"stopping {name}")
        for proxy in self._proxies.values():
            await _logged(proxy.close(), "closing proxy")
        self._cleanups.clear()
        self._services.clear()
        self._proxies.clear()

    def close(self) -> list[str]:
        """Tear everything down; return what was left behind (empty when clean)."""
        leftovers: list[str] = []
        try:
            self.run(self._shutdown(), timeout=600)
            leftovers += self._lingering_in_loop()
        finally:
            try:
                self._finish_capture()
            finally:
                if self._pki is not None:
                    self._pki.close()
            self.loop.run_until_complete(self.loop.shutdown_asyncgens())
            self.loop.run_until_complete(self.loop.shutdown_default_executor())
            self.loop.close()
            self.clock.close()
            asyncio.set_event_loop(None)
            self._stop_recording()
        leftovers += [f"thread {t.name}" for t in _new_threads(self._threads_before)]
        leftovers += [f"process {pid}" for pid in _child_pids() - self._children_before]
        return leftovers

    def _stop_recording(self) -> None:
        """The hooks stop reporting here; what was recorded stays readable (``recorder``)."""
        if self.recorder is None:
            return
        from otaharness.runtime import redaction, timeline

        timeline.detach(self.recorder)
        redaction.deactivate(self.secrets)

    def _lingering_in_loop(self) -> list[str]:
        found = [f"task {t.get_coro()!r}" for t in asyncio.all_tasks(self.loop) if not t.done()]
        # asyncio keeps timers in a private heap; the leak check is the only reader.
        found += [f"timer {h!r}" for h in getattr(self.loop, "_scheduled", [])
                  if not h.cancelled()]
        return found


async def _logged(awaitable: Awaitable, what: str) -> None:
    try:
        await awaitable
    except Exception:  # teardown goes on; the error is in the scenario's log
        log.exception("%s failed", what)


def _new_threads(before: set[threading.Thread], grace: float = 2.0) -> list[threading.Thread]:
    """Threads started since ``before`` that are still alive after a short grace period, apart from
    those meant to live as long as the process."""
    import time

    deadline = time.monotonic() + grace
    while True:
        new = [t for t in threading.enumerate() if t not in before and t.is_alive()
               and not t.name.startswith(PROCESS_LIFETIME_THREAD_PREFIX)]
        if not new or time.monotonic() > deadline:
            return new
        time.sleep(0.02)


def _child_pids() -> set[int]:
    me = str(os.getpid())
    pids = set()
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as stat:
                    fields = stat.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if fields[1] == me and fields[0] != "Z":
                pids.add(int(entry))
    return pids

"""Docker targets: a flow's back end (or the broker) in a container the harness starts, checks,
faults and removes, driven through the docker SDK (PyPI ``docker``).

A docker target is a target section with ``target = "docker"`` (docs/docker-targets.md)::

    [targets.broker]
    target = "docker"
    build = "fixtures/docker/mosquitto"       # or: image = "eclipse-mosquitto:2"
    command = "mosquitto -c /etc/mosquitto/harness.conf -p {port:mqtt}"
    endpoint.mqtt = "mqtt://127.0.0.1:{port:mqtt}"
    ready = "tcp:mqtt"                        # tcp:<endpoint> | http:<endpoint>[/path] | log:<text>
    env.LOG_LEVEL = "debug"
    mount."/etc/mosquitto/harness.conf" = "fixtures/docker/mosquitto/harness.conf"
    lifetime = "run"                          # run | feature | scenario

Containers use the host's network (every endpoint on 127.0.0.0/8) and take free ports:
``{port:<name>}`` in the command, environment, endpoints and mount paths stands for a port
chosen free when the container starts. Every container carries the label ``otaharness`` (and
``otaharness.target=<flow>``), so ``docker ps -a --filter label=otaharness`` finds what a run
left. Containers live for the run, a feature or a scenario; each scenario gets a view of its
container (:class:`ContainerService`) whose log file holds only the scenario's part of the
container log, and which leaves the container running and ready for the next scenario whatever
the scenario did to it. Everything is removed at the end of the run, also on failure, Ctrl-C or
SIGTERM (atexit); what a run killed outright left is removed by the next one.
"""

from __future__ import annotations

import asyncio
import atexit
import hashlib
import logging
import os
import socket
import ssl
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from otaharness.fixtures import fixture_path
from otaharness.runtime.faults import ContainerFault, Kill, Pause, Restart, Start
from otaharness.runtime.redaction import redact_bytes
from otaharness.runtime.targets import boolean, seconds

log = logging.getLogger(__name__)

LABEL = "otaharness"
BASE_IMAGE = os.environ.get("OTAHARNESS_BASE_IMAGE", "otaharness/debian-base:bookworm")
DOCKER = "docker"
LIFETIMES = ("run", "feature", "scenario")
# Placeholders a mount's host path may hold; they name a scenario's files, so a container whose
# mounts use them lives per scenario.
SCENARIO_PLACEHOLDERS = ("{artifacts}", "{pki:server}")
LOG_TAIL_LINES = 40


class DockerTargetError(RuntimeError):
    """A docker target that cannot be built, started or made ready (the message says why)."""


class EngineUnavailable(DockerTargetError):
    """No container engine answers."""


# -- settings ---------------------------------------------------------------------------------


def _ready_check(value: str) -> str:
    kind, colon, rest = str(value).partition(":")
    if not colon or kind not in ("tcp", "http", "log") or not rest:
        raise ValueError(f"expected tcp:<endpoint>, http:<endpoint>[/path] or log:<text>, "
                         f"not {value!r}")
    return value


# The keys of a docker target (besides the flow's own); prefixes take a name after the dot.
SETTINGS: dict[str, Any] = {
    "image": None, "build": None, "command": None,
    "ready": _ready_check, "ready_timeout": seconds, "lifetime": LIFETIMES,
    # a back end that answers at once (a static file server) may keep the scenario on the
    # virtual clock: its ports are then watched like the broker's (kernel queues empty)
    "virtual_time": boolean,
    # "log-json": the endpoints are the first JSON object the container prints on a line of its
    # own (what `otaharness serve --json` prints), re-read after a restart
    "endpoints": ("log-json",),
}
PREFIXED = ("env", "mount", "endpoint")


def is_docker_key(key: str) -> bool:
    return key in SETTINGS or key.partition(".")[0] in PREFIXED and "." in key


@dataclass(frozen=True)
class DockerSpec:
    """What a docker target section asks for, read from its settings."""

    flow: str
    image: str = ""
    build: str = ""
    command: str = ""
    environment: Mapping[str, str] = field(default_factory=dict)
    mounts: Mapping[str, str] = field(default_factory=dict)  # container path -> host path
    endpoints: Mapping[str, str] = field(default_factory=dict)
    ready: str = ""
    ready_timeout: float = 60.0
    lifetime: str = "run"
    virtual_time: bool = False
    endpoints_from_log: bool = False

    @classmethod
    def from_settings(cls, flow: str, settings: Mapping[str, str]) -> DockerSpec:
        def prefixed(prefix: str) -> dict[str, str]:
            return {key.split(".", 1)[1]: str(value) for key, value in settings.items()
                    if key.startswith(prefix + ".")}

        spec = cls(flow, image=settings.get("image", ""), build=settings.get("build", ""),
                   command=settings.get("command", ""), environment=prefixed("env"),
                   mounts=prefixed("mount"), endpoints=prefixed("endpoint"),
                   ready=settings.get("ready", ""),
                   ready_timeout=float(settings.get("ready_timeout", 60.0)),
                   lifetime=settings.get("lifetime", "run"),
                   virtual_time=boolean(settings.get("virtual_time", "false")),
                   endpoints_from_log=settings.get("endpoints") == "log-json")
        spec.check()
        return spec

    def check(self) -> None:
        where = f"docker target {self.flow}"
        if bool(self.image) == bool(self.build):
            raise ValueError(f"{where}: give an image or a build context (one of them)")
        if not self.endpoints and not self.endpoints_from_log:
            raise ValueError(f"{where}: names no endpoint (e.g. endpoint.mqtt = "
                             "\"mqtt://127.0.0.1:{port:mqtt}\")")
        for name, address in self.endpoints.items():
            host = urlsplit(address.replace("{", "").replace("}", "")).hostname or ""
            if not host.startswith("127.") and host != "localhost":
                raise ValueError(f"{where}: endpoint {name} must be on 127.0.0.0/8 (host "
                                 f"networking), not {address!r}")
        for inside, outside in self.mounts.items():
            if any(p in outside for p in SCENARIO_PLACEHOLDERS) and self.lifetime != "scenario":
                raise ValueError(f"{where}: mount {inside} names a scenario's files "
                                 f"({outside!r}): give it lifetime = \"scenario\"")
        if self.ready:
            kind, _, rest = self.ready.partition(":")
            if kind in ("tcp", "http") and rest.split("/", 1)[0] not in self.endpoints:
                raise ValueError(f"{where}: ready check {self.ready!r} names no endpoint of "
                                 f"{', '.join(self.endpoints)}")


# -- the engine -------------------------------------------------------------------------------

_client = None


def engine():
    """The docker SDK client, or :class:`EngineUnavailable` with the reason."""
    global _client
    if _client is None:
        try:
            import docker
        except ImportError as exc:  # a dependency, but say so plainly
            raise EngineUnavailable(f"the docker SDK is not installed ({exc})") from None
        try:
            client = docker.from_env(timeout=120)
            client.ping()
        except Exception as exc:  # noqa: BLE001 - any failure means: no engine here
            raise EngineUnavailable(
                f"no container engine answers ({exc.__class__.__name__}: {exc}); run "
                "scripts/setup, or start dockerd") from None
        _client = client
        _remove_orphans(client)
        _interrupt_on_sigterm()
    return _client


def _remove_orphans(client) -> None:
    """Remove containers an earlier run on this machine left when it was killed outright
    (SIGKILL: no exit handler ran): labelled, and their process is gone."""
    for container in client.containers.list(all=True, filters={"label": f"{LABEL}.pid"}):
        pid = container.labels.get(f"{LABEL}.pid", "")
        if pid.isdigit() and not Path(f"/proc/{pid}").exists():
            log.info("removing %s, left by process %s", container.name, pid)
            try:
                container.remove(force=True, v=True)
            except Exception as exc:  # noqa: BLE001 - another run may be removing it too
                log.debug("removing %s: %s", container.name, exc)


def _interrupt_on_sigterm() -> None:
    """SIGTERM (a CI job cancelled) ends the run like Ctrl-C, so the exit handler removes the
    containers; only where nobody else handles SIGTERM."""
    import signal
    import threading

    if threading.current_thread() is threading.main_thread() and \
            signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
        signal.signal(signal.SIGTERM, signal.default_int_handler)


def engine_problem() -> str | None:
    """Why docker targets cannot run here, or None when an engine answers."""
    try:
        engine()
    except EngineUnavailable as exc:
        return str(exc)
    return None


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def fill_ports(text: str, ports: dict[str, int]) -> str:
    """``{port:name}`` -> a free port, the same one for the same name within a container."""
    out, rest = [], text
    while (start := rest.find("{port:")) >= 0:
        end = rest.find("}", start)
        if end < 0:
            break
        name = rest[start + 6:end]
        if name not in ports:
            ports[name] = free_port()
        out += [rest[:start], str(ports[name])]
        rest = rest[end + 1:]
    return "".join(out) + rest


_built: dict[Path, str] = {}  # context -> tag, built (or found) once per process


def build_image(spec: DockerSpec, context_root: Path = Path(".")) -> str:
    """Build the target's context (FROM ${BASE_IMAGE}) into an image tagged by its content."""
    client = engine()
    context = (context_root / spec.build).resolve()
    if context in _built:
        return _built[context]
    if not (context / "Dockerfile").is_file():
        raise DockerTargetError(f"docker target {spec.flow}: no Dockerfile in {context}")
    digest = hashlib.sha256()
    for path in sorted(p for p in context.rglob("*") if p.is_file()):
        digest.update(str(path.relative_to(context)).encode() + b"\0" + path.read_bytes())
    digest.update(BASE_IMAGE.encode())
    tag = f"otaharness/target-{context.name}:{digest.hexdigest()[:12]}"
    import docker.errors

    try:
        client.images.get(tag)
        _built[context] = tag
        return tag
    except docker.errors.ImageNotFound:
        log.info("building %s from %s", tag, context)

    try:
        client.images.build(path=str(context), tag=tag, rm=True, network_mode="host",
                            buildargs={"BASE_IMAGE": BASE_IMAGE}, labels={LABEL: "image"})
    except docker.errors.BuildError as exc:
        lines = [str(chunk.get("stream", chunk.get("error", ""))).rstrip()
                 for chunk in exc.build_log]
        hint = ""
        try:
            client.images.get(BASE_IMAGE)
        except docker.errors.ImageNotFound:
            hint = f" (the base image {BASE_IMAGE} is missing: run scripts/setup)"
        raise DockerTargetError(f"docker target {spec.flow}: building {context} failed{hint}: "
                                f"{exc.msg}\n" + "\n".join(lines[-LOG_TAIL_LINES:])) from None
    _built[context] = tag
    # earlier builds of the same context are stale (hundreds of MB each); one still in use by a
    # container of another run stays
    for image in client.images.list(name=tag.partition(":")[0]):
        if tag not in image.tags:
            try:
                client.images.remove(image.id)
            except docker.errors.APIError as exc:
                log.debug("keeping %s: %s", image.tags, exc)
    return tag


# -- a running container ----------------------------------------------------------------------


class Container:
    """One started container of a docker target: its endpoints, readiness and faults."""

    def __init__(self, spec: DockerSpec, feature: str | None = None,
                 scenario_paths: Mapping[str, str] | None = None) -> None:
        self.spec = spec
        self.feature = feature
        self.scenario_paths = dict(scenario_paths or {})
        self.ports: dict[str, int] = {}
        self.endpoints = {name: fill_ports(address, self.ports)
                          for name, address in spec.endpoints.items()}
        self.tokens: dict[str, str] = {}
        self.container = None
        self.started_at = 0.0

    # blocking calls: the async wrappers below run them in an executor
    def start_blocking(self) -> None:
        client = engine()
        image = build_image(self.spec) if self.spec.build else self.spec.image
        mounts = {}
        for inside, outside in self.spec.mounts.items():
            for placeholder, path in self.scenario_paths.items():
                outside = outside.replace(placeholder, path)
            host = Path(fill_ports(outside, self.ports)).resolve()
            if not host.exists():
                raise DockerTargetError(f"docker target {self.spec.flow}: no file {host} to "
                                        f"mount at {inside}")
            mounts[str(host)] = {"bind": inside, "mode": "ro"}
        environment = {key: fill_ports(value, self.ports)
                       for key, value in self.spec.environment.items()}
        import docker.errors

        name = f"otaharness-{self.spec.flow}-{os.getpid()}-{free_port()}"
        self.started_at = time.time()  # before its first line: the log check reads from here
        try:
            self.container = client.containers.run(
                image, fill_ports(self.spec.command, self.ports) or None, detach=True,
                network_mode="host", environment=environment, volumes=mounts,
                labels={LABEL: "", f"{LABEL}.target": self.spec.flow,
                        f"{LABEL}.pid": str(os.getpid())},
                name=name)
        except docker.errors.ImageNotFound:
            raise DockerTargetError(
                f"docker target {self.spec.flow}: no image {image!r} in the engine (no "
                "registry is asked: build or load it first, or give a build context)") from None
        except docker.errors.APIError as exc:
            try:  # created but not started (a bad command, a mount): nothing is left behind
                client.containers.get(name).remove(force=True)
            except docker.errors.APIError:
                pass
            raise DockerTargetError(f"docker target {self.spec.flow}: cannot start: "
                                    f"{exc.explanation or exc}") from None
        _running.add(self)
        self.wait_ready_blocking()

    def status(self) -> str:
        self.container.reload()
        return self.container.status

    def log_tail(self, lines: int = LOG_TAIL_LINES) -> str:
        try:
            return self._redacted(self.container.logs(tail=lines)).decode(errors="replace")
        except Exception as exc:  # noqa: BLE001 - the container may be gone
            return f"(no log: {exc})"

    def logs_since(self, since: float) -> bytes:
        return self._redacted(self.container.logs(since=since, timestamps=True))

    def _redacted(self, log_bytes: bytes) -> bytes:
        """The log without the API tokens it printed (`serve --json` prints them): logs reach
        reports, tokens never do."""
        return redact_bytes(log_bytes, [str(token) for token in self.tokens.values() if token])

    def wait_ready_blocking(self) -> None:
        deadline = time.monotonic() + self.spec.ready_timeout
        last = "not checked yet"
        while time.monotonic() < deadline:
            status = self.status()
            if status in ("exited", "dead"):
                code = self.container.attrs.get("State", {}).get("ExitCode")
                raise DockerTargetError(
                    f"docker target {self.spec.flow}: the container {status} (exit code {code}) "
                    f"before it was ready; its last log lines:\n{self.log_tail()}")
            if self.spec.endpoints_from_log:
                self._read_endpoints()
            last = self._ready_problem() if self.endpoints else "no endpoints printed yet"
            if last is None:
                return
            time.sleep(0.2)
        raise DockerTargetError(
            f"docker target {self.spec.flow}: not ready within {self.spec.ready_timeout:g} s "
            f"({self.spec.ready or 'tcp on every endpoint'}: {last}); the container's last log "
            f"lines:\n{self.log_tail()}")

    def _read_endpoints(self) -> None:
        """Endpoints (and tokens) from the JSON object the container printed last: a restarted
        server prints its new ones."""
        import json

        self.endpoints, self.tokens = {}, {}
        for line in reversed(self.container.logs(since=self.started_at).splitlines()):
            if not line.startswith(b"{"):
                continue
            try:
                printed = json.loads(line)
            except ValueError:
                continue
            if isinstance(printed, dict):
                self.tokens = dict(printed.get("tokens") or {})
                # URLs only: a path ("ca") is a file inside the container
                self.endpoints = {name: value for name, value in printed.items()
                                  if isinstance(value, str) and "://" in value}
                return

    def _ready_problem(self) -> str | None:
        checks = [self.spec.ready] if self.spec.ready else [f"tcp:{n}" for n in self.endpoints]
        for check in checks:
            kind, _, rest = check.partition(":")
            if kind == "log":
                # since this start: a restarted container's old lines prove nothing
                if rest.encode() not in self.container.logs(since=self.started_at):
                    return f"{rest!r} not in its log yet"
                continue
            name, _, path = rest.partition("/")
            address = urlsplit(self.endpoints[name])
            if kind == "tcp" or address.scheme not in ("http", "https"):
                try:
                    socket.create_connection((address.hostname, address.port), timeout=2).close()
                except OSError as exc:
                    return f"{name}: {exc}"
                continue
            # readiness only: the server's certificate is judged by the scenarios, not here
            unverified = ssl.create_default_context()
            unverified.check_hostname, unverified.verify_mode = False, ssl.CERT_NONE
            try:
                with urllib.request.urlopen(self.endpoints[name].rstrip("/") + "/" + path,
                                            timeout=2, context=unverified) as answer:
                    answer.read()
            except urllib.error.HTTPError as exc:
                if exc.code >= 500:
                    return f"{name}: HTTP {exc.code}"
            except OSError as exc:
                return f"{name}: {exc}"
        return None

    def fault_blocking(self, fault: ContainerFault) -> None:
        if isinstance(fault, Pause):
            if self.status() != "paused":  # a second pause only moves the thaw
                self.container.pause()
        elif isinstance(fault, Restart):
            self.started_at = time.time()
            self.container.restart(timeout=10)
            self.wait_ready_blocking()
        elif isinstance(fault, Kill):
            self.container.kill()
        elif isinstance(fault, Start):
            self.started_at = time.time()
            self.container.start()
            self.wait_ready_blocking()

    def recover_blocking(self) -> None:
        """Back to running and ready, whatever a scenario did (for the next scenario)."""
        status = self.status()
        if status == "paused":
            self.container.unpause()
        elif status != "running":
            self.started_at = time.time()
            self.container.start()
        self.wait_ready_blocking()

    def remove_blocking(self) -> None:
        _running.discard(self)
        if self.container is None:
            return
        try:
            self.container.remove(force=True, v=True)
        except Exception as exc:  # noqa: BLE001 - already gone is fine
            log.debug("removing %s: %s", self.container.name, exc)


_running: set[Container] = set()
_by_flow: dict[str, Container] = {}


def remove_all() -> None:
    """Remove every container this process started (end of run, interrupt, exit)."""
    for container in list(_running):
        container.remove_blocking()
    _by_flow.clear()


atexit.register(remove_all)


# -- what a scenario sees ---------------------------------------------------------------------


class ContainerService:
    """A scenario's view of its target's container: the runtime service of that flow."""

    def __init__(self, runtime, container: Container, flow_service: Any = None) -> None:
        self.runtime = runtime
        self.container = container
        # a flow that can run against external endpoints runs its own external mode against
        # the container; what the steps ask of the flow's service goes to it
        self.flow_service = flow_service
        self.since = time.time()
        self._unpause: asyncio.TimerHandle | None = None
        self._log_folder: Path | None = None
        self._frozen = False  # paused by a fault: nothing comes out of it until the thaw timer
        add_probe = getattr(runtime.clock, "add_quiet_probe", None)
        if container.spec.virtual_time and add_probe is not None:
            add_probe(self.wait_quiet)

    def wait_quiet(self, timeout: float = 10.0) -> bool:
        """Quiet probe for the virtual clock: the kernel holds no byte to or from the container's
        ports, twice in a row (what was read is answered promptly by a server that declares
        ``virtual_time``; that is its promise, not something this probe can see)."""
        from otaharness.runtime.broker import broker_backlog

        deadline, quiet_looks = time.perf_counter() + timeout, 0
        while quiet_looks < 2 and not self._frozen:
            ports = [urlsplit(url).port for url in self.container.endpoints.values()]
            if all(port is None or broker_backlog(port) == 0 for port in ports):
                quiet_looks += 1
            else:
                quiet_looks = 0
                if time.perf_counter() > deadline:
                    log.warning("%s did not become quiet within %.0f s",
                                self.container.spec.flow, timeout)
                    return False
            time.sleep(0.001)
        return True

    def __getattr__(self, name: str) -> Any:
        flow_service = self.__dict__.get("flow_service")
        if flow_service is None:
            raise AttributeError(f"{self.container.spec.flow} runs in a container: it has no "
                                 f"{name!r} here (a step that needs it is server-side control)")
        return getattr(flow_service, name)

    def endpoints(self) -> dict[str, str]:
        return dict(self.container.endpoints)

    def tokens(self) -> dict[str, str]:
        own = getattr(self.flow_service, "tokens", dict)() if self.flow_service else {}
        return {**own, **self.container.tokens}

    def log_files(self) -> dict[str, Path]:
        """The scenario's slice of the container log, written when asked (a failed scenario's
        artifacts take a copy as ``container-<name>.log``)."""
        import tempfile

        if self._log_folder is None:
            self._log_folder = Path(tempfile.mkdtemp(prefix="otaharness-container-log-"))
        path = self._log_folder / f"{self.container.spec.flow}.log"
        try:
            path.write_bytes(self.container.logs_since(self.since))
        except Exception as exc:  # noqa: BLE001 - a removed container has no log
            path.write_text(f"(no container log: {exc})\n")
        return {f"container-{self.container.spec.flow}": path}

    async def fault(self, fault: ContainerFault) -> None:
        loop = asyncio.get_running_loop()
        if self._unpause is not None:
            self._unpause.cancel()
            self._unpause = None
        await loop.run_in_executor(None, self.container.fault_blocking, fault)
        self._frozen = False
        if isinstance(fault, Pause):
            self._frozen = True

            def unpause():
                self._unpause = None
                thawing = loop.run_in_executor(None, self.container.container.unpause)
                # quiet again only once the engine has thawed it (the executor job counts busy)
                thawing.add_done_callback(lambda _: setattr(self, "_frozen", False))

            self._unpause = loop.call_later(fault.seconds, unpause)

    async def log_lines(self) -> list[str]:
        """The container's log lines since the scenario began (its own timestamps cut off)."""
        raw = await asyncio.get_running_loop().run_in_executor(
            None, self.container.logs_since, self.since)
        return [line.partition(" ")[2] for line in raw.decode(errors="replace").splitlines()]

    async def state(self) -> str:
        """What the engine reports: running, paused, exited, ..."""
        return await asyncio.get_running_loop().run_in_executor(None, self.container.status)

    async def stop(self) -> None:
        if self.flow_service is not None:
            await self.flow_service.stop()
        remove_probe = getattr(self.runtime.clock, "remove_quiet_probe", None)
        if remove_probe is not None:
            remove_probe(self.wait_quiet)
        if self._unpause is not None:
            self._unpause.cancel()
            self._unpause = None
        loop = asyncio.get_running_loop()
        if self._log_folder is not None:
            import shutil

            shutil.rmtree(self._log_folder, ignore_errors=True)
        if self.container.spec.lifetime == "scenario":
            await loop.run_in_executor(None, self.container.remove_blocking)
            _by_flow.pop(self.container.spec.flow, None)
        else:
            await loop.run_in_executor(None, self.container.recover_blocking)


def server_tls_folder(runtime) -> Path:
    """A folder with the scenario PKI's server certificate for 127.0.0.1/localhost
    (``server.crt``, ``server.key``) and its CA (``ca.crt``), for a container's TLS server;
    it lives in the PKI's own folder and goes with it."""
    import shutil

    pki = runtime.pki()
    certificate, key = pki.server_identity(["localhost"])
    folder = pki.directory / "container-tls"
    folder.mkdir(mode=0o700, exist_ok=True)
    shutil.copy(certificate, folder / "server.crt")
    shutil.copy(key, folder / "server.key")
    shutil.copy(pki.ca_file, folder / "ca.crt")
    return folder


async def start_service(runtime, flow: str) -> ContainerService:
    """The runtime service of a flow whose target is a docker container (started if needed)."""
    feature = runtime.name.split(" -- ", 1)[0]  # the runtime's name: "<feature> -- <scenario>"
    container = _by_flow.get(flow)
    if container is not None and container.spec.lifetime in ("feature", "scenario") \
            and container.feature != feature:
        await asyncio.get_running_loop().run_in_executor(None, container.remove_blocking)
        del _by_flow[flow]
        container = None
    if container is None:
        spec = DockerSpec.from_settings(flow, runtime.target(flow).endpoints)
        paths = {}
        if any("{artifacts}" in m for m in spec.mounts.values()):
            runtime.artifacts.mkdir(parents=True, exist_ok=True)
            paths["{artifacts}"] = str(runtime.artifacts.resolve())
        if any("{pki:server}" in m for m in spec.mounts.values()):
            paths["{pki:server}"] = str(server_tls_folder(runtime))
        container = Container(spec, feature=feature, scenario_paths=paths)
        loop = asyncio.get_running_loop()
        try:
            await loop.run_in_executor(None, container.start_blocking)
        except BaseException:
            await loop.run_in_executor(None, container.remove_blocking)
            raise
        _by_flow[flow] = container
    return ContainerService(runtime, container, await _flow_in_external_mode(runtime, flow, container))


async def _flow_in_external_mode(runtime, flow: str, container: Container) -> Any:
    """The flow's own service in its external mode at the container's endpoints, for a flow
    that has one (``EXTERNAL_TARGET``); None for the broker and other flows."""
    from otaharness.runtime.runtime import FLOW_SERVICES
    from otaharness.runtime.targets import EXTERNAL, Target, flow_declaration

    if flow not in FLOW_SERVICES or flow == "broker" or not flow_declaration(flow)[1]:
        return None
    import importlib

    settings = {key: value for key, value in runtime.config.target(flow).endpoints.items()
                if not is_docker_key(key)}
    runtime.resolve_target(Target(flow, EXTERNAL, {**settings, **container.endpoints}))
    return await importlib.import_module(FLOW_SERVICES[flow]).start(runtime)


# -- features that bring their own docker target ----------------------------------------------

TARGET_TAG = "docker-target:"
FIXTURES = fixture_path("docker")


def scenario_config(config, tags) -> tuple[Any, str | None]:
    """The config a scenario runs with, and why it must be skipped (or None).

    ``@docker-target:<name>`` adds the target sections of ``fixtures/docker/<name>/otaharness.toml``
    (what a user writes in their own ``otaharness.toml``); ``@docker`` scenarios need an engine:
    without one they are skipped with the reason, and under ``CI=true`` that is an error.
    """
    import dataclasses

    from otaharness.runtime.targets import load_config

    uses_docker = "docker" in tags or any(t.startswith(TARGET_TAG) for t in tags) or any(
        t.kind == DOCKER for t in config.targets.values())
    if not uses_docker:
        return config, None
    problem = engine_problem()
    if problem is not None:
        if config.ci:
            raise EngineUnavailable(f"docker scenario under CI=true: {problem}")
        return config, f"needs a container engine: {problem}"
    targets = dict(config.targets)
    for tag in tags:
        if tag.startswith(TARGET_TAG):
            section = FIXTURES / tag.removeprefix(TARGET_TAG) / "otaharness.toml"
            targets.update(load_config({}, path=section, environ={}).targets)
    # Images are built here, before the scenario's clock runs: a first build takes minutes
    for name, target in targets.items():
        if target.kind == DOCKER and target.endpoints.get("build"):
            build_image(DockerSpec.from_settings(name, target.endpoints))
    return dataclasses.replace(config, targets=targets), None

"""Harness settings and per-flow targets: embedded back ends (default) or a user's endpoints.

Settings come from ``otaharness.toml`` (the working directory's, or ``OTAHARNESS_CONFIG``) and are
overridden by behave's ``-D name=value`` user data (or the CLI's ``-D``)::

    [harness]
    broker = "auto"          # auto | mosquitto | amqtt | mqtt://host:port (a user's broker)
    capture = "captures"     # write a pcap per scenario into this folder ("" = off)
    seed = 1234              # fixed random seed for every scenario (default: derived per scenario)
    artifacts = "failed"     # failed | all: which scenarios keep logs and transcripts

    [targets.aws-iot]        # a flow's target: "embedded" (default), "external" or "docker"
    target = "external"
    mqtt = "mqtt://broker.example.net:1883"
    aws = "https://..."

    [targets.broker]         # a back end (or the broker) in a container the harness starts
    target = "docker"        # keys: docker_targets.py, docs/docker-targets.md
    build = "fixtures/docker/mosquitto"
    endpoint.mqtt = "mqtt://127.0.0.1:{port:mqtt}"

    -D broker=mqtt://127.0.0.1:1883  -D capture=captures  -D seed=7
    -D target.aws-iot=external  -D target.aws-iot.mqtt=mqtt://...

Every section, key and value is checked; a misspelled one is an error naming the closest valid
one. ``[harness]`` keys are :data:`HARNESS_SETTINGS` below. A flow's keys are declared by the
flow's service module (``FLOW_SERVICES``), next to the code that reads them:
``SETTINGS = {"name": check}`` (check: ``None`` for any text, a tuple of allowed values, or a
function that raises ``ValueError`` for a bad value, e.g. :func:`boolean`, :func:`port`,
:func:`url`, :func:`seconds`), and
``EXTERNAL_TARGET = True`` if the flow can run against a user's endpoints. A flow module without
``SETTINGS`` has its keys passed through unchecked. ``-D`` names with a dotted prefix of their own
(``myteam.env=staging``) are the user's and left alone.
"""

from __future__ import annotations

import difflib
import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

EMBEDDED = "embedded"
EXTERNAL = "external"
DOCKER = "docker"
KINDS = (EMBEDDED, EXTERNAL, DOCKER)


class ConfigError(ValueError):
    """A setting in otaharness.toml or -D is not understood."""


def closest(word: str, known) -> str:
    """" (did you mean `x`?)" for the known name most like a misspelled one, or ""."""
    by_folded = {str(name).replace("_", "-").lower(): str(name) for name in known}
    found = difflib.get_close_matches(word.replace("_", "-").lower(), list(by_folded), n=1, cutoff=0.6)
    return f" (did you mean `{by_folded[found[0]]}`?)" if found else ""


@dataclass(frozen=True)
class Target:
    flow: str
    kind: str = EMBEDDED
    endpoints: Mapping[str, str] = field(default_factory=dict)

    @property
    def embedded(self) -> bool:
        return self.kind == EMBEDDED


@dataclass(frozen=True)
class HarnessConfig:
    broker: str = "auto"
    capture_dir: Path | None = None
    artifacts_dir: Path = Path("reports/artifacts")
    keep_artifacts: str = "failed"  # "all": passed scenarios keep theirs too
    seed: int | None = None
    ci: bool = False
    targets: Mapping[str, Target] = field(default_factory=dict)
    real_time_limit: float = 60.0

    def target(self, flow: str) -> Target:
        return self.targets.get(flow, Target(flow))

    @property
    def any_external(self) -> bool:
        """Whether scenarios run on real time: a back end outside the harness's control (a
        docker target only when it does not declare ``virtual_time``)."""
        return any(not t.embedded and not boolean(t.endpoints.get("virtual_time", "false"))
                   for t in self.targets.values()) or self.broker.startswith("mqtt")


# -- checks a setting's declaration may use ----------------------------------------------------

_TRUE, _FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off", "")


def boolean(value: str) -> bool:
    """true/false, yes/no, on/off, 1/0 (any case)."""
    folded = str(value).strip().lower()
    if folded in _TRUE or folded in _FALSE:
        return folded in _TRUE
    raise ValueError(f"expected true or false, not {value!r}")


def port(value: str) -> int:
    """A TCP port, 0 for a free one."""
    number = int(value)
    if not 0 <= number <= 65535:
        raise ValueError(f"a port is 0..65535, not {number}")
    return number


def url(*schemes: str) -> Callable[[str], str]:
    """A URL with one of these schemes."""

    def check(value: str) -> str:
        scheme, sep, rest = str(value).partition("://")
        if not sep or not rest or scheme not in schemes:
            raise ValueError(f"expected a {' or '.join(f'{s}://' for s in schemes)} URL, "
                             f"not {value!r}")
        return value

    return check


def _broker(value: str) -> str:
    if str(value).startswith("mqtt://") or value in ("auto", "mosquitto", "amqtt"):
        return value
    raise ValueError(f"expected auto, mosquitto, amqtt or mqtt://host:port, not {value!r}"
                     + closest(str(value), ("auto", "mosquitto", "amqtt")))


def seconds(value: str) -> float:
    """A positive number of seconds."""
    number = float(value)
    if not number > 0:
        raise ValueError(f"expected a positive number of seconds, not {value!r}")
    return number


def _seed(value: str) -> int | None:
    """An integer seed; "" derives one per scenario from its name."""
    if value == "":
        return None
    try:
        return int(value)
    except ValueError:
        raise ValueError(f"must be an integer (or empty: one per scenario), not {value!r}") from None


# Which scenarios keep their whole artifact folder (logs, transcripts, timeline.txt, the
# servers' state); every scenario keeps its timeline.jsonl.
ARTIFACT_CHOICES = ("failed", "all")

# The [harness] keys (and their -D names): read in load_config below.
HARNESS_SETTINGS: dict[str, Any] = {
    "broker": _broker,
    "capture": None,           # folder for a pcapng per scenario; "" = off
    "seed": _seed,
    "artifacts": ARTIFACT_CHOICES,  # which scenarios keep all their artifacts
    "artifacts_dir": None,     # the folder of a folder per scenario
    "real_time_limit": seconds,
}
SECTIONS = ("harness", "targets")
_OWN_PREFIXES = ("target", "harness")


def _check_value(name: str, value: Any, check: Any) -> None:
    text = str(value).lower() if isinstance(value, bool) else str(value)
    if check is None:
        return
    if isinstance(check, (tuple, list, frozenset, set)):
        if text not in check:
            raise ConfigError(f"{name}: must be one of {', '.join(map(str, check))}, not "
                              f"{text!r}{closest(text, check)}")
        return
    try:
        check(text)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{name}: {exc}") from None


def flow_declaration(flow: str) -> tuple[Mapping[str, Any] | None, bool]:
    """(the flow's declared settings or None, whether it can run against an external target)."""
    import importlib

    from otaharness.runtime.runtime import FLOW_SERVICES

    module = importlib.import_module(FLOW_SERVICES[flow])
    declared = getattr(module, "SETTINGS", None)
    if declared is not None and not isinstance(declared, Mapping):
        declared = dict.fromkeys(declared)  # names only: any value
    return declared, bool(getattr(module, "EXTERNAL_TARGET", False))


def _check_targets(targets: Mapping[str, dict[str, Any]], origin: Mapping[Any, str]) -> None:
    from otaharness.runtime import docker_targets
    from otaharness.runtime.runtime import FLOW_SERVICES

    # the broker is a target only as a container ([harness] broker names a user's own broker)
    flows = [flow for flow in FLOW_SERVICES if flow != "broker"]
    for flow, values in targets.items():
        kind = str(values.get("target", EMBEDDED))
        # A docker target may also be a container of its own, named unlike any flow (e.g. a
        # file server a flow's settings point at); a name close to a flow's is a misspelling.
        own_container = kind == DOCKER and flow not in FLOW_SERVICES and not closest(flow, flows)
        if flow not in flows and not (flow == "broker" and kind == DOCKER) and not own_container:
            raise ConfigError(f"{origin[flow]}: no flow {flow!r}"
                              f"{closest(flow, flows)}; flows: {', '.join(flows)} (a docker "
                              "target may also be the broker or a container named unlike a flow)")
        declared, external_ok = flow_declaration(flow) if not own_container else ({}, False)
        _check_value(origin.get((flow, "target"), f"target of {flow}"), kind, KINDS)
        if kind == EXTERNAL and not external_ok:
            raise ConfigError(f"{origin.get((flow, 'target'))}: {flow} has no external target, "
                              "its back end always runs embedded")
        if kind == DOCKER:
            for key, value in values.items():
                if docker_targets.is_docker_key(key):
                    _check_value(origin[(flow, key)], value,
                                 docker_targets.SETTINGS.get(key))
            try:
                docker_targets.DockerSpec.from_settings(
                    flow, {k: str(v) for k, v in values.items()})
            except ValueError as exc:
                raise ConfigError(f"{origin[flow]}: {exc}") from None
        if declared is None:
            continue  # the flow declares nothing: its keys pass unchecked
        for key, value in values.items():
            if key == "target" or kind == DOCKER and docker_targets.is_docker_key(key):
                continue
            if key not in declared:
                raise ConfigError(
                    f"{origin[(flow, key)]}: unknown setting of {flow}{closest(key, declared)}; "
                    f"known: {', '.join(sorted(declared)) or 'none'}")
            _check_value(origin[(flow, key)], value, declared[key])


def _read_toml(path: Path | None) -> dict[str, Any]:
    if path is None:
        env = os.environ.get("OTAHARNESS_CONFIG")
        path = Path(env) if env else Path("otaharness.toml")
        if not path.exists():
            return {}
    try:
        return tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"cannot read {path}: {exc}") from exc


def _flatten(values: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """TOML's dotted keys (``env.LEVEL = "debug"``) as the one-level names -D uses."""
    flat: dict[str, Any] = {}
    for key, value in values.items():
        if isinstance(value, Mapping):
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def load_config(userdata: Mapping[str, str] | None = None, *, path: Path | None = None,
                environ: Mapping[str, str] = os.environ) -> HarnessConfig:
    data = _read_toml(path)
    for section in data:
        if section not in SECTIONS:
            raise ConfigError(f"otaharness.toml: unknown section [{section}]"
                              f"{closest(section, SECTIONS)}; sections: [harness], [targets.<flow>]")
    harness = dict(data.get("harness", {}))
    for key in harness:
        if key not in HARNESS_SETTINGS:
            raise ConfigError(f"otaharness.toml: unknown key {key!r} in [harness]"
                              f"{closest(key, HARNESS_SETTINGS)}; known: {', '.join(HARNESS_SETTINGS)}")
    if not isinstance(data.get("targets", {}), dict) or not all(
            isinstance(v, dict) for v in data.get("targets", {}).values()):
        raise ConfigError("otaharness.toml: targets are tables, e.g. [targets.aws-iot]")
    targets: dict[str, dict[str, Any]] = {
        flow: _flatten(values) for flow, values in data.get("targets", {}).items()}
    # where each flow and flow key was set, for the messages
    origin = {flow: f"otaharness.toml [targets.{flow}]" for flow in targets}
    origin.update({(flow, key): f"otaharness.toml [targets.{flow}] {key}"
                   for flow, values in targets.items() for key in values})
    for key, value in (userdata or {}).items():
        prefix = key.split(".", 1)[0]
        if key.startswith("target."):
            parts = key.split(".", 2)
            origin.setdefault(parts[1], f"-D {key}")
            origin[(parts[1], "target" if len(parts) == 2 else parts[2])] = f"-D {key}"
            entry = targets.setdefault(parts[1], {})
            entry["target" if len(parts) == 2 else parts[2]] = value
        elif key in HARNESS_SETTINGS:
            harness[key] = value
        elif "." in key and prefix not in _OWN_PREFIXES and not closest(prefix, _OWN_PREFIXES):
            continue  # a user's own namespaced userdata (e.g. myteam.env)
        else:
            known = [*HARNESS_SETTINGS, "target.<flow>", "target.<flow>.<key>"]
            raise ConfigError(f"-D {key}: unknown setting{closest(key, known)}; known: "
                              f"{', '.join(known)} (your own userdata: a dotted name such as "
                              f"myteam.{key})")
    for key, value in harness.items():
        _check_value(key, value, HARNESS_SETTINGS[key])
    _check_targets(targets, origin)
    built = {}
    for flow, values in targets.items():
        kind = str(values.pop("target", EMBEDDED))
        if kind not in KINDS:
            raise ConfigError(f"target of {flow!r} must be one of {', '.join(KINDS)}, not {kind!r}")
        if kind == EXTERNAL and not values:
            raise ConfigError(f"external target {flow!r} names no endpoint (e.g. target.{flow}.mqtt=...)")
        built[flow] = Target(flow, kind, {k: str(v).lower() if isinstance(v, bool) else str(v)
                                           for k, v in values.items()})
    seed = harness.get("seed")
    try:
        seed = int(seed) if seed not in (None, "") else None
    except ValueError as exc:
        raise ConfigError(f"seed must be an integer, not {seed!r}") from exc
    capture = harness.get("capture") or None
    return HarnessConfig(
        broker=str(harness.get("broker", "auto")),
        capture_dir=Path(capture) if capture else None,
        artifacts_dir=Path(harness.get("artifacts_dir", "reports/artifacts")),
        keep_artifacts=str(harness.get("artifacts", "failed")),
        seed=seed,
        ci=environ.get("CI", "").lower() == "true",
        targets=built,
        real_time_limit=float(harness.get("real_time_limit", 60.0)),
    )

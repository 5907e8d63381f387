"""Harness settings and per-flow targets: embedded back ends (default) or a user's endpoints.

Settings come from ``otaharness.toml`` (the working directory's, or ``OTAHARNESS_CONFIG``) and are
overridden by behave's ``-D name=value`` user data (or the CLI's ``-D``)::

    [harness]
    broker = "auto"          # auto | mosquitto | amqtt | mqtt://host:port (a user's broker)
    capture = "captures"     # write a pcap per scenario into this folder ("" = off)
    seed = 1234              # fixed random seed for every scenario (default: derived per scenario)

    [targets.aws-iot]        # a flow's target: "embedded" (default) or "external"
    target = "external"
    mqtt = "mqtt://broker.example.net:1883"
    aws = "https://..."

    -D broker=mqtt://127.0.0.1:1883  -D capture=captures  -D seed=7
    -D target.aws-iot=external  -D target.aws-iot.mqtt=mqtt://...
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

EMBEDDED = "embedded"
EXTERNAL = "external"


class ConfigError(ValueError):
    """A setting in otaharness.toml or -D is not understood."""


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
    seed: int | None = None
    ci: bool = False
    targets: Mapping[str, Target] = field(default_factory=dict)
    real_time_limit: float = 60.0

    def target(self, flow: str) -> Target:
        return self.targets.get(flow, Target(flow))

    @property
    def any_external(self) -> bool:
        return any(not t.embedded for t in self.targets.values()) or self.broker.startswith("mqtt")


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


def load_config(userdata: Mapping[str, str] | None = None, *, path: Path | None = None,
                environ: Mapping[str, str] = os.environ) -> HarnessConfig:
    data = _read_toml(path)
    harness = dict(data.get("harness", {}))
    targets: dict[str, dict[str, Any]] = {
        flow: dict(values) for flow, values in data.get("targets", {}).items()}
    for key, value in (userdata or {}).items():
        if key.startswith("target."):
            parts = key.split(".", 2)
            entry = targets.setdefault(parts[1], {})
            entry["target" if len(parts) == 2 else parts[2]] = value
        elif key in ("broker", "capture", "seed", "artifacts", "real_time_limit"):
            harness[key] = value
    built = {}
    for flow, values in targets.items():
        kind = str(values.pop("target", EMBEDDED))
        if kind not in (EMBEDDED, EXTERNAL):
            raise ConfigError(f"target of {flow!r} must be 'embedded' or 'external', not {kind!r}")
        if kind == EXTERNAL and not values:
            raise ConfigError(f"external target {flow!r} names no endpoint (e.g. target.{flow}.mqtt=...)")
        built[flow] = Target(flow, kind, {k: str(v) for k, v in values.items()})
    seed = harness.get("seed")
    try:
        seed = int(seed) if seed not in (None, "") else None
    except ValueError as exc:
        raise ConfigError(f"seed must be an integer, not {seed!r}") from exc
    capture = harness.get("capture") or None
    return HarnessConfig(
        broker=str(harness.get("broker", "auto")),
        capture_dir=Path(capture) if capture else None,
        artifacts_dir=Path(harness.get("artifacts", "reports/artifacts")),
        seed=seed,
        ci=environ.get("CI", "").lower() == "true",
        targets=built,
        real_time_limit=float(harness.get("real_time_limit", 60.0)),
    )

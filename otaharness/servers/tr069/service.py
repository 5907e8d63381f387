"""The TR-069 flow's back end as a runtime service: ``await runtime.service("tr069")``, also what
``otaharness serve tr069`` starts.

Endpoints: ``acs`` (CWMP), ``files`` (file server), ``admin`` (JSON API, docs/tr069-acs.md).
State lives in ``runtime.artifacts / "tr069-acs"``, emptied at start; ``await service.restart()``
restarts the ACS over it (same ports), as a process restart would.

Harness settings (``otaharness.toml`` ``[targets.tr069]`` or ``-D target.tr069.<name>=...``):
``state_dir`` (kept across starts: a served ACS continues where it stopped), ``auth``
(none/basic/digest/any), ``users`` (``name:password,...``, CPE credentials), ``cr_username`` /
``cr_password`` (Connection Request credentials), ``files_url`` (public file server URL for
Downloads), ``acs_port`` / ``files_port`` / ``admin_port`` (0 or absent: a free port).
"""

from __future__ import annotations

import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .acs import AcsConfig
from .server import AcsServer

SETTINGS = ("state_dir", "auth", "users", "cr_username", "cr_password", "files_url",
            "acs_port", "files_port", "admin_port")


class SettingsError(ValueError):
    """A ``target.tr069.*`` setting the ACS cannot use."""


def config_from_settings(settings: Mapping[str, str]) -> AcsConfig:
    unknown = sorted(set(settings) - set(SETTINGS))
    if unknown:
        raise SettingsError(f"unknown tr069 settings {', '.join(unknown)}; known: "
                            f"{', '.join(SETTINGS)}")
    users = {}
    for item in filter(None, (part.strip() for part in settings.get("users", "").split(","))):
        name, colon, password = item.partition(":")
        if not colon:
            raise SettingsError(f"users: expected name:password, got {item!r}")
        users[name] = password
    auth = settings.get("auth", "none")
    if auth not in ("none", "basic", "digest", "any"):
        raise SettingsError(f"auth must be none, basic, digest or any, not {auth!r}")
    return AcsConfig(auth_mode=auth, users=users,
                     connection_request_username=settings.get("cr_username", ""),
                     connection_request_password=settings.get("cr_password", ""),
                     files_url=settings.get("files_url", ""))


def ports_from_settings(settings: Mapping[str, str]) -> dict[str, int]:
    try:
        return {name: int(settings.get(f"{name}_port", 0)) for name in ("acs", "files", "admin")}
    except ValueError as exc:
        raise SettingsError(f"a port setting is not a number: {exc}") from None


async def start(runtime: Any, config: AcsConfig | None = None) -> AcsServer:
    settings = dict(runtime.target("tr069").endpoints)
    if config is None:
        config = config_from_settings(settings)
    if settings.get("state_dir"):
        state_dir = Path(settings["state_dir"])  # the operator's: never emptied
    else:
        state_dir = runtime.artifacts / "tr069-acs"
        shutil.rmtree(state_dir, ignore_errors=True)  # a new scenario starts empty
    server = AcsServer(state_dir, runtime.clock, runtime.rng("tr069-acs"), config)
    await server.start(ports_from_settings(settings))
    return server

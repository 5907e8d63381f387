"""The TR-069 flow's back end as a runtime service: ``await runtime.service("tr069")``, also what
``otaharness serve tr069`` starts.

Endpoints: ``acs`` (CWMP), ``files`` (file server), ``admin`` (JSON API, docs/tr069-acs.md), all
HTTPS with the scenario PKI's server certificate unless ``tls`` is off, and ``ca`` (the CA file
clients trust). Tokens: ``admin`` (the admin API's bearer token). State lives in
``runtime.artifacts / "tr069-acs"``, emptied at start; ``await service.restart()`` restarts the
ACS over it (same ports), as a process restart would.

Harness settings (``otaharness.toml`` ``[targets.tr069]`` or ``-D target.tr069.<name>=...``),
listed with their defaults in docs/tr069-acs.md and checked by :data:`SETTINGS`.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from otaharness.protocols.http_digest import ServerAuth
from otaharness.runtime.targets import boolean, port, url

from .acs import AcsConfig, nc_reuse_problem
from .server import AcsServer


class SettingsError(ValueError):
    """A ``target.tr069.*`` setting the ACS cannot use."""


def _credentials(value: str) -> dict[str, str]:
    users = {}
    for item in filter(None, (part.strip() for part in str(value).split(","))):
        user, colon, password = item.partition(":")
        if not colon:
            raise SettingsError(f"expected name:password, got {item!r}")
        users[user] = password
    return users


def _device_patterns(value: str) -> tuple[str, ...]:
    patterns = tuple(filter(None, (part.strip() for part in str(value).split(","))))
    for pattern in patterns:
        problem = nc_reuse_problem(pattern)
        if problem is not None:
            raise SettingsError(problem)
    return patterns


def _seconds(value: str) -> float:
    number = float(value)
    if not number >= 1:  # also refuses NaN
        raise SettingsError(f"must be at least 1, not {value!r}")
    return number


def _count(value: str) -> int:
    number = int(value)
    if number < 1:
        raise SettingsError(f"must be at least 1, not {value!r}")
    return number


# name -> its check and parser (docs/tr069-acs.md lists them with their defaults); the harness
# checks -D and otaharness.toml values with these before anything starts.
SETTINGS: dict[str, Any] = {
    "state_dir": None, "tls": boolean, "admin_token": None,
    "auth": ServerAuth.MODES, "users": _credentials, "strict_nc": boolean,
    "nc_reuse_devices": _device_patterns, "nonce_lifetime": _seconds, "max_sessions": _count,
    "task_attempts": _count,
    "cr_username": None, "cr_password": None,
    "file_auth": ServerAuth.MODES, "file_users": _credentials,
    "download_username": None, "download_password": None, "files_url": url("http", "https"),
    "acs_port": port, "files_port": port, "admin_port": port,
}


def setting(settings: Mapping[str, Any], name: str, default: Any) -> Any:
    """The parsed value of setting ``name`` (``default`` when absent)."""
    if name not in settings:
        return default
    value = settings[name]
    text = str(value).lower() if isinstance(value, bool) else str(value)
    check = SETTINGS[name]
    if check is None:
        return text
    if isinstance(check, tuple):
        if text not in check:
            raise SettingsError(f"{name} must be one of {', '.join(check)}, not {text!r}")
        return text
    try:
        return check(text)
    except ValueError as error:
        raise SettingsError(f"{name}: {error}") from None


def config_from_settings(settings: Mapping[str, Any]) -> AcsConfig:
    unknown = sorted(set(settings) - set(SETTINGS) - {"target"})
    if unknown:
        raise SettingsError(f"unknown tr069 settings {', '.join(unknown)}; known: "
                            f"{', '.join(SETTINGS)}")
    defaults = AcsConfig()
    return AcsConfig(auth_mode=setting(settings, "auth", "none"),
                     users=setting(settings, "users", {}),
                     strict_nc=setting(settings, "strict_nc", defaults.strict_nc),
                     nc_reuse_devices=setting(settings, "nc_reuse_devices", ()),
                     nonce_lifetime=setting(settings, "nonce_lifetime", defaults.nonce_lifetime),
                     max_sessions=setting(settings, "max_sessions", defaults.max_sessions),
                     max_task_attempts=setting(settings, "task_attempts",
                                               defaults.max_task_attempts),
                     connection_request_username=setting(settings, "cr_username", ""),
                     connection_request_password=setting(settings, "cr_password", ""),
                     file_auth_mode=setting(settings, "file_auth", "none"),
                     file_users=setting(settings, "file_users", {}),
                     download_username=setting(settings, "download_username", ""),
                     download_password=setting(settings, "download_password", ""),
                     files_url=setting(settings, "files_url", ""))


def ports_from_settings(settings: Mapping[str, Any]) -> dict[str, int]:
    return {name: setting(settings, f"{name}_port", 0) for name in ("acs", "files", "admin")}


async def start(runtime: Any, config: AcsConfig | None = None) -> AcsServer:
    settings = dict(runtime.target("tr069").endpoints)
    if config is None:
        config = config_from_settings(settings)
    tls, ca_file = None, None
    if setting(settings, "tls", True):
        pki = runtime.pki()
        tls, ca_file = pki.server_context(["localhost"]), str(pki.ca_file)
    if settings.get("state_dir"):
        state_dir = Path(settings["state_dir"])  # the operator's: never emptied
    else:
        state_dir = runtime.data_dir("tr069-acs")
    server = AcsServer(state_dir, runtime.clock, runtime.rng("tr069-acs"), config, tls=tls,
                       ca_file=ca_file, admin_token=setting(settings, "admin_token", "") or None)
    await server.start(ports_from_settings(settings))
    return server

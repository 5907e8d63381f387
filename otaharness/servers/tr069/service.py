"""The TR-069 flow's back end as a runtime service: ``await runtime.service("tr069")``, also what
``otaharness serve tr069`` starts.

Endpoints: ``acs`` (CWMP), ``files`` (file server), ``admin`` (JSON API, docs/tr069-acs.md), all
HTTPS with the scenario PKI's server certificate unless ``tls`` is off, and ``ca`` (the CA file
clients trust). Tokens: ``admin`` (the admin API's bearer token). State lives in
``runtime.artifacts / "tr069-acs"``, emptied at start; ``await service.restart()`` restarts the
ACS over it (same ports), as a process restart would.

Harness settings (``otaharness.toml`` ``[targets.tr069]`` or ``-D target.tr069.<name>=...``),
listed with their defaults in docs/tr069-acs.md: see :data:`SETTINGS`.
"""

from __future__ import annotations

import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from otaharness.protocols.http_digest import ServerAuth

from .acs import AcsConfig, nc_reuse_problem
from .server import AcsServer

# name -> what it sets (docs/tr069-acs.md lists the same)
SETTINGS = {
    "state_dir": "state folder kept across starts (default: the scenario's, emptied)",
    "tls": "HTTPS on the three ports (default true)",
    "auth": "what the ACS asks of CPEs: none, basic, digest or any (default none)",
    "users": "CPE credentials, name:password,...",
    "strict_nc": "refuse a Digest nonce count that does not rise (default true)",
    "nc_reuse_devices": "devices that may reuse a nonce count: oui:<OUI> / serial:<glob>, ...",
    "nonce_lifetime": "seconds a Digest nonce is valid, then stale=true (default 300)",
    "max_sessions": "open CWMP sessions at once, more Informs get 503 (default 100000)",
    "cr_username": "Connection Request user name (ACS -> CPE Digest)",
    "cr_password": "Connection Request password",
    "file_auth": "what the file server asks: none, basic, digest or any (default none)",
    "file_users": "file server credentials, name:password,...",
    "download_username": "Username the ACS puts in each Download",
    "download_password": "Password the ACS puts in each Download",
    "files_url": "public file server URL for Downloads (default: the file server's own)",
    "admin_token": "the admin API's bearer token (default: a new one from the CSPRNG)",
    "acs_port": "CWMP port (0 or absent: a free port)",
    "files_port": "file server port",
    "admin_port": "admin API port",
}
_TRUE, _FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off")


class SettingsError(ValueError):
    """A ``target.tr069.*`` setting the ACS cannot use."""


def _credentials(settings: Mapping[str, Any], name: str) -> dict[str, str]:
    users = {}
    for item in filter(None, (part.strip() for part in str(settings.get(name, "")).split(","))):
        user, colon, password = item.partition(":")
        if not colon:
            raise SettingsError(f"{name}: expected name:password, got {item!r}")
        users[user] = password
    return users


def _flag(settings: Mapping[str, Any], name: str, default: bool) -> bool:
    value = str(settings.get(name, default)).strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise SettingsError(f"{name} must be true or false, not {value!r}")


def _number(settings: Mapping[str, Any], name: str, default: float, *, minimum: float) -> float:
    try:
        value = float(settings.get(name, default))
    except ValueError:
        raise SettingsError(f"{name} must be a number, not {settings[name]!r}") from None
    if not value >= minimum:  # also refuses NaN
        raise SettingsError(f"{name} must be at least {minimum:g}, not {value:g}")
    return value


def _mode(settings: Mapping[str, Any], name: str) -> str:
    mode = str(settings.get(name, "none"))
    if mode not in ServerAuth.MODES:
        raise SettingsError(f"{name} must be none, basic, digest or any, not {mode!r}")
    return mode


def config_from_settings(settings: Mapping[str, Any]) -> AcsConfig:
    unknown = sorted(set(settings) - set(SETTINGS))
    if unknown:
        raise SettingsError(f"unknown tr069 settings {', '.join(unknown)}; known: "
                            f"{', '.join(SETTINGS)}")
    patterns = tuple(filter(None, (part.strip() for part in
                                   str(settings.get("nc_reuse_devices", "")).split(","))))
    for pattern in patterns:
        problem = nc_reuse_problem(pattern)
        if problem is not None:
            raise SettingsError(f"nc_reuse_devices: {problem}")
    defaults = AcsConfig()
    return AcsConfig(auth_mode=_mode(settings, "auth"), users=_credentials(settings, "users"),
                     strict_nc=_flag(settings, "strict_nc", True), nc_reuse_devices=patterns,
                     nonce_lifetime=_number(settings, "nonce_lifetime", defaults.nonce_lifetime,
                                            minimum=1),
                     max_sessions=int(_number(settings, "max_sessions", defaults.max_sessions,
                                              minimum=1)),
                     connection_request_username=str(settings.get("cr_username", "")),
                     connection_request_password=str(settings.get("cr_password", "")),
                     file_auth_mode=_mode(settings, "file_auth"),
                     file_users=_credentials(settings, "file_users"),
                     download_username=str(settings.get("download_username", "")),
                     download_password=str(settings.get("download_password", "")),
                     files_url=str(settings.get("files_url", "")))


def ports_from_settings(settings: Mapping[str, Any]) -> dict[str, int]:
    try:
        return {name: int(settings.get(f"{name}_port", 0)) for name in ("acs", "files", "admin")}
    except ValueError as exc:
        raise SettingsError(f"a port setting is not a number: {exc}") from None


async def start(runtime: Any, config: AcsConfig | None = None) -> AcsServer:
    settings = dict(runtime.target("tr069").endpoints)
    if config is None:
        config = config_from_settings(settings)
    tls, ca_file = None, None
    if _flag(settings, "tls", True):
        pki = runtime.pki()
        tls, ca_file = pki.server_context(["localhost"]), str(pki.ca_file)
    if settings.get("state_dir"):
        state_dir = Path(settings["state_dir"])  # the operator's: never emptied
    else:
        state_dir = runtime.artifacts / "tr069-acs"
        shutil.rmtree(state_dir, ignore_errors=True)  # a new scenario starts empty
    server = AcsServer(state_dir, runtime.clock, runtime.rng("tr069-acs"), config, tls=tls,
                       ca_file=ca_file, admin_token=str(settings.get("admin_token", "")) or None)
    await server.start(ports_from_settings(settings))
    return server

"""The TR-069 flow's back end as a runtime service: ``await runtime.service("tr069")``.

Endpoints: ``acs`` (CWMP), ``files`` (file server), ``admin`` (JSON API, docs/tr069-acs.md).
State lives in ``runtime.artifacts / "tr069-acs"``.
"""

from __future__ import annotations

from typing import Any

from .acs import AcsConfig
from .server import AcsServer


async def start(runtime: Any, config: AcsConfig | None = None) -> AcsServer:
    server = AcsServer(runtime.artifacts / "tr069-acs", runtime.clock, runtime.rng("tr069-acs"),
                       config)
    await server.start()
    return server

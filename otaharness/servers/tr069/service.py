"""The TR-069 flow's back end as a runtime service: ``await runtime.service("tr069")``.

Endpoints: ``acs`` (CWMP), ``files`` (file server), ``admin`` (JSON API, docs/tr069-acs.md).
State lives in ``runtime.artifacts / "tr069-acs"``; ``await service.restart()`` restarts the
ACS over it (same ports), as a process restart would.
"""

from __future__ import annotations

import shutil
from typing import Any

from .acs import AcsConfig
from .server import AcsServer


async def start(runtime: Any, config: AcsConfig | None = None) -> AcsServer:
    state_dir = runtime.artifacts / "tr069-acs"
    shutil.rmtree(state_dir, ignore_errors=True)  # a new scenario starts empty; restart() keeps it
    server = AcsServer(state_dir, runtime.clock, runtime.rng("tr069-acs"), config)
    await server.start()
    return server

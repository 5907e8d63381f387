"""The Basics Station flow's back ends as a runtime service (``FLOW_SERVICES["cups"]``).

Endpoints: ``{"cups": "http://127.0.0.1:P", "lns": "ws://127.0.0.1:Q"}``; the admin API
(:mod:`otaharness.servers.basics_station.admin`) is served on the CUPS URL. State is kept under
the scenario's artifacts (``basics-station/``), emptied when the service starts.
"""

from __future__ import annotations

import shutil
from typing import Any

from otaharness.servers.basics_station.server import BasicsStationServer


async def start(runtime: Any) -> BasicsStationServer:
    """``runtime``: the scenario's Runtime (its ``artifacts`` dir and ``clock`` are used)."""
    data_dir = runtime.artifacts / "basics-station"
    shutil.rmtree(data_dir, ignore_errors=True)  # a re-run of the scenario starts empty
    server = BasicsStationServer(data_dir, runtime.clock)
    await server.start()
    return server

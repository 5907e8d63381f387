"""The Basics Station flow's back ends as a runtime service (``FLOW_SERVICES["cups"]``).

Endpoints: ``{"cups": "https://127.0.0.1:P", "lns": "wss://127.0.0.1:Q", "ca": "<PEM file>"}``:
CUPS over HTTPS and the LNS over WSS with the scenario's PKI, stations authenticating with a
client certificate or a token (as the AWS IoT flow, TLS is on by default).
``-D target.cups.plain_http=true`` serves plain ``http``/``ws`` without station authentication
(what the flow was before TLS; no ``ca``; the name the other HTTP flows use). The admin API
(:mod:`otaharness.servers.basics_station.admin`) is served on the CUPS URL and takes the bearer
token of ``tokens()["cups"]``. State is kept under the scenario's artifacts
(``basics-station/``), emptied when the service starts.
"""

from __future__ import annotations

from typing import Any

from otaharness.runtime.targets import boolean
from otaharness.servers.basics_station.server import BasicsStationServer

# [targets.cups] / -D target.cups.<name>, checked when the config is loaded.
SETTINGS = {"plain_http": boolean}


async def start(runtime: Any) -> BasicsStationServer:
    """``runtime``: the scenario's Runtime (its ``artifacts`` dir, ``clock`` and ``pki()``)."""
    data_dir = runtime.data_dir("basics-station")
    plain = boolean(str(runtime.target("cups").endpoints.get("plain_http", "false")))
    server = BasicsStationServer(data_dir, runtime.clock, pki=None if plain else runtime.pki())
    await server.start()
    return server

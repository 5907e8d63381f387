"""Connection Request listener (TR-069 §3.2.2): the ACS's HTTP GET, authenticated with Digest,
answered 200 with an empty body before the CPE opens a ``6 CONNECTION REQUEST`` session.

One listener serves any number of CPEs, dispatching by path (``/<token>``), so thousands of
emulated CPEs cost one socket; a CPE that is powered off drops the connection unanswered.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from aiohttp import web

from otaharness.protocols.http_digest import ServerAuth


@dataclass
class _Target:
    auth: ServerAuth
    on_request: Callable[[], bool]  # False: the device is off (connection dropped)


class ConnectionRequestServer:
    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.host = host
        self.port = port
        self._targets: dict[str, _Target] = {}
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        app = web.Application()
        app.router.add_route("*", "/{token}", self._handle)
        self._runner = web.AppRunner(app, handle_signals=False, access_log=None,
                                     shutdown_timeout=0.5)
        await self._runner.setup()
        await web.TCPSite(self._runner, self.host, self.port, reuse_address=True).start()
        self.port = self._runner.addresses[0][1]

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def register(self, token: str, username: str, password: str,
                 on_request: Callable[[], bool], now: Callable[[], float]) -> str:
        """Serve ``/<token>`` for one CPE; returns its ConnectionRequestURL."""
        mode = "digest" if username else "none"  # empty username: no authentication (TR-069)
        self._targets[token] = _Target(ServerAuth(mode, "otaharness CPE", {username: password},
                                                  now), on_request)
        return f"http://{self.host}:{self.port}/{token}"

    def unregister(self, token: str) -> None:
        self._targets.pop(token, None)

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        target = self._targets.get(request.match_info["token"])
        if target is None:
            return web.Response(status=404)
        if request.method != "GET":
            return web.Response(status=405, headers={"Allow": "GET"})
        outcome = target.auth.check(request.headers.get("Authorization"), "GET", request.raw_path)
        if not outcome.accepted:
            return web.Response(status=401, headers={
                "WWW-Authenticate": target.auth.challenge(stale=outcome.stale)})
        if not target.on_request():
            if request.transport is not None:
                request.transport.abort()  # powered off: no answer at all
            return web.Response(status=503)
        return web.Response(status=200)

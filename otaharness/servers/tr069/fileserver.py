"""The file server CPEs download from (GenieACS's genieacs-fs, fact sheet §6.1): GET/HEAD
``/<url-encoded name>`` with ETag, conditional requests and Range (206/416) — aiohttp's
FileResponse implements those from the stored file — and optional Basic/Digest credentials.
A name no file may have (names.py: dot segments, separators, control characters, too long) is
a 400 before the store is asked; the store maps every other name into its own folder."""

from __future__ import annotations

from aiohttp import web

from otaharness.servers.http_errors import undecodable_body

from otaharness.protocols.http_digest import ServerAuth

from .names import file_name_problem
from .store import Store


class FileServer:
    def __init__(self, store: Store, auth: ServerAuth) -> None:
        self.store = store
        self.auth = auth
        self.downloads: list[tuple[str, str, str | None]] = []  # (name, peer, Range) for tests

    def application(self) -> web.Application:
        app = web.Application(middlewares=[undecodable_body])
        app.router.add_route("*", r"/{name:[\s\S]+}", self.serve)  # any name, even "a\nb": checked
        return app

    async def serve(self, request: web.Request) -> web.StreamResponse:
        if request.method not in ("GET", "HEAD"):
            return web.Response(status=405, headers={"Allow": "GET, HEAD"})
        outcome = self.auth.check(request.headers.get("Authorization"), request.method,
                                  request.raw_path)
        if not outcome.accepted:
            return web.Response(status=401, headers={
                "WWW-Authenticate": self.auth.challenge(stale=outcome.stale)})
        name = request.match_info["name"]
        problem = file_name_problem(name)
        if problem is not None:
            return web.Response(status=400, text=f"{problem}")
        record = self.store.file(name)
        if record is None:
            return web.Response(status=404, text=f"no file {name!r}")
        peer = request.transport.get_extra_info("peername") if request.transport else None
        self.downloads.append((name, peer[0] if peer else "", request.headers.get("Range")))
        return web.FileResponse(self.store.file_path(name), headers={
            "Content-Type": "application/octet-stream", "ETag": f'"{record["md5"]}"'})

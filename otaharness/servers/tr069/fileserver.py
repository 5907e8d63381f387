"""The file server CPEs download from (GenieACS's genieacs-fs, fact sheet §6.1): GET/HEAD
``/<url-encoded name>`` and optional Basic/Digest credentials. A name no file may have (names.py:
dot segments, separators, control characters, too long) is a 400 before the store is asked; the
store maps every other name into its own folder.

Validators describe the stored file itself: the ETag is the MD5 the store recorded with the
content (strong: it changes whenever a byte does), and a whole-file answer carries the same MD5 as
``Content-MD5`` (RFC 1864; a 206 carries none, since it would have to cover only the part sent).
Conditional requests (If-None-Match -> 304, If-Match -> 412) and single byte ranges (206, 416;
If-Range) are judged against that ETag. The record and the open file are taken together, with no
await between them, so a file replaced during a download is still answered consistently.
"""

from __future__ import annotations

import asyncio
import base64
import os
from collections import deque

from aiohttp import web
from aiohttp.helpers import ETAG_ANY

from otaharness.protocols.http_digest import ServerAuth
from otaharness.servers.http_errors import undecodable_body

from .acs import AcsConfig
from .names import file_name_problem
from .store import Store

CHUNK = 256 * 1024
KEPT_DOWNLOADS = 10_000  # the most recent downloads remembered for tests and logs


def file_auth(config: AcsConfig) -> ServerAuth:
    """What the file server asks of CPEs, per the ACS's settings."""
    return ServerAuth(config.file_auth_mode, "otaharness files", config.file_users, _loop_time,
                      config.nonce_lifetime)


def _loop_time() -> float:
    return asyncio.get_running_loop().time()


class FileServer:
    def __init__(self, store: Store, auth: ServerAuth) -> None:
        self.store = store
        self.auth = auth
        # (name, peer, Range) of recent downloads, for tests; bounded
        self.downloads: deque[tuple[str, str, str | None]] = deque(maxlen=KEPT_DOWNLOADS)
        self.downloads_served = 0  # all of them, beyond the ones kept

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
        try:
            stream = open(self.store.file_path(name), "rb") if record is not None else None
        except FileNotFoundError:
            stream = None
        if record is None or stream is None:
            return web.Response(status=404, text=f"no file {name!r}")
        with stream:
            peer = request.transport.get_extra_info("peername") if request.transport else None
            self.downloads.append((name, peer[0] if peer else "", request.headers.get("Range")))
            self.downloads_served += 1
            return await self._answer(request, stream, record["md5"])

    async def _answer(self, request: web.Request, stream, md5: str) -> web.StreamResponse:
        size = os.fstat(stream.fileno()).st_size
        etag = f'"{md5}"'
        headers = {"ETag": etag, "Accept-Ranges": "bytes"}
        if_match = request.if_match
        if if_match is not None and not _matches(md5, if_match, weak=False):
            return web.Response(status=412, headers=headers)
        if_none_match = request.if_none_match
        if if_none_match is not None and _matches(md5, if_none_match, weak=True):
            return web.Response(status=304, headers=headers)
        start, stop = 0, size
        if "Range" in request.headers and _if_range_holds(request, etag):
            try:
                wanted = request.http_range
            except ValueError:  # not one well-formed byte range: ignored, the whole file
                wanted = slice(None, None)
            if wanted.start is not None:
                start, stop = _bounds(wanted, size)
                if start >= stop:
                    return web.Response(status=416, headers={
                        **headers, "Content-Range": f"bytes */{size}"})
        response = web.StreamResponse(status=206 if (start, stop) != (0, size) else 200,
                                      headers=headers)
        response.content_type = "application/octet-stream"
        response.content_length = stop - start
        if response.status == 206:
            response.headers["Content-Range"] = f"bytes {start}-{stop - 1}/{size}"
        else:
            response.headers["Content-MD5"] = base64.b64encode(bytes.fromhex(md5)).decode()
        await response.prepare(request)
        if request.method == "GET":
            stream.seek(start)
            remaining = stop - start
            while remaining > 0:
                chunk = stream.read(min(CHUNK, remaining))
                if not chunk:
                    break
                await response.write(chunk)
                remaining -= len(chunk)
        await response.write_eof()
        return response


def _matches(md5: str, etags, *, weak: bool) -> bool:
    return any(tag.value in (md5, ETAG_ANY) and (weak or not tag.is_weak) for tag in etags)


def _if_range_holds(request: web.Request, etag: str) -> bool:
    """RFC 9110 §13.1.5: a Range counts only if If-Range (when sent) names this very file."""
    if_range = request.headers.get("If-Range")
    return if_range is None or if_range == etag


def _bounds(wanted: slice, size: int) -> tuple[int, int]:
    """aiohttp's http_range slice (``bytes=a-b`` -> a..b+1, ``-n`` -> -n.., ``a-`` -> a..)."""
    if wanted.start < 0:  # the last n bytes
        return max(0, size + wanted.start), size
    stop = size if wanted.stop is None else min(wanted.stop, size)
    return wanted.start, stop

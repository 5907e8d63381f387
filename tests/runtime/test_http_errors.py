"""A body aiohttp cannot decode (corrupt gzip Content-Encoding) is a 400 on every server that
installs the shared middleware, also behind an API's own catch-all, and the server keeps serving."""

from __future__ import annotations

import asyncio

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from otaharness.servers.http_errors import undecodable_body

CORRUPT_GZIP = b"\x1f\x8b\x08junkjunk"


@web.middleware
async def catch_all_as_500(request: web.Request, handler) -> web.StreamResponse:
    """What several of our APIs do with an error they did not expect."""
    try:
        return await handler(request)
    except Exception:
        return web.json_response({"error": "internal error"}, status=500)


async def echo(request: web.Request) -> web.Response:
    return web.Response(body=await request.read())


@pytest.mark.parametrize("installed", [True, False])
async def test_a_corrupt_gzip_body_is_a_400_and_the_server_goes_on(installed: bool) -> None:
    middlewares = [catch_all_as_500, undecodable_body] if installed else [catch_all_as_500]
    app = web.Application(middlewares=middlewares)
    app.router.add_post("/", echo)
    async with TestClient(TestServer(app)) as client:
        # Headers first, the body a moment later (as it comes over a network): the handler's
        # read() is what meets the corrupt stream.
        reader, writer = await asyncio.open_connection(client.host, client.port)
        writer.write(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Encoding: gzip\r\n"
                     b"Content-Length: %d\r\nConnection: close\r\n\r\n" % len(CORRUPT_GZIP))
        await writer.drain()
        await asyncio.sleep(0.05)
        writer.write(CORRUPT_GZIP)
        answer = await asyncio.wait_for(reader.read(), 10)
        writer.close()
        status = int(answer.split(b" ", 2)[1])
        assert status == (400 if installed else 500)  # without it: the catch-all's 500
        if installed:
            assert b"cannot be decoded" in answer
        good = await client.post("/", data=b"fine")
        assert (good.status, await good.read()) == (200, b"fine")


def test_every_server_app_installs_it() -> None:
    """Each HTTP server module builds its app with the middleware (a new server must too)."""
    import ast
    import pathlib

    servers = pathlib.Path(__file__).parents[2] / "otaharness" / "servers"
    calls = [(path, node) for path in servers.rglob("*.py")
             for node in ast.walk(ast.parse(path.read_text()))
             if isinstance(node, ast.Call) and ast.unparse(node.func) == "web.Application"]
    assert calls, "no aiohttp apps found"
    missing = [f"{path.relative_to(servers)}:{call.lineno}" for path, call in calls
               if "undecodable_body" not in ast.unparse(call)]
    assert not missing, f"apps without the undecodable_body middleware: {missing}"

"""The one bearer-token check of every back-end API: refused before the handler runs or any byte
of the body is read, RFC 6750 challenges, constant-time comparison of the accepted tokens."""

from __future__ import annotations

import asyncio

from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from otaharness.servers.http_service import API_DOCUMENT_PATH, bearer_token_required, new_token, requests_routed_to

TOKEN = new_token()


def api(calls: list[bytes], **kwargs) -> web.Application:
    async def record(request: web.Request) -> web.Response:
        calls.append(await request.read())
        return web.json_response({"ok": True}, status=201)

    app = web.Application(middlewares=[bearer_token_required(TOKEN, **kwargs)])
    app.router.add_post("/things", record)
    app.router.add_post("/device/hello", record)
    return app


def test_tokens_come_from_the_csprng_and_differ() -> None:
    tokens = {new_token() for _ in range(100)}
    assert len(tokens) == 100
    assert all(len(token) >= 43 for token in tokens)  # 32 bytes, base64url


async def test_missing_wrong_and_other_scheme_are_401_and_nothing_is_recorded() -> None:
    calls: list[bytes] = []
    async with TestClient(TestServer(api(calls))) as client:
        missing = await client.post("/things", data=b"{}")
        assert missing.status == 401
        assert missing.headers["WWW-Authenticate"] == 'Bearer realm="otaharness"'  # no error: §3.1
        wrong = await client.post("/things", data=b"{}", headers={"Authorization": f"Bearer {new_token()}"})
        assert wrong.status == 401
        assert 'error="invalid_token"' in wrong.headers["WWW-Authenticate"]
        basic = await client.post("/things", data=b"{}", headers={"Authorization": "Basic dXNlcjpwdw=="})
        assert basic.status == 401
        assert "error" in await basic.json()
        assert calls == []
        right = await client.post("/things", data=b"{}", headers={"Authorization": f"Bearer {TOKEN}"})
        assert right.status == 201
        assert calls == [b"{}"]


async def test_a_token_is_checked_before_the_body_is_sent() -> None:
    """Headers with a huge Content-Length and no token: the answer comes before any body byte."""
    calls: list[bytes] = []
    async with TestClient(TestServer(api(calls))) as client:
        reader, writer = await asyncio.open_connection(client.host, client.port)
        writer.write(b"POST /things HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     b"Content-Length: 1000000000\r\n\r\n")
        await writer.drain()
        status_line = await asyncio.wait_for(reader.readline(), 10)
        writer.close()
        assert status_line.split(b" ")[1] == b"401"
        assert calls == []


async def test_undecodable_header_bytes_are_a_401_not_a_500() -> None:
    calls: list[bytes] = []
    async with TestClient(TestServer(api(calls))) as client:
        reader, writer = await asyncio.open_connection(client.host, client.port)
        writer.write(b"POST /things HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer \xff\xfe\r\n"
                     b"Content-Length: 0\r\nConnection: close\r\n\r\n")
        await writer.drain()
        answer = await asyncio.wait_for(reader.read(), 10)
        writer.close()
        assert answer.split(b" ")[1] == b"401"


async def test_exempt_paths_pass_and_a_callable_accepts_each_current_token() -> None:
    calls: list[bytes] = []
    accepted = {TOKEN}
    app = api(calls, exempt=lambda request: request.path.startswith("/device/"))
    async with TestClient(TestServer(app)) as client:
        assert (await client.post("/device/hello", data=b"hi")).status == 201
    tenant_token = new_token()
    accepted.add(tenant_token)
    calls.clear()
    app = web.Application(middlewares=[bearer_token_required(lambda: accepted)])

    async def ok(request: web.Request) -> web.Response:
        calls.append(b"")
        return web.Response(text="ok")

    app.router.add_get("/", ok)
    async with TestClient(TestServer(app)) as client:
        for token in (TOKEN, tenant_token):
            assert (await client.get("/", headers={"Authorization": f"Bearer {token}"})).status == 200
        accepted.discard(tenant_token)  # a revoked token stops working at once
        assert (await client.get("/", headers={"Authorization": f"Bearer {tenant_token}"})).status == 401
    assert len(calls) == 2


async def test_exempt_routes_are_judged_by_the_route_dispatched_to() -> None:
    """The API document is public; a spelling of another path does not borrow its exemption,
    and a wrong method on an exempt path gets the router's 405, not a 401."""
    async def ok(request: web.Request) -> web.Response:
        return web.Response(text=request.path)

    app = web.Application(middlewares=[bearer_token_required(
        TOKEN, exempt=requests_routed_to(API_DOCUMENT_PATH, "/device/hello"))])
    app.router.add_get(API_DOCUMENT_PATH, ok)
    app.router.add_get("/admin/{name}", ok)
    app.router.add_post("/device/hello", ok)
    async with TestClient(TestServer(app)) as client:
        assert (await client.get(API_DOCUMENT_PATH)).status == 200
        for sneaky in ("/admin/openapi.json", "/admin/%2Fopenapi.json", "/openapi.json/../admin/x"):
            assert (await client.get(sneaky)).status == 401, sneaky
        assert (await client.get("/device/hello")).status == 405
        assert (await client.get("/nothing/here")).status == 401  # unknown paths are not revealed


async def test_a_malformed_authorization_line_never_reaches_the_log(caplog) -> None:
    """Found from outside: a token header ending in a stray CR (a basicstation token file's line)
    made aiohttp log the raw line, token and all. Every served app's logs are redacted."""
    import logging

    from otaharness.servers.http_service import serve_app

    async def ok(request: web.Request) -> web.Response:
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_get("/", ok)
    site = await serve_app(app)
    token = new_token()
    try:
        with caplog.at_level(logging.DEBUG):
            reader, writer = await asyncio.open_connection("127.0.0.1", site.port)
            writer.write(b"GET / HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + token.encode()
                         + b"\r\r\nX: y\r\nConnection: close\r\n\r\n")
            await writer.drain()
            answer = await asyncio.wait_for(reader.read(), 10)
            writer.close()
        assert answer.split(b" ")[1] == b"400"
        logged = "\n".join(record.getMessage() + (record.exc_text or "") for record in caplog.records)
        assert caplog.records, "aiohttp logged nothing: the check would prove nothing"
        assert token not in logged and token[:16] not in logged
        assert "<redacted>" in logged
    finally:
        await site.stop()


def test_a_token_never_looks_like_a_command_line_option() -> None:
    """One token in 64 began with "-", and `--token -…` made argparse end a CLI tool (and a
    scenario step running one in process) with exit 2."""
    import argparse

    from otaharness.api_token_option import add_token_option

    parser = argparse.ArgumentParser()
    add_token_option(parser)
    for _ in range(2000):
        token = new_token()
        assert not token.startswith("-")
        assert parser.parse_args(["--token", token]).token == token

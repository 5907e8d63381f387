"""A malformed request (what any client can send) is answered 400 and logged as one line with the
parser's reason, never as an ERROR with a traceback; so is a body that does not decode, left
unread by a handler that answered without it. An error of a handler keeps its traceback. The
server goes on serving the next client."""

from __future__ import annotations

import asyncio
import logging

import pytest
from aiohttp import web

from otaharness.servers.http_service import serve_app

MALFORMED = {
    "request line too long": b"GET /?" + b"a" * 9000 + b" HTTP/1.1\r\nHost: x\r\n\r\n",
    "header too long": b"GET / HTTP/1.1\r\nHost: x\r\nX-A: " + b"b" * 9000 + b"\r\n\r\n",
    "too many headers": b"GET / HTTP/1.1\r\n" + b"".join(b"X-%d: v\r\n" % i for i in range(200)) + b"\r\n",
    "NUL in the path": b"GET /a\x00b HTTP/1.1\r\nHost: x\r\n\r\n",
    "negative Content-Length": b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n",
    "two Content-Lengths": b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n{}",
    "bad chunk size": b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n{}\r\n0\r\n\r\n",
    "Authorization not UTF-8": b"GET / HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer \xff\r\n\x00\r\n\r\n",
    # answered by a handler that does not read it (as a 401 or 404 does); aiohttp drains it
    "corrupt gzip body left unread": b"POST / HTTP/1.1\r\nHost: x\r\nContent-Encoding: gzip\r\n"
                                     b"Content-Length: 10\r\n\r\n\x1f\x8bjunkjunk",
}
ANSWERED_BY_THE_HANDLER = {"corrupt gzip body left unread"}


async def hello(request: web.Request) -> web.Response:
    return web.Response(text="hello")


async def broken(request: web.Request) -> web.Response:
    raise RuntimeError("a fault of the server")


def traceback_of(record: logging.LogRecord) -> str | None:
    """A record's traceback (the log redaction filter turns ``exc_info`` into ``exc_text``)."""
    if record.exc_info:
        return logging.Formatter().formatException(record.exc_info)
    return record.exc_text


def status(answer: bytes) -> int:
    return int(answer.split(b" ", 2)[1])


async def exchange(port: int, raw: bytes) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(raw)
        await writer.drain()
        return await asyncio.wait_for(reader.read(), 10)
    finally:
        writer.close()


@pytest.mark.parametrize("case", MALFORMED)
async def test_a_malformed_request_is_a_400_and_one_log_line_without_traceback(
        case: str, caplog: pytest.LogCaptureFixture) -> None:
    app = web.Application()
    app.router.add_get("/", hello)
    app.router.add_post("/", hello)
    site = await serve_app(app)
    try:
        with caplog.at_level(logging.DEBUG, logger="aiohttp"):
            answer = await exchange(site.port, MALFORMED[case])
        assert status(answer) == (200 if case in ANSWERED_BY_THE_HANDLER else 400), answer[:200]
        assert [record for record in caplog.records if traceback_of(record) or record.levelno >= logging.ERROR] == []
        refusals = [record.getMessage() for record in caplog.records
                    if record.getMessage().startswith("refused a malformed request from")]
        assert len(refusals) == 1 and len(refusals[0]) < 400, refusals
        good = await exchange(site.port, b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        assert status(good) == 200 and good.endswith(b"hello")
    finally:
        await site.stop()


async def test_an_error_of_a_handler_keeps_its_traceback(caplog: pytest.LogCaptureFixture) -> None:
    app = web.Application()
    app.router.add_get("/", broken)
    site = await serve_app(app)
    try:
        with caplog.at_level(logging.INFO, logger="aiohttp"):
            answer = await exchange(site.port, b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        assert status(answer) == 500
        errors = [record for record in caplog.records if record.levelno >= logging.ERROR]
        assert len(errors) == 1
        assert "RuntimeError: a fault of the server" in (traceback_of(errors[0]) or "")
    finally:
        await site.stop()

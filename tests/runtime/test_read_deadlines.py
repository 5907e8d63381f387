"""Read deadlines on every server put on a socket by serve_app: on real time a client sending its
headers byte by byte, a stalled body or a stalled websocket frame is cut; on a scenario's virtual
clock a jump of hours while a real-time peer is half-way through its request cuts nothing."""

from __future__ import annotations

import asyncio
import pathlib
import re
import socket
import ssl
import threading

import aiohttp
from aiohttp import web
from virtual_loop import real_time_tls_client_across_a_jump, run_on_virtual_clock

from otaharness.runtime.clock import VirtualClock
from otaharness.runtime.pki import Pki
from otaharness.servers.http_service import serve_app
from otaharness.servers.read_deadlines import ReadLimits, WebSocketFrameBoundaries

# Small limits so the tests are short; what is asserted is what happened, never how long it took.
QUICK = ReadLimits(headers=0.3, headers_ceiling=0.6, body=0.3, min_rate=500.0)
REQUEST = b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nConnection: close\r\n\r\n"


async def echo(request: web.Request) -> web.Response:
    return web.Response(body=await request.read())


async def talk(websocket_request: web.Request) -> web.WebSocketResponse:
    websocket = web.WebSocketResponse()
    await websocket.prepare(websocket_request)
    async for message in websocket:
        await websocket.send_str(message.data)
    return websocket


def echo_app() -> web.Application:
    app = web.Application()
    app.router.add_post("/echo", echo)
    app.router.add_get("/ws", talk)
    return app


async def answer_while_trickling(port: int, data: bytes, pause: float) -> tuple[bytes, int]:
    """Send ``data`` one byte per ``pause`` until the server closes; its answer and bytes sent."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    answer = asyncio.ensure_future(reader.read())
    sent = 0
    try:
        for byte in data:
            if answer.done():
                break
            writer.write(bytes([byte]))
            sent += 1
            await asyncio.sleep(pause)
        return await asyncio.wait_for(answer, 30), sent
    except ConnectionError:
        return await asyncio.wait_for(answer, 30), sent
    finally:
        writer.close()


async def test_headers_sent_byte_by_byte_are_cut_with_408() -> None:
    site = await serve_app(echo_app(), read_limits=QUICK)
    try:
        endless_headers = b"POST /echo HTTP/1.1\r\n" + b"X-Slow: " + b"a" * 10_000
        answer, sent = await answer_while_trickling(site.port, endless_headers, 0.02)
        assert answer.startswith(b"HTTP/1.1 408 Request Timeout")
        assert sent < len(endless_headers)
    finally:
        await site.stop()


async def test_a_stalled_body_is_answered_408_and_closed() -> None:
    site = await serve_app(echo_app(), read_limits=QUICK)
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", site.port)
        writer.write(REQUEST.replace(b"Content-Length: 5", b"Content-Length: 100") + b"ab")
        answer = await asyncio.wait_for(reader.read(), 30)  # the rest never comes
        writer.close()
        assert answer.startswith(b"HTTP/1.1 408")
        assert b"the body did not arrive" in answer
    finally:
        await site.stop()


async def test_a_stalled_websocket_frame_closes_the_connection_but_idle_websockets_stay() -> None:
    site = await serve_app(echo_app(), read_limits=QUICK)
    try:
        async with aiohttp.ClientSession() as session, session.ws_connect(f"{site.url}/ws") as ws:
            await ws.send_str("one")
            assert (await ws.receive()).data == "one"
            await asyncio.sleep(QUICK.body * 3)  # idle between frames is not slowness
            await ws.send_str("two")
            assert (await ws.receive()).data == "two"
        reader, writer = await asyncio.open_connection("127.0.0.1", site.port)
        writer.write(b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                     b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
                     b"\r\n\x81\x85\x00\x00\x00\x00he")  # a 5-byte text frame, 2 bytes of it
        answer = await asyncio.wait_for(reader.read(), 30)
        writer.close()
        assert answer.startswith(b"HTTP/1.1 101")  # upgraded, then closed: read() reached EOF
    finally:
        await site.stop()


async def test_a_client_sending_at_a_fair_pace_is_served() -> None:
    """A body trickling in at more than min_rate keeps buying time past the first limit."""
    site = await serve_app(echo_app(), read_limits=ReadLimits(headers=5, body=0.3, min_rate=20.0))
    try:
        body = b"x" * 40
        answer, _ = await answer_while_trickling(
            site.port, REQUEST.replace(b"Content-Length: 5", b"Content-Length: 40") + body, 0.01)
        assert answer.startswith(b"HTTP/1.1 200") and answer.endswith(body)
    finally:
        await site.stop()


def test_a_virtual_jump_of_hours_mid_request_cuts_nothing() -> None:
    """Scenario: the server on a virtual clock, a real-time peer (a thread) half-way through its
    headers, then half-way through its body, while the scenario lets 3 hours pass in jumps each
    time. Neither deadline may fire: the peer was slow only in virtual time (the default limits,
    20 s and more, are far beyond the real time this test takes)."""
    parts = [REQUEST[:20], REQUEST[20:] + b"he", b"llo"]
    sent = [threading.Event() for _ in parts]
    may_go_on = [threading.Event() for _ in parts]
    answer: list[bytes] = []

    def real_time_peer(port: int) -> None:
        with socket.create_connection(("127.0.0.1", port), timeout=30) as peer:
            for part, part_sent, go_on in zip(parts, sent, may_go_on):
                peer.sendall(part)
                part_sent.set()
                go_on.wait(30)
            chunks = []
            while chunk := peer.recv(65536):
                chunks.append(chunk)
            answer.append(b"".join(chunks))

    async def scenario(clock: VirtualClock) -> None:
        loop = asyncio.get_running_loop()
        site = await serve_app(echo_app())
        peer = threading.Thread(target=real_time_peer, args=(site.port,))
        peer.start()
        try:
            for part_sent, go_on in zip(sent[:2], may_go_on[:2]):
                with clock.busy("the real-time peer sends part of its request"):
                    assert await loop.run_in_executor(None, part_sent.wait, 30)
                await clock.settle()  # quiet: the server has read what the peer sent
                jumps_before = clock.stats.jumps
                await clock.run_for(3 * 3600)
                assert clock.stats.jumps > jumps_before  # the deadline's checks were jumped to
                go_on.set()
            may_go_on[2].set()
            with clock.busy("the real-time peer finishes its request"):
                await loop.run_in_executor(None, peer.join, 30)
        finally:
            await site.stop()

    clock = run_on_virtual_clock(scenario)
    assert clock.monotonic() >= 2 * 3 * 3600
    assert answer and answer[0].startswith(b"HTTP/1.1 200"), answer
    assert answer[0].endswith(b"hello")


def test_the_same_stall_on_a_virtual_clock_is_cut_once_real_time_passes_too() -> None:
    """The guard still works inside scenarios: when the peer stays stalled in real time as well,
    the next check the clock reaches cuts it."""
    answer: list[bytes] = []
    sent = threading.Event()

    def stalled_peer(port: int) -> None:
        with socket.create_connection(("127.0.0.1", port), timeout=30) as peer:
            peer.sendall(REQUEST[:20])
            sent.set()
            answer.append(peer.recv(65536))

    async def scenario(clock: VirtualClock) -> None:
        loop = asyncio.get_running_loop()
        site = await serve_app(echo_app(), read_limits=QUICK)
        peer = threading.Thread(target=stalled_peer, args=(site.port,))
        peer.start()
        try:
            with clock.busy("the stalled peer sends the start of its request"):
                assert await loop.run_in_executor(None, sent.wait, 30)
            await clock.settle()
            with clock.busy("real time passes for the stalled peer"):
                await loop.run_in_executor(None, threading.Event().wait, QUICK.headers_ceiling * 2)
            await clock.run_until(lambda: bool(answer), timeout=3600)
            with clock.busy("the peer thread ends"):
                await loop.run_in_executor(None, peer.join, 30)
        finally:
            await site.stop()

    run_on_virtual_clock(scenario)
    assert answer and answer[0].startswith(b"HTTP/1.1 408"), answer


def test_websocket_frame_boundaries_follow_every_length_form() -> None:
    frames = [b"\x81\x02hi", b"\x82\x7e\x01\x00" + b"x" * 256,
              b"\x82\x7f" + (70_000).to_bytes(8, "big") + b"y" * 70_000,
              b"\x81\x83abcd" + b"123", b"\x89\x00"]
    stream = b"".join(frames)
    boundaries = WebSocketFrameBoundaries()
    ends = set()
    for position in range(len(stream)):
        boundaries.feed(stream[position:position + 1])
        if not boundaries.mid_frame:
            ends.add(position + 1)
    expected, total = set(), 0
    for frame in frames:
        total += len(frame)
        expected.add(total)
    assert ends == expected


def test_every_aiohttp_server_is_put_on_its_socket_by_serve_app() -> None:
    """A server module that builds an aiohttp runner or site itself has no read deadlines."""
    servers = pathlib.Path(__file__).parents[2] / "otaharness" / "servers"
    own_sockets = re.compile(r"web\.(AppRunner|TCPSite|ServerRunner|Server)\(|web\.run_app\(")
    offenders = [f"{path.relative_to(servers)}:{number}: {line.strip()}"
                 for path in servers.rglob("*.py") if path.name != "http_service.py"
                 for number, line in enumerate(path.read_text().splitlines(), 1)
                 if own_sockets.search(line)]
    assert not offenders, f"aiohttp servers not started through serve_app: {offenders}"


TLS_CLIENT_HELLO_START = b"\x16\x03\x01\x00\xc8\x01\x00\x00\xc4\x03\x03"  # a ClientHello, cut short


async def test_a_tls_handshake_left_half_way_is_cut_after_the_handshake_limit() -> None:
    pki = Pki()
    try:
        site = await serve_app(echo_app(), ssl_context=pki.server_context(["127.0.0.1"]),
                               read_limits=ReadLimits(handshake=0.3))
        try:
            for opening in (b"", TLS_CLIENT_HELLO_START):  # silent, or stopped mid-hello
                reader, writer = await asyncio.open_connection("127.0.0.1", site.port)
                writer.write(opening)
                try:  # asyncio's own timer was 60 s, beyond this bound
                    assert await asyncio.wait_for(reader.read(), 30) == b""
                except ConnectionResetError:
                    pass
                finally:
                    writer.close()
        finally:
            await site.stop()
    finally:
        pki.close()


def test_a_virtual_jump_of_hours_during_a_real_time_tls_handshake_cuts_nothing() -> None:
    """A real-time client (a thread) opens TCP, the scenario lets 3 hours pass in jumps, then the
    client completes its TLS handshake and its request: the server was still there."""
    pki = Pki()

    async def serve():
        site = await serve_app(echo_app(), ssl_context=pki.server_context(["127.0.0.1"]))
        return site.port, site.stop

    def ask(secured: ssl.SSLSocket) -> bytes:
        secured.sendall(REQUEST + b"hello")
        return secured.recv(4096)

    try:
        clock, answer = real_time_tls_client_across_a_jump(serve, ask, 3 * 3600)
    finally:
        pki.close()
    assert clock.monotonic() >= 3 * 3600
    assert answer is not None and answer.startswith(b"HTTP/1.1 200") and answer.endswith(b"hello")

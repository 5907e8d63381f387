"""Run one coroutine on a scenario's virtual clock, as the harness does, for tests that put a
real-time peer (a thread) beside it."""

from __future__ import annotations

import asyncio
import socket
import ssl
import threading
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from otaharness.runtime.clock import VirtualClock, VirtualEventLoop


def run_on_virtual_clock(scenario: Callable[[VirtualClock], Coroutine[Any, Any, Any]]) -> VirtualClock:
    """``await scenario(clock)`` on a fresh virtual loop; the clock afterwards."""
    clock = VirtualClock()
    loop = VirtualEventLoop(clock)
    try:
        loop.run_until_complete(scenario(clock))
    finally:
        loop.run_until_complete(loop.shutdown_default_executor())
        loop.close()
    return clock


def real_time_tls_client_across_a_jump(serve: Callable[[], Awaitable[tuple[int, Callable[[], Awaitable[Any]]]]],
                                       talk: Callable[[ssl.SSLSocket], bytes],
                                       jump: float) -> tuple[VirtualClock, bytes | None]:
    """A real-time client (a thread) opens TCP to the server ``serve()`` starts on the virtual
    loop (it returns the port and how to stop it), the scenario lets ``jump`` seconds pass in
    jumps, then the client completes its TLS handshake (no verification) and ``talk``s: the
    clock afterwards and what ``talk`` returned (None if the client never got that far)."""
    connected, may_go_on = threading.Event(), threading.Event()
    answers: list[bytes] = []

    def real_time_client(port: int) -> None:
        with socket.create_connection(("127.0.0.1", port), timeout=30) as client:
            connected.set()
            may_go_on.wait(30)
            tls = ssl.create_default_context()
            tls.check_hostname, tls.verify_mode = False, ssl.CERT_NONE
            with tls.wrap_socket(client) as secured:
                answers.append(talk(secured))

    async def scenario(clock: VirtualClock) -> None:
        loop = asyncio.get_running_loop()
        port, stop = await serve()
        client = threading.Thread(target=real_time_client, args=(port,))
        client.start()
        try:
            with clock.busy("the client connects"):
                assert await loop.run_in_executor(None, connected.wait, 30)
            await clock.settle()
            await clock.run_for(jump)
            may_go_on.set()
            with clock.busy("the client shakes hands, talks and reads the answer"):
                await loop.run_in_executor(None, client.join, 30)
        finally:
            await stop()

    clock = run_on_virtual_clock(scenario)
    return clock, answers[0] if answers else None

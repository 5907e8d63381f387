"""LinkProxy and link faults over real loopback sockets."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from otaharness.runtime import proxy as proxy_module
from otaharness.runtime.faults import (
    CutAfter,
    Delay,
    Drop,
    LinkFaultError,
    Refuse,
    Throttle,
    parse_link_fault,
)
from otaharness.runtime.proxy import LinkProxy

DEVICES = {"127.0.0.2": "alpha", "127.0.0.3": "beta"}
BLOB = bytes(range(256)) * 40  # 10 KiB, every offset distinguishable modulo 256


def device_of(ip: str) -> str:
    return DEVICES[ip]


class Upstream:
    """A tiny TCP service on port 0 that counts the connections it accepted."""

    def __init__(self, handle: Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]):
        self.handle = handle
        self.accepted = 0
        self.server: asyncio.Server | None = None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.accepted += 1
        try:
            await self.handle(reader, writer)
        except ConnectionError:
            pass
        finally:
            writer.close()

    async def __aenter__(self) -> tuple[str, int]:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return self.server.sockets[0].getsockname()[:2]

    async def __aexit__(self, *exc: object) -> None:
        assert self.server is not None
        self.server.close()
        await self.server.wait_closed()


async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while data := await reader.read(65536):
        writer.write(data)
        await writer.drain()


async def send_blob(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    writer.write(BLOB)
    await writer.drain()


@pytest.fixture
async def echo_upstream() -> AsyncIterator[tuple[Upstream, tuple[str, int]]]:
    upstream = Upstream(echo)
    async with upstream as address:
        yield upstream, address


@pytest.fixture
async def blob_upstream() -> AsyncIterator[tuple[Upstream, tuple[str, int]]]:
    upstream = Upstream(send_blob)
    async with upstream as address:
        yield upstream, address


async def started(upstream_address: tuple[str, int]) -> LinkProxy:
    link = LinkProxy("test", upstream_address, service_port=1883, device_of=device_of)
    await link.start()
    return link


@pytest.fixture
async def echo_proxy(echo_upstream) -> AsyncIterator[LinkProxy]:
    link = await started(echo_upstream[1])
    yield link
    await link.close()


@pytest.fixture
async def blob_proxy(blob_upstream) -> AsyncIterator[LinkProxy]:
    link = await started(blob_upstream[1])
    yield link
    await link.close()


async def dial(link: LinkProxy, source_ip: str = "127.0.0.2"
               ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection(*link.address, local_addr=(source_ip, 0))


async def read_to_eof(reader: asyncio.StreamReader, timeout: float = 5.0) -> bytes:
    return await asyncio.wait_for(reader.read(), timeout)


async def hang_up(writer: asyncio.StreamWriter) -> None:
    writer.close()
    try:
        await writer.wait_closed()
    except ConnectionError:
        pass


# -- forwarding -------------------------------------------------------------------------------


async def test_forwards_both_ways_with_counters(echo_proxy: LinkProxy) -> None:
    payload = os.urandom(3 * 1024 * 1024)  # large enough to fill socket buffers both ways
    reader, writer = await dial(echo_proxy)

    async def feed() -> None:
        writer.write(payload)
        await writer.drain()
        writer.write_eof()

    feeding = asyncio.create_task(feed())
    received = await read_to_eof(reader)
    await feeding
    await hang_up(writer)
    assert received == payload
    counters = echo_proxy.counters("alpha")
    assert (counters.bytes_to_upstream, counters.bytes_to_device) == (len(payload), len(payload))
    assert echo_proxy.bytes_by_device == {"alpha": 2 * len(payload)}


async def test_devices_are_told_apart_by_source_address(echo_proxy: LinkProxy) -> None:
    echo_proxy.set_fault("beta", Refuse())
    alpha_reader, alpha_writer = await dial(echo_proxy, "127.0.0.2")
    beta_reader, beta_writer = await dial(echo_proxy, "127.0.0.3")
    alpha_writer.write(b"ping")
    assert await asyncio.wait_for(alpha_reader.readexactly(4), 5) == b"ping"
    assert await read_to_eof(beta_reader) == b""
    await hang_up(alpha_writer)
    await hang_up(beta_writer)
    assert echo_proxy.counters("alpha").refused == 0
    assert echo_proxy.counters("beta").refused == 1
    assert echo_proxy.bytes_by_device["alpha"] == 8
    assert echo_proxy.bytes_by_device["beta"] == 0


async def test_unreachable_upstream_closes_the_device_connection(echo_upstream) -> None:
    upstream, address = echo_upstream
    await upstream.__aexit__()  # the port is now closed
    link = await started(address)
    reader, writer = await dial(link)
    assert await read_to_eof(reader) == b""
    await hang_up(writer)
    await link.close()


# -- faults -----------------------------------------------------------------------------------


async def test_cut_after_delivers_exactly_then_a_reconnect_gets_everything(
    blob_upstream, blob_proxy: LinkProxy
) -> None:
    blob_proxy.set_fault("alpha", CutAfter(4096))
    reader, writer = await dial(blob_proxy)
    first = await read_to_eof(reader)
    await hang_up(writer)
    assert first == BLOB[:4096]
    assert blob_proxy.fault_of("alpha") is None  # once=True cleared it

    reader, writer = await dial(blob_proxy)
    second = await read_to_eof(reader)
    await hang_up(writer)
    assert second == BLOB
    assert blob_proxy.counters("alpha").cuts == 1


async def test_cut_after_every_time_cuts_each_connection(blob_proxy: LinkProxy) -> None:
    blob_proxy.set_fault("alpha", CutAfter(1000, once=False))
    for _ in range(2):
        reader, writer = await dial(blob_proxy)
        assert await read_to_eof(reader) == BLOB[:1000]
        await hang_up(writer)
    assert blob_proxy.counters("alpha").cuts == 2


async def test_cut_after_counts_both_directions(echo_proxy: LinkProxy) -> None:
    echo_proxy.set_fault("alpha", CutAfter(150))
    reader, writer = await dial(echo_proxy)
    writer.write(b"x" * 100)
    assert await asyncio.wait_for(reader.readexactly(50), 5) == b"x" * 50
    assert await read_to_eof(reader) == b""  # 100 up + 50 down = 150, then closed
    await hang_up(writer)


async def test_refuse_closes_new_connections_before_any_byte(
    blob_upstream, blob_proxy: LinkProxy
) -> None:
    upstream, _ = blob_upstream
    blob_proxy.set_fault("alpha", Refuse())
    reader, writer = await dial(blob_proxy)
    assert await read_to_eof(reader, timeout=1) == b""
    await hang_up(writer)
    assert upstream.accepted == 0
    blob_proxy.clear_fault("alpha")
    reader, writer = await dial(blob_proxy)
    assert await read_to_eof(reader) == BLOB
    await hang_up(writer)


async def test_delay_holds_each_direction_back_on_the_loop_clock(echo_proxy: LinkProxy) -> None:
    loop = asyncio.get_running_loop()
    reader, writer = await dial(echo_proxy)
    writer.write(b"warm-up")
    await asyncio.wait_for(reader.readexactly(7), 5)
    echo_proxy.set_fault("alpha", Delay(0.15))
    sent_at = loop.time()
    writer.write(b"first")
    writer.write(b"second")
    assert await asyncio.wait_for(reader.readexactly(11), 5) == b"firstsecond"
    round_trip = loop.time() - sent_at
    await hang_up(writer)
    assert 0.3 <= round_trip < 3.0  # delayed on the way up and on the way down


async def test_throttle_limits_the_rate(blob_proxy: LinkProxy) -> None:
    loop = asyncio.get_running_loop()
    blob_proxy.set_fault("alpha", Throttle(40 * 1024))  # 10 KiB take 0.25 s
    started_at = loop.time()
    reader, writer = await dial(blob_proxy)
    received = await read_to_eof(reader)
    elapsed = loop.time() - started_at
    await hang_up(writer)
    assert received == BLOB
    assert 0.25 <= elapsed < 3.0


async def test_drop_swallows_bytes_but_keeps_the_connection_open(echo_proxy: LinkProxy) -> None:
    reader, writer = await dial(echo_proxy)
    echo_proxy.set_fault("alpha", Drop())
    writer.write(b"into the void")
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(reader.read(1), 0.3)
    assert not reader.at_eof()
    echo_proxy.clear_fault("alpha")
    writer.write(b"back")
    assert await asyncio.wait_for(reader.readexactly(4), 5) == b"back"
    await hang_up(writer)
    assert echo_proxy.counters("alpha").bytes_swallowed == len(b"into the void")


async def test_disconnect_closes_only_that_devices_connections(echo_proxy: LinkProxy) -> None:
    alpha_reader, alpha_writer = await dial(echo_proxy, "127.0.0.2")
    beta_reader, beta_writer = await dial(echo_proxy, "127.0.0.3")
    for writer, reader in ((alpha_writer, alpha_reader), (beta_writer, beta_reader)):
        writer.write(b"hi")
        await asyncio.wait_for(reader.readexactly(2), 5)
    echo_proxy.disconnect("alpha")
    assert await read_to_eof(alpha_reader) == b""
    beta_writer.write(b"still here")
    assert await asyncio.wait_for(beta_reader.readexactly(10), 5) == b"still here"
    await hang_up(alpha_writer)
    await hang_up(beta_writer)


# -- teardown ---------------------------------------------------------------------------------


def _socket_ports() -> list[tuple[int, int]]:
    """(local port, remote port) of every TCP socket this process holds open (Linux /proc)."""
    inodes = set()
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    ports = []
    for table in ("/proc/self/net/tcp", "/proc/self/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if fields[9] in inodes:
                ports.append((int(fields[1].split(":")[1], 16), int(fields[2].split(":")[1], 16)))
    return ports


async def test_close_leaves_no_task_timer_or_socket(echo_upstream) -> None:
    _, upstream_address = echo_upstream
    link = await started(upstream_address)
    proxy_port = link.address[1]
    clients = [await dial(link, ip) for ip in DEVICES]
    for reader, writer in clients:
        writer.write(b"hello")
        await asyncio.wait_for(reader.readexactly(5), 5)
    link.set_fault("alpha", Delay(30))  # leaves a timer armed inside the proxy
    clients[0][1].write(b"held back")
    late_reader, late_writer = await dial(link)  # its upstream connect may still be running
    await asyncio.sleep(0)

    await link.close()

    assert [t for t in asyncio.all_tasks()
            if t.get_coro().cr_code.co_filename == proxy_module.__file__] == []
    loop = asyncio.get_running_loop()
    assert [h for h in getattr(loop, "_scheduled", [])
            if not h.cancelled() and getattr(h, "_callback", None) is not None
            and getattr(h._callback, "__module__", "") == proxy_module.__name__] == []
    held = [(local, remote) for local, remote in _socket_ports()
            if local == proxy_port or remote == upstream_address[1]]
    assert held == []
    for reader, writer in [*clients, (late_reader, late_writer)]:
        await read_to_eof(reader)
        await hang_up(writer)


# -- step phrases -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("phrase", "fault"),
    [
        ("cut after 4 KiB", CutAfter(4096)),
        ("cut after 100 bytes", CutAfter(100)),
        ("Cut after 2 MiB every time", CutAfter(2 * 1024 * 1024, once=False)),
        ("delayed by 2 seconds", Delay(2.0)),
        ("delayed by 250 ms", Delay(0.25)),
        ("throttled to 1 KiB/s", Throttle(1024.0)),
        ("throttled to 10 kB per second", Throttle(10_000.0)),
        ("dropped", Drop()),
        (" refused ", Refuse()),
    ],
)
def test_parse_link_fault(phrase: str, fault: object) -> None:
    assert parse_link_fault(phrase) == fault


@pytest.mark.parametrize(
    ("phrase", "complaint"),
    [
        ("flooded", "not a link fault"),
        ("cut after 4 parsecs", "unknown unit 'parsecs'"),
        ("cut after 1.5 bytes", "whole byte"),
        ("throttled to 0 KiB/s", "rate above 0"),
        ("delayed by 2 fortnights", "unknown unit"),
    ],
)
def test_parse_link_fault_rejects_with_a_reason(phrase: str, complaint: str) -> None:
    with pytest.raises(LinkFaultError, match=complaint):
        parse_link_fault(phrase)
    assert issubclass(LinkFaultError, ValueError)

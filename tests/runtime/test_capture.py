"""Pcap captures: the writer, the TCP synthesizer, and what the proxy records."""

from __future__ import annotations

import asyncio
import itertools
import struct
import subprocess
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from scapy.layers.inet import IP, TCP
from scapy.layers.l2 import Ether
from scapy.utils import rdpcap

from otaharness.runtime.capture import (
    LINKTYPE_ETHERNET,
    LINKTYPE_LORATAP,
    MAX_SEGMENT_SIZE,
    CaptureError,
    PcapWriter,
    TcpConversation,
)
from otaharness.runtime.proxy import LinkProxy

START = 1_767_225_600.0  # 2026-01-01T00:00:00Z

HTTP_REQUEST = (
    b"GET /firmware/v2.bin HTTP/1.1\r\nHost: updates.example\r\nConnection: close\r\n\r\n"
)
FIRMWARE = bytes(range(256)) * 20  # 5120 bytes: four segments
HTTP_RESPONSE = (
    b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n"
    + f"Content-Length: {len(FIRMWARE)}\r\nConnection: close\r\n\r\n".encode()
    + FIRMWARE
)
# MQTT 3.1.1 (OASIS), section 3.1: CONNECT, protocol level 4, clean session, keep-alive 60 s,
# client id "dev-beta"; section 3.2: CONNACK accepted; 3.12/3.13: PINGREQ, PINGRESP.
MQTT_CONNECT = bytes([0x10, 20, 0, 4]) + b"MQTT" + bytes([4, 0x02, 0, 60, 0, 8]) + b"dev-beta"
MQTT_CONNACK = bytes([0x20, 2, 0, 0])
MQTT_PINGREQ = bytes([0xC0, 0])
MQTT_PINGRESP = bytes([0xD0, 0])
MQTT_DISCONNECT = bytes([0xE0, 0])


class FakeWallClock:
    """Capture timestamps that advance one millisecond per reading."""

    def __init__(self) -> None:
        self._ticks = itertools.count()

    def __call__(self) -> float:
        return START + next(self._ticks) / 1000


# -- writer and synthesizer alone -------------------------------------------------------------


def test_empty_capture_is_a_valid_file(tmp_path: Path) -> None:
    path = tmp_path / "empty.pcap"
    PcapWriter(path).close()
    magic, major, minor, _, _, _, linktype = struct.unpack("=IHHiIII", path.read_bytes())
    assert (magic, major, minor, linktype) == (0xA1B2C3D4, 2, 4, LINKTYPE_ETHERNET)
    assert len(rdpcap(str(path))) == 0


def test_write_raw_keeps_linktype_and_timestamp(tmp_path: Path) -> None:
    path = tmp_path / "lora.pcap"
    frame = bytes([0, 0, 12, 0]) + bytes(8) + b"\x40\x01\x02\x03\x04"
    with PcapWriter(path, linktype=LINKTYPE_LORATAP) as writer:
        writer.write_raw(frame, START + 0.25)
        with pytest.raises(CaptureError, match="Ethernet"):
            writer.tcp_open(("127.1.0.7", 40000), ("127.0.0.1", 1883), START)
    data = path.read_bytes()
    assert struct.unpack("=I", data[20:24])[0] == LINKTYPE_LORATAP
    sec, usec, caplen, wirelen = struct.unpack("=IIII", data[24:40])
    assert (sec, usec, caplen, wirelen) == (int(START), 250_000, len(frame), len(frame))
    assert data[40:] == frame


def test_sequence_numbers_wrap_and_closed_conversations_refuse_data(tmp_path: Path) -> None:
    path = tmp_path / "wrap.pcap"
    conn = TcpConversation(("127.1.0.7", 40000), ("127.0.0.1", 80), 2**32 - 10, 5)
    with PcapWriter(path) as writer:
        writer.tcp_data(conn, True, b"a" * 100, START)
        assert conn.client_next_seq == 90
        writer.tcp_close(conn, START)
        with pytest.raises(CaptureError, match="closed"):
            writer.tcp_data(conn, True, b"late", START)
    first = rdpcap(str(path))[0]
    assert first[TCP].seq == 2**32 - 10 and len(first[TCP].payload) == 100


# -- what the proxy records -------------------------------------------------------------------


async def serve_http(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await reader.readuntil(b"\r\n\r\n")
    writer.write(HTTP_RESPONSE)
    await writer.drain()
    writer.close()


async def serve_mqtt_like(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await reader.readexactly(len(MQTT_CONNECT))
    writer.write(MQTT_CONNACK)
    await reader.readexactly(len(MQTT_PINGREQ))
    writer.write(MQTT_PINGRESP)
    await reader.readexactly(len(MQTT_DISCONNECT))
    await reader.read()
    writer.close()


@dataclass
class Exchange:
    """What one device really sent and received, to compare with the capture."""

    client_port: int = 0
    sent: bytes = b""
    received: bytes = b""


@dataclass
class RecordedExchanges:
    path: Path
    http: Exchange = field(default_factory=Exchange)
    mqtt: Exchange = field(default_factory=Exchange)


async def http_download(address: tuple[str, int], exchange: Exchange) -> None:
    reader, writer = await asyncio.open_connection(*address, local_addr=("127.0.0.2", 0))
    exchange.client_port = writer.get_extra_info("sockname")[1]
    writer.write(HTTP_REQUEST)
    exchange.sent = HTTP_REQUEST
    exchange.received = await asyncio.wait_for(reader.read(), 5)
    writer.close()
    await writer.wait_closed()


async def mqtt_session(address: tuple[str, int], exchange: Exchange) -> None:
    reader, writer = await asyncio.open_connection(*address, local_addr=("127.0.0.3", 0))
    exchange.client_port = writer.get_extra_info("sockname")[1]
    for request, answer in ((MQTT_CONNECT, MQTT_CONNACK), (MQTT_PINGREQ, MQTT_PINGRESP)):
        writer.write(request)
        exchange.sent += request
        exchange.received += await asyncio.wait_for(reader.readexactly(len(answer)), 5)
    writer.write(MQTT_DISCONNECT)
    exchange.sent += MQTT_DISCONNECT
    writer.write_eof()
    exchange.received += await asyncio.wait_for(reader.read(), 5)
    writer.close()
    await writer.wait_closed()


@pytest.fixture
async def recorded(tmp_path: Path) -> RecordedExchanges:
    """An HTTP download (device 127.0.0.2) and an MQTT session (127.0.0.3) through two proxies
    that share one capture."""
    result = RecordedExchanges(tmp_path / "scenario.pcap")
    capture = PcapWriter(result.path)
    http_server = await asyncio.start_server(serve_http, "127.0.0.1", 0)
    mqtt_server = await asyncio.start_server(serve_mqtt_like, "127.0.0.1", 0)
    names = {"127.0.0.2": "alpha", "127.0.0.3": "beta"}
    wall_time = FakeWallClock()
    proxies = [
        LinkProxy(name, server.sockets[0].getsockname()[:2], service_port=port,
                  device_of=names.__getitem__, capture=capture, wall_time=wall_time)
        for name, server, port in (("http", http_server, 80), ("mqtt", mqtt_server, 1883))
    ]
    for link in proxies:
        await link.start()
    await asyncio.gather(http_download(proxies[0].address, result.http),
                         mqtt_session(proxies[1].address, result.mqtt))
    for link in proxies:
        await link.close()
    for server in (http_server, mqtt_server):
        server.close()
        await server.wait_closed()
    capture.close()
    return result


def _conversations(path: Path) -> dict[tuple[str, int, int], list]:
    """Packets grouped by (client ip, client port, server port); the server is the low port."""
    grouped: dict[tuple[str, int, int], list] = defaultdict(list)
    for packet in rdpcap(str(path)):
        ip, tcp = packet[IP], packet[TCP]
        if tcp.sport < tcp.dport:
            grouped[(ip.dst, tcp.dport, tcp.sport)].append(packet)
        else:
            grouped[(ip.src, tcp.sport, tcp.dport)].append(packet)
    return grouped


def _checked_streams(packets: list, client_ip: str, client_closes_first: bool
                     ) -> tuple[bytes, bytes]:
    """Check handshake, seq/ack continuity and FINs; return the bytes sent each way."""
    flags = [str(p[TCP].flags) for p in packets]
    assert flags[:3] == ["S", "SA", "A"]
    assert flags[-3:] == ["FA", "FA", "A"]
    assert (packets[-3][IP].src == client_ip) == client_closes_first
    next_seq: dict[bool, int] = {}
    streams: dict[bool, bytes] = {True: b"", False: b""}
    for packet in packets:
        tcp = packet[TCP]
        from_client = packet[IP].src == client_ip
        payload = bytes(tcp.payload)
        assert len(payload) <= MAX_SEGMENT_SIZE
        if "S" in tcp.flags:
            next_seq[from_client] = tcp.seq
        else:
            assert tcp.seq == next_seq[from_client], f"gap before {packet.summary()}"
            assert tcp.ack == next_seq[not from_client], f"bad ack in {packet.summary()}"
        if "S" in tcp.flags and "A" in tcp.flags:
            assert tcp.ack == next_seq[True]
        next_seq[from_client] = (
            next_seq[from_client] + len(payload) + ("S" in tcp.flags) + ("F" in tcp.flags)
        ) % 2**32
        streams[from_client] += payload
    return streams[True], streams[False]


async def test_capture_reassembles_to_the_bytes_that_crossed(
    recorded: RecordedExchanges,
) -> None:
    conversations = _conversations(recorded.path)
    assert set(conversations) == {
        ("127.0.0.2", recorded.http.client_port, 80),
        ("127.0.0.3", recorded.mqtt.client_port, 1883),
    }
    # The HTTP server closes after its response; the MQTT client closes after DISCONNECT.
    for client_ip, port, exchange, client_closes_first in (
        ("127.0.0.2", 80, recorded.http, False), ("127.0.0.3", 1883, recorded.mqtt, True)
    ):
        packets = conversations[(client_ip, exchange.client_port, port)]
        assert {p[IP].dst for p in packets if p[IP].src == client_ip} == {"127.0.0.1"}
        upstream, downstream = _checked_streams(packets, client_ip, client_closes_first)
        assert upstream == exchange.sent
        assert downstream == exchange.received
    assert recorded.http.received == HTTP_RESPONSE
    assert recorded.mqtt.received == MQTT_CONNACK + MQTT_PINGRESP


async def test_capture_checksums_and_timestamps(recorded: RecordedExchanges) -> None:
    packets = rdpcap(str(recorded.path))
    times = [float(p.time) for p in packets]
    assert times == sorted(times)
    assert START <= times[0] and times[-1] < START + 60
    for packet in packets:
        rebuilt = Ether(bytes(packet))
        del rebuilt[IP].chksum
        del rebuilt[TCP].chksum
        rebuilt = Ether(bytes(rebuilt))
        assert (packet[IP].chksum, packet[TCP].chksum) == (rebuilt[IP].chksum, rebuilt[TCP].chksum)



def _tshark_fields(tshark: str, path: Path, display_filter: str, *fields: str) -> list[str]:
    command = [tshark, "-n", "-r", str(path), "-Y", display_filter, "-T", "fields"]
    for name in fields:
        command += ["-e", name]
    done = subprocess.run(command, capture_output=True, text=True, timeout=60, check=True)
    return done.stdout.splitlines()


@pytest.mark.interop
async def test_tshark_dissects_the_capture(tshark: str, recorded: RecordedExchanges) -> None:
    path = recorded.path
    assert _tshark_fields(tshark, path, "http.request", "ip.src", "tcp.srcport",
                          "http.request.method", "http.request.uri") == [
        f"127.0.0.2\t{recorded.http.client_port}\tGET\t/firmware/v2.bin"
    ]
    assert _tshark_fields(tshark, path, "http.response", "http.response.code",
                          "http.content_length") == [f"200\t{len(FIRMWARE)}"]
    assert _tshark_fields(tshark, path, "mqtt.msgtype == 1", "mqtt.clientid") == ["dev-beta"]
    # No lost segment, retransmission or out-of-order report: the streams are consistent.
    assert _tshark_fields(tshark, path, "tcp.analysis.flags", "frame.number") == []

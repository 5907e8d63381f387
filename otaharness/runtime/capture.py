"""Packet captures: a streaming pcap writer and a TCP conversation synthesizer.

The runtime proxy relays byte streams, not packets, so the capture re-creates the TCP packets a
sniffer on the link would have seen: handshake, data segments with consistent sequence and
acknowledgement numbers and checksums, and the closing FIN exchange (RFC 9293 section 3.5). The
server appears on the protocol's well-known port so Wireshark/tshark dissect without settings.
Other link types (LoRaTap, 270) go through ``write_raw``. ``embed_tls_secrets`` turns a finished
capture and a TLS key log into a pcapng file Wireshark decrypts without settings.
"""

from __future__ import annotations

import ipaddress
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from scapy.layers.inet import IP, TCP
from scapy.layers.l2 import Ether
from scapy.utils import RawPcapNgReader, RawPcapReader, RawPcapWriter

# Link-layer header types, https://www.tcpdump.org/linktypes.html
LINKTYPE_ETHERNET = 1
LINKTYPE_LORATAP = 270

# A 1500-byte Ethernet MTU less 20 (IPv4) + 20 (TCP) bytes of headers, and 12 more for the
# timestamp option real stacks send, which gives the segment size Linux uses on such a link.
_ETHERNET_MSS = 1460
MAX_SEGMENT_SIZE = _ETHERNET_MSS - 12
_WINDOW = 65535

Endpoint = tuple[str, int]

# pcapng, draft-ietf-opsawg-pcapng: block type codes (section 10.1), the byte-order magic of the
# Section Header Block (section 4.1) and the TLS Key Log secrets type of the DSB (section 4.7).
PCAPNG_SHB = 0x0A0D0D0A
PCAPNG_IDB = 0x00000001
PCAPNG_EPB = 0x00000006
PCAPNG_DSB = 0x0000000A
PCAPNG_BYTE_ORDER_MAGIC = 0x1A2B3C4D
SECRETS_TYPE_TLS_KEY_LOG = 0x544C534B  # "TLSK"


class CaptureError(ValueError):
    """A capture call that cannot produce a valid packet or file."""


@dataclass
class TcpConversation:
    """The state a sniffer would track for one TCP connection: next sequence number each way."""

    client: Endpoint
    server: Endpoint
    client_next_seq: int
    server_next_seq: int
    closed: bool = False


def _mac_for(ip: str) -> str:
    # A locally administered unicast MAC that spells the IPv4 address, so hosts stay apart.
    return "02:00:" + ":".join(f"{octet:02x}" for octet in ipaddress.IPv4Address(ip).packed)


def _initial_sequence(client: Endpoint, server: Endpoint, from_client: bool) -> int:
    # Deterministic per connection so two runs of a scenario give comparable captures.
    return zlib.crc32(f"{client}{server}{from_client}".encode())


class PcapWriter:
    """A pcap file (classic format, microsecond timestamps) written as packets come."""

    def __init__(self, path: str | Path, linktype: int = LINKTYPE_ETHERNET) -> None:
        self.path = Path(path)
        self.linktype = linktype
        self._writer = RawPcapWriter(str(self.path), linktype=linktype)
        # The header goes out now so even a capture with no packet is a valid file.
        self._writer.write_header(None)
        self._closed = False

    def write_raw(self, packet: bytes, ts: float) -> None:
        """Append one link-layer frame captured at unix time ``ts``."""
        if self._closed:
            raise CaptureError(f"capture {self.path} is closed")
        seconds = int(ts)
        micros = min(round((ts - seconds) * 1_000_000), 999_999)
        self._writer.write_packet(packet, sec=seconds, usec=micros)

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._writer.close()

    def __enter__(self) -> PcapWriter:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- TCP conversation synthesizer (Ethernet captures only) --------------------------------

    def tcp_open(self, client: Endpoint, server: Endpoint, ts: float) -> TcpConversation:
        """Write the three-way handshake and return the conversation for later calls."""
        client_isn = _initial_sequence(client, server, from_client=True)
        server_isn = _initial_sequence(client, server, from_client=False)
        conn = TcpConversation(client, server, (client_isn + 1) % 2**32, (server_isn + 1) % 2**32)
        mss = [("MSS", _ETHERNET_MSS)]
        self._segment(conn, True, "S", client_isn, 0, b"", ts, mss)
        self._segment(conn, False, "SA", server_isn, conn.client_next_seq, b"", ts, mss)
        self._segment(conn, True, "A", conn.client_next_seq, conn.server_next_seq, b"", ts)
        return conn

    def tcp_data(self, conn: TcpConversation, from_client: bool, data: bytes, ts: float) -> None:
        """Write ``data`` as segments of at most MAX_SEGMENT_SIZE, then the receiver's ACK."""
        if conn.closed:
            raise CaptureError(f"TCP conversation {conn.client} -> {conn.server} is closed")
        for start in range(0, len(data), MAX_SEGMENT_SIZE):
            piece = data[start:start + MAX_SEGMENT_SIZE]
            last = start + MAX_SEGMENT_SIZE >= len(data)
            self._send(conn, from_client, "PA" if last else "A", piece, ts)
        if data:
            self._send(conn, not from_client, "A", b"", ts)

    def tcp_close(self, conn: TcpConversation, ts: float, client_first: bool = True) -> None:
        """Write FIN/ACK from the side that closed first, FIN/ACK back and the final ACK."""
        if conn.closed:
            return
        self._send(conn, client_first, "FA", b"", ts)
        self._send(conn, not client_first, "FA", b"", ts)
        self._send(conn, client_first, "A", b"", ts)
        conn.closed = True

    def _send(self, conn: TcpConversation, from_client: bool, flags: str, payload: bytes,
              ts: float) -> None:
        """One segment at the sender's next sequence number, advancing it (FIN counts as 1)."""
        seq = conn.client_next_seq if from_client else conn.server_next_seq
        ack = conn.server_next_seq if from_client else conn.client_next_seq
        self._segment(conn, from_client, flags, seq, ack, payload, ts)
        advance = len(payload) + (1 if "F" in flags else 0)
        if from_client:
            conn.client_next_seq = (seq + advance) % 2**32
        else:
            conn.server_next_seq = (seq + advance) % 2**32

    def _segment(self, conn: TcpConversation, from_client: bool, flags: str, seq: int, ack: int,
                 payload: bytes, ts: float, options: list[tuple[str, int]] | None = None) -> None:
        if self.linktype != LINKTYPE_ETHERNET:
            raise CaptureError(
                f"TCP conversations need an Ethernet capture, {self.path} has linktype "
                f"{self.linktype}"
            )
        (src_ip, src_port), (dst_ip, dst_port) = (
            (conn.client, conn.server) if from_client else (conn.server, conn.client)
        )
        frame = (
            Ether(src=_mac_for(src_ip), dst=_mac_for(dst_ip))
            / IP(src=src_ip, dst=dst_ip)
            / TCP(sport=src_port, dport=dst_port, flags=flags, seq=seq, ack=ack, window=_WINDOW,
                  options=options or [])
            / payload
        )
        self.write_raw(bytes(frame), ts)


def _pcapng_block(block_type: int, body: bytes) -> bytes:
    """One block in the general structure of draft-ietf-opsawg-pcapng section 3.1: type, total
    length, the body padded to 32 bits, the total length again (little-endian throughout)."""
    body += bytes(-len(body) % 4)
    total = 12 + len(body)
    return struct.pack("<II", block_type, total) + body + struct.pack("<I", total)


def embed_tls_secrets(pcap_path: Path, keylog_path: Path, pcapng_path: Path) -> Path:
    """Write ``pcapng_path``: the classic pcap ``pcap_path`` with the TLS key log
    ``keylog_path`` (NSS/SSLKEYLOGFILE format) embedded, so Wireshark and tshark decrypt the TLS
    in it with no preference set. Returns ``pcapng_path``.

    The file is one section (draft-ietf-opsawg-pcapng, "PCAP Now Generic (pcapng) Capture File
    Format"; blocks as in section 3.1, little-endian, all 32-bit aligned):

    * a Section Header Block (section 4.1), version 1.0, section length -1 (not given);
    * one Interface Description Block (section 4.2) with the pcap's link type and snaplen and no
      options, so timestamps are in the default if_tsresol of microseconds;
    * a Decryption Secrets Block (section 4.7) of secrets type TLS Key Log (0x544c534b) whose
      data is the key log file byte for byte (Wireshark parses the raw lines itself; comments
      and line endings are kept). It comes before any packet: the section says DSBs SHOULD
      precede the packets that need them and tools MAY only use secrets read so far, which is
      what single-pass tshark does. A missing or empty (or all-whitespace) key log gives no DSB
      and the file is still valid;
    * one Enhanced Packet Block (section 4.3) per packet of the pcap, in order, on interface 0,
      with the pcap's timestamp (nanosecond pcaps are cut to microseconds), captured bytes and
      original length. A pcap with no packet gives a file with no EPB.

    The blocks are packed here with ``struct``: scapy's pcapng writer (``RawPcapNgWriter``)
    writes SHB, IDB, SPB and EPB but has no Decryption Secrets Block (scapy only reads DSBs),
    and ``editcap --inject-secrets`` would make the capture depend on an installed Wireshark.
    The pcap is read with scapy's ``RawPcapReader``; a pcapng input is refused (CaptureError).
    """
    pcap_path, keylog_path, pcapng_path = Path(pcap_path), Path(keylog_path), Path(pcapng_path)
    secrets = keylog_path.read_bytes() if keylog_path.is_file() else b""
    reader = RawPcapReader(str(pcap_path))
    try:
        if isinstance(reader, RawPcapNgReader):
            raise CaptureError(f"{pcap_path} is already pcapng, expected a classic pcap")
        with pcapng_path.open("wb") as out:
            shb = struct.pack("<IHHq", PCAPNG_BYTE_ORDER_MAGIC, 1, 0, -1)
            out.write(_pcapng_block(PCAPNG_SHB, shb))
            idb = struct.pack("<HHI", reader.linktype, 0, reader.snaplen)
            out.write(_pcapng_block(PCAPNG_IDB, idb))
            if secrets.strip():
                dsb = struct.pack("<II", SECRETS_TYPE_TLS_KEY_LOG, len(secrets)) + secrets
                out.write(_pcapng_block(PCAPNG_DSB, dsb))
            for data, meta in reader:
                fraction = meta.usec // 1000 if reader.nano else meta.usec
                micros = meta.sec * 1_000_000 + fraction
                epb = struct.pack(
                    "<IIIII", 0, micros >> 32, micros & 0xFFFFFFFF, len(data),
                    max(meta.wirelen, len(data)),
                )
                out.write(_pcapng_block(PCAPNG_EPB, epb + data))
    finally:
        reader.close()
    return pcapng_path

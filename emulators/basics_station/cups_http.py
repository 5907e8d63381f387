"""The station's HTTP exchange with CUPS, byte for byte as ``src/net.c`` does it.

The request is written raw (``encode_update_info_http_request``: fixed header order, 5-character
Content-Length) because an HTTP library would add or reorder headers. The reply is read the way
the station's client reads it: status line, headers, then exactly ``Content-Length`` bytes; there
is no chunked decoding, and a reply without Content-Length has an empty body (which the CUPS
reply decoder then reports as malformed).
"""

from __future__ import annotations

import asyncio
import ssl
from dataclasses import dataclass

from otaharness.protocols.basics_station import encode_update_info_http_request

MAX_HEADER_BYTES = 8192  # CUPS_BUFSZ: the station's whole HTTP buffer


class CupsHttpError(Exception):
    """The CUPS server's reply is not HTTP the station can read."""


class CupsReplyCut(CupsHttpError):
    """The connection ended inside the reply body; what had arrived is kept, because the
    station acts on the segments it read before the cut (see ``BasicsStation``)."""

    def __init__(self, message: str, status: int, partial: bytes) -> None:
        super().__init__(message)
        self.status = status
        self.partial = partial


@dataclass(frozen=True)
class HttpReply:
    status: int
    reason: str
    headers: dict[str, str]
    body: bytes


async def post_update_info(address: tuple[str, int], host_port: str, body: bytes,
                           local_address: str | None = None, *, tls: ssl.SSLContext | None = None,
                           server_hostname: str | None = None, auth_headers: bytes = b"") -> HttpReply:
    """POST /update-info to ``address`` (the caller bounds the time with ``asyncio.timeout``),
    over TLS with ``tls`` (checking ``server_hostname``), with the token's ``auth_headers``."""
    reader, writer = await asyncio.open_connection(
        *address, local_addr=(local_address, 0) if local_address else None, limit=MAX_HEADER_BYTES,
        ssl=tls, server_hostname=server_hostname if tls is not None else None)
    try:
        writer.write(encode_update_info_http_request(host_port, body, auth_headers.decode("latin-1")))
        await writer.drain()
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError) as error:
            raise CupsHttpError(f"CUPS reply has no complete HTTP header: {error}") from error
        status, reason, headers = _parse_head(head)
        length_text = headers.get("content-length")
        length = 0
        if length_text is not None:
            if not length_text.isdigit():
                raise CupsHttpError(f"bad Content-Length {length_text!r}")
            length = int(length_text)
        try:
            content = await reader.readexactly(length)
        except asyncio.IncompleteReadError as error:
            raise CupsReplyCut(f"CUPS reply body cut short: {len(error.partial)} of {length} bytes",
                               status, error.partial) from error
        return HttpReply(status, reason, headers, content)
    finally:
        writer.close()
        try:
            await writer.wait_closed()
        except OSError:
            pass


def _parse_head(head: bytes) -> tuple[int, str, dict[str, str]]:
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/1.") or not parts[1].isdigit():
        raise CupsHttpError(f"bad HTTP status line {lines[0]!r}")
    headers = {}
    for line in lines[1:]:
        if line:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
    return int(parts[1]), parts[2] if len(parts) > 2 else "", headers

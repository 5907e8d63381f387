"""The tracker's firmware download: the nRF download client's HTTP range requests.

nRF Connect SDK `download_client/src/http.c` (shared/protocols/aws-iot-jobs.md §4.2): one
`GET /<path>` per fragment with `Range: bytes=<progress>-<progress+frag-1>`, expecting
**206 Partial Content** and reading the object size from `Content-Range: bytes a-b/<size>`.
After a broken connection it connects again and asks for the range from the last byte it
received. The S3 bucket is addressed virtual-host style: the request goes to `endpoint`
(moto on loopback, or the runtime's link proxy in front of it) with `Host: <location.host>`.
With a TLS context (an `https` location), the server's certificate is checked for
`<location.host>`, which is also sent as SNI, as the nRF modem's TLS stack does.

The offset lives in RAM (`RangeDownload.offset`); the bytes go to the caller's `sink` (the
tracker's flash slot). Nothing here marks the clock busy: the bytes may sit in the runtime's link
proxy waiting on a (virtual) throttle timer, and the harness's moto service registers a quiet
probe that holds the clock while moto's threads handle a request.
"""

from __future__ import annotations

import asyncio
import re
import ssl
from collections.abc import Callable

import aiohttp
from yarl import URL

# fota_download's CONFIG_FOTA_SOCKET_RETRIES: reconnections after socket errors. The count
# starts again whenever a connection delivered bytes.
SOCKET_RETRIES = 2

_CONTENT_RANGE = re.compile(r"bytes (\d+)-(\d+)/(\d+)")


class ContentRangeError(ValueError):
    """A Content-Range header that is not `bytes <first>-<last>/<size>` with first <= last < size."""


class DownloadFailed(Exception):
    """The download cannot complete; `reason` is what the device reports in statusDetails."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def parse_content_range(value: str) -> tuple[int, int, int]:
    """`bytes 100-1123/10240` -> (100, 1123, 10240) (RFC 9110 §14.4)."""
    match = _CONTENT_RANGE.fullmatch(value.strip())
    if match is None:
        raise ContentRangeError(f"Content-Range {value!r} is not 'bytes <first>-<last>/<size>'")
    first, last, size = (int(group) for group in match.groups())
    if not first <= last < size:
        raise ContentRangeError(f"Content-Range {value!r}: need first <= last < size")
    return first, last, size


def range_header(offset: int, fragment_size: int, size: int | None) -> str:
    last = offset + fragment_size - 1
    if size is not None:
        last = min(last, size - 1)
    return f"bytes={offset}-{last}"


class RangeDownload:
    """One image download, fragment by fragment, resuming after broken connections."""

    def __init__(
        self,
        *,
        endpoint: tuple[str, int],
        host: str,
        path: str,
        sink: bytearray,
        fragment_size: int = 2048,
        expected_size: int | None = None,
        timeout: float = 60.0,
        bind_address: str | None = None,
        on_progress: Callable[[int, int], None] | None = None,
        on_resume: Callable[[int, str], None] | None = None,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        if not 1 <= fragment_size:
            raise ValueError(f"fragment_size must be at least 1 byte, not {fragment_size}")
        self.tls = tls
        self.url = URL.build(scheme="https" if tls is not None else "http", host=endpoint[0], port=endpoint[1],
                             path="/" + path.lstrip("/"), encoded=True)
        self.host = host
        self.sink = sink
        self.fragment_size = fragment_size
        self.expected_size = expected_size
        self.timeout = timeout
        self.bind_address = bind_address
        self.on_progress = on_progress
        self.on_resume = on_resume
        self.offset = 0
        self.size: int | None = None
        self.requests = 0
        self.reconnections = 0

    async def run(self) -> bytes:
        """Download the whole object into `sink` (erased first); returns its bytes."""
        self.sink.clear()  # erase the slot: a new download always starts from byte 0
        self.offset = 0
        connector = aiohttp.TCPConnector(
            local_addr=(self.bind_address, 0) if self.bind_address else None, limit=1)
        retries = SOCKET_RETRIES
        async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=None),
                                         auto_decompress=False) as session:
            # aiohttp sends a GET again, unseen, when a kept-alive connection breaks before the
            # answer; the nRF client sees the broken socket and resumes itself (counted, logged).
            # No public switch exists for this (aiohttp 3.14): the attribute is its own.
            session._retry_connection = False
            while self.size is None or self.offset < self.size:
                before = self.offset
                try:
                    async with asyncio.timeout(self.timeout):
                        await self._fragment(session)
                except TimeoutError:
                    raise DownloadFailed(
                        f"download timed out after {self.timeout:g} s at byte {self.offset}") from None
                except aiohttp.ClientConnectorCertificateError as error:
                    # A certificate we cannot trust is no glitch to retry (a cut handshake is).
                    raise DownloadFailed(f"TLS with {self.host} failed: {error}") from None
                except (aiohttp.ClientConnectionError, aiohttp.ClientPayloadError) as error:
                    if self.offset > before:
                        retries = SOCKET_RETRIES
                    if retries == 0:
                        raise DownloadFailed(
                            f"connection to {self.host} lost at byte {self.offset}: {error}") from None
                    retries -= 1
                    self.reconnections += 1
                    if self.on_resume is not None:
                        self.on_resume(self.offset, str(error) or type(error).__name__)
        return bytes(self.sink)

    async def _fragment(self, session: aiohttp.ClientSession) -> None:
        headers = {
            "Host": self.host,
            "Range": range_header(self.offset, self.fragment_size, self.size),
            "Connection": "keep-alive",
        }
        self.requests += 1
        tls = {"ssl": self.tls, "server_hostname": self.host} if self.tls is not None else {}
        async with session.get(self.url, headers=headers, allow_redirects=False, **tls) as response:
            if response.status != 206:
                raise DownloadFailed(self._status_reason(response.status, response.reason))
            first, _last, size = self._content_range(response.headers.get("Content-Range"))
            if first != self.offset:
                raise DownloadFailed(f"server sent bytes from {first}, asked from {self.offset}")
            self._check_size(size)
            async for chunk in response.content.iter_any():
                self._store(chunk)

    def _content_range(self, value: str | None) -> tuple[int, int, int]:
        if value is None:
            raise DownloadFailed("206 response without Content-Range")
        try:
            return parse_content_range(value)
        except ContentRangeError as error:
            raise DownloadFailed(str(error)) from None

    def _check_size(self, size: int) -> None:
        if self.expected_size is not None and size != self.expected_size:
            raise DownloadFailed(
                f"size mismatch: job document says {self.expected_size} bytes, server has {size}")
        if self.size is not None and size != self.size:
            raise DownloadFailed(f"object changed size during download: {self.size} -> {size}")
        self.size = size

    def _store(self, chunk: bytes) -> None:
        assert self.size is not None
        chunk = chunk[: self.size - self.offset]  # never past the announced end
        self.sink[self.offset:] = chunk
        self.offset += len(chunk)
        if self.on_progress is not None and chunk:
            self.on_progress(self.offset, self.size)

    def _status_reason(self, status: int, reason: str | None) -> str:
        text = f"HTTP {status} {reason or ''}".rstrip()
        if status == 200:
            return f"{text}: server ignored the Range request (expected 206)"
        return f"{text} for {self.host}{self.url.raw_path_qs}"

"""HTTP side of a CPE: one keep-alive connection per CWMP session to the ACS (cookies and
Basic/Digest per the quirks), and file downloads (Basic preemptively, Digest on challenge).

``link(url) -> (host, port)`` lets the harness route a device through its link proxy; the URL's
own host stays in the Host header.
"""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from http.cookies import CookieError, SimpleCookie

import aiohttp
from yarl import URL

from otaharness.protocols.cwmp import Envelope, parse_envelope
from otaharness.servers.tr069.http_auth import DigestClient, basic_authorization

from .quirks import Quirks

Link = Callable[[str], Awaitable[tuple[str, int]]]
SOAP_CONTENT_TYPE = 'text/xml; charset="utf-8"'


class SessionFailed(Exception):
    """The CWMP session could not complete (HTTP error, bad reply, connection lost)."""


class TransferFailed(Exception):
    """A file download failed; ``fault_code`` is the TransferComplete fault (9010-9019)."""

    def __init__(self, fault_code: int, message: str) -> None:
        super().__init__(message)
        self.fault_code = fault_code


@dataclass
class Credentials:
    """Credentials and what the CPE remembers of the ACS between sessions (cookies, nonce)."""

    username: str
    password: str
    rng: random.Random
    quirks: Quirks
    cookie_header: str = ""
    digest: DigestClient = field(init=False)

    def __post_init__(self) -> None:
        self.digest = DigestClient(self.username, self.password, self.rng,
                                   fixed_nc=self.quirks.fixed_nonce_count)

    def authorization(self, method: str, path: str) -> str | None:
        if self.quirks.preemptive_basic:
            return basic_authorization(self.username, self.password)
        if self.digest.has_challenge:
            return self.digest.authorization(method, path)
        return None

    def remember_cookies(self, set_cookie_headers: list[str]) -> None:
        if self.quirks.cookies == "none" or not set_cookie_headers:
            return
        if self.quirks.cookies == "echo-attributes":
            self.cookie_header = set_cookie_headers[-1]  # verbatim, "; Path=/" and all
            return
        jar = SimpleCookie()
        for header in set_cookie_headers:
            try:
                jar.load(header)
            except CookieError:
                continue
        self.cookie_header = "; ".join(f"{m.key}={m.value}" for m in jar.values())


async def _dial(url: str, link: Link | None) -> tuple[str, dict[str, str]]:
    """The URL to connect to and the extra headers (Host) when ``link`` reroutes it."""
    if link is None:
        return url, {}
    parsed = URL(url)
    host, port = await link(url)
    return str(parsed.with_host(host).with_port(port)), {"Host": parsed.raw_authority}


class AcsSession:
    """One CWMP session's HTTP connection (kept alive; ``limit=1`` keeps it one socket)."""

    def __init__(self, acs_url: str, credentials: Credentials, bind_address: str | None,
                 link: Link | None) -> None:
        self.acs_url = acs_url
        self.credentials = credentials
        self.link = link
        connector = aiohttp.TCPConnector(limit=1, local_addr=(bind_address, 0) if bind_address
                                         else None)
        self.http = aiohttp.ClientSession(connector=connector,
                                          cookie_jar=aiohttp.DummyCookieJar(),
                                          timeout=aiohttp.ClientTimeout(total=60))

    async def close(self) -> None:
        await self.http.close()

    async def post(self, body: bytes) -> Envelope | None:
        """POST ``body`` (b"" = the empty POST); the ACS's envelope, or None for an empty reply."""
        url, extra = await _dial(self.acs_url, self.link)
        path = URL(self.acs_url).raw_path_qs
        for _ in range(2):  # a second time after a 401 challenge
            headers = {"Content-Type": SOAP_CONTENT_TYPE, "SOAPAction": "", **extra} if body \
                else dict(extra)
            if self.credentials.cookie_header:
                headers["Cookie"] = self.credentials.cookie_header
            authorization = self.credentials.authorization("POST", path)
            if authorization:
                headers["Authorization"] = authorization
            try:
                async with self.http.post(url, data=body, headers=headers) as response:
                    data = await response.read()
                    self.credentials.remember_cookies(response.headers.getall("Set-Cookie", []))
                    if response.status == 401 and not self.credentials.quirks.preemptive_basic:
                        challenge = response.headers.get("WWW-Authenticate", "")
                        if self.credentials.digest.accept_challenge(challenge):
                            continue
                    if response.status in (200, 204) and not data.strip():
                        return None
                    if response.status in (200, 500) and data.strip():
                        return parse_envelope(data)
                    raise SessionFailed(f"ACS answered HTTP {response.status}")
            except (aiohttp.ClientError, OSError, TimeoutError, ValueError) as exc:
                raise SessionFailed(f"{type(exc).__name__}: {exc}") from exc
        raise SessionFailed("ACS refused our credentials")


async def download(url: str, username: str, password: str, *, bind_address: str | None,
                   link: Link | None, rng: random.Random, expected_size: int = 0) -> bytes:
    """GET a file as TR-069 expects of a Download; failures carry the TransferComplete code."""
    if URL(url).scheme not in ("http", "https"):
        raise TransferFailed(9010, f"unsupported URL scheme in {url!r}")
    target, extra = await _dial(url, link)
    digest = DigestClient(username, password, rng)
    connector = aiohttp.TCPConnector(local_addr=(bind_address, 0) if bind_address else None,
                                     force_close=True)
    async with aiohttp.ClientSession(connector=connector,
                                     timeout=aiohttp.ClientTimeout(total=600)) as http:
        for _ in range(2):
            headers = dict(extra)
            if digest.has_challenge:
                headers["Authorization"] = digest.authorization("GET", URL(url).raw_path_qs)
            elif username:
                headers["Authorization"] = basic_authorization(username, password)
            try:
                async with http.get(target, headers=headers) as response:
                    if response.status == 401:
                        await response.read()
                        if (not digest.has_challenge and username
                                and digest.accept_challenge(response.headers.get("WWW-Authenticate", ""))):
                            continue
                        raise TransferFailed(9012, "file server refused the credentials")
                    if response.status != 200:
                        raise TransferFailed(9016, f"file server answered HTTP {response.status}")
                    data = await response.read()
            except aiohttp.ClientConnectorError as exc:
                raise TransferFailed(9015, f"cannot reach the file server: {exc}") from exc
            except (aiohttp.ClientError, OSError, TimeoutError) as exc:
                raise TransferFailed(9017, f"download interrupted: {exc}") from exc
            if expected_size and len(data) != expected_size:
                raise TransferFailed(9017, f"got {len(data)} bytes, FileSize says {expected_size}")
            return data
    raise TransferFailed(9012, "file server refused the credentials")

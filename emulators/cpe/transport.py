"""HTTP side of a CPE: one keep-alive connection per CWMP session to the ACS (cookies and
Basic/Digest per the quirks), and file downloads (Basic preemptively, Digest on challenge).

HTTPS URLs are verified against the CPE's configured CA file (None: the system's trust store)
and the URL's host name, unless the ``skip_certificate_check`` quirk is on (many CPEs in the
field: whoever answers as the ACS or the file server is believed).

``link(url) -> (host, port)`` lets the harness route a device through its link proxy; the URL's
own host stays in the Host header.
"""

from __future__ import annotations

import functools
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from http.cookies import CookieError, SimpleCookie

import aiohttp
from yarl import URL

from otaharness.protocols.cwmp import Envelope, parse_envelope
from otaharness.protocols.http_digest import DigestClient, basic_authorization, is_stale
from otaharness.runtime.pki import client_context, tls_failure_reason

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
    quirks: Quirks
    cookie_header: str = ""
    digest: DigestClient = field(init=False)

    def __post_init__(self) -> None:
        self.digest = DigestClient(self.username, self.password,
                                   fixed_nc=self.quirks.fixed_nonce_count)

    def authorization(self, method: str, path: str) -> str | None:
        if self.quirks.preemptive_basic:
            return basic_authorization(self.username, self.password)
        if self.digest.has_challenge:
            return self.digest.authorization(method, path)
        return None

    def take_challenge(self, www_authenticate: str) -> bool:
        """Answer a 401's Digest challenge next time; False when we will not (then the ACS
        refused us). cwmp-sim keeps the nonce it has unless told it is stale."""
        if (self.quirks.fixed_nonce_count and self.digest.has_challenge
                and not is_stale(www_authenticate)):
            return False
        return self.digest.accept_challenge(www_authenticate)

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


@functools.lru_cache(maxsize=64)
def tls_context(ca_file: str | None, verify: bool = True,
                keylog: str | None = None) -> ssl.SSLContext:
    """The CPE's TLS client context (shared by CPEs configured alike): verifying the server
    against ``ca_file`` and the host name, or, ``verify`` off, believing any certificate."""
    if verify:
        return client_context(ca_file, keylog=keylog)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    if keylog is not None:
        context.keylog_filename = keylog
    return context


async def _dial(url: str, link: Link | None,
                tls: ssl.SSLContext | None) -> tuple[str, dict[str, object]]:
    """The URL to connect to and the request options: the Host header when ``link`` reroutes
    it, and for HTTPS the TLS context and the host name the certificate must carry."""
    parsed = URL(url)
    options: dict[str, object] = {}
    if parsed.scheme == "https":
        options["ssl"] = tls if tls is not None else tls_context(None)
        options["server_hostname"] = parsed.raw_host
    if link is None:
        return url, options
    host, port = await link(url)
    options["headers"] = {"Host": parsed.raw_authority}
    return str(parsed.with_host(host).with_port(port)), options


def _host_port(url: str) -> str:
    """``host:port`` of a URL for messages (never its user information)."""
    parsed = URL(url)
    return f"{parsed.raw_host}:{parsed.port}"


class AcsSession:
    """One CWMP session's HTTP connection (kept alive; ``limit=1`` keeps it one socket)."""

    def __init__(self, acs_url: str, credentials: Credentials, bind_address: str | None,
                 link: Link | None, tls: ssl.SSLContext | None = None) -> None:
        self.acs_url = acs_url
        self.credentials = credentials
        self.link = link
        self.tls = tls
        connector = aiohttp.TCPConnector(limit=1, local_addr=(bind_address, 0) if bind_address
                                         else None)
        self.http = aiohttp.ClientSession(connector=connector,
                                          cookie_jar=aiohttp.DummyCookieJar(),
                                          timeout=aiohttp.ClientTimeout(total=60))

    async def close(self) -> None:
        await self.http.close()

    async def post(self, body: bytes) -> Envelope | None:
        """POST ``body`` (b"" = the empty POST); the ACS's envelope, or None for an empty reply."""
        url, options = await _dial(self.acs_url, self.link, self.tls)
        extra = options.pop("headers", {})
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
                async with self.http.post(url, data=body, headers=headers,
                                          **options) as response:
                    data = await response.read()
                    self.credentials.remember_cookies(response.headers.getall("Set-Cookie", []))
                    if response.status == 401 and not self.credentials.quirks.preemptive_basic:
                        challenge = response.headers.get("WWW-Authenticate", "")
                        if self.credentials.take_challenge(challenge):
                            continue
                    if response.status in (200, 204) and not data.strip():
                        return None
                    if response.status in (200, 500) and data.strip():
                        return parse_envelope(data)
                    raise SessionFailed(f"ACS answered HTTP {response.status}")
            except aiohttp.ClientConnectorCertificateError as exc:
                # The ACS as the URL names it: the error's own host and port are the local
                # proxy's under `emulate`, a port the user never typed.
                raise SessionFailed(f"ACS {_host_port(self.acs_url)} certificate refused: "
                                    f"{tls_failure_reason(exc.certificate_error)}") from exc
            except (aiohttp.ClientError, OSError, TimeoutError, ValueError) as exc:
                raise SessionFailed(f"{type(exc).__name__}: {exc}") from exc
        if not self.credentials.username:
            raise SessionFailed("ACS asks for credentials and this CPE has none")
        raise SessionFailed("ACS refused our credentials")


async def download(url: str, username: str, password: str, *, bind_address: str | None,
                   link: Link | None, tls: ssl.SSLContext | None = None,
                   expected_size: int = 0) -> bytes:
    """GET a file as TR-069 expects of a Download; failures carry the TransferComplete code."""
    if URL(url).scheme not in ("http", "https"):
        raise TransferFailed(9010, f"unsupported URL scheme in {url!r}")
    target, options = await _dial(url, link, tls)
    extra = options.pop("headers", {})
    digest = DigestClient(username, password)
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
                async with http.get(target, headers=headers, **options) as response:
                    if response.status == 401:
                        await response.read()
                        if (not digest.has_challenge and username
                                and digest.accept_challenge(response.headers.get("WWW-Authenticate", ""))):
                            continue
                        raise TransferFailed(9012, "file server refused the credentials")
                    if response.status != 200:
                        raise TransferFailed(9016, f"file server answered HTTP {response.status}")
                    data = await response.read()
            except aiohttp.ClientConnectorCertificateError as exc:
                # TR-069 Table 59: 9012 "File transfer server authentication failure".
                raise TransferFailed(9012, f"file server {_host_port(url)} certificate refused: "
                                     f"{tls_failure_reason(exc.certificate_error)}") from exc
            except aiohttp.ClientConnectorError as exc:
                raise TransferFailed(9015, f"cannot reach the file server: {exc}") from exc
            except (aiohttp.ClientError, OSError, TimeoutError) as exc:
                raise TransferFailed(9017, f"download interrupted: {exc}") from exc
            if expected_size and len(data) != expected_size:
                raise TransferFailed(9017, f"got {len(data)} bytes, FileSize says {expected_size}")
            return data
    raise TransferFailed(9012, "file server refused the credentials")

"""The gateway's REST client for the OLT API: a device-scoped token from client credentials
(refreshed on 401), JSON calls, and streamed blob downloads. Binds its source address when given
(runtime contract: the link proxy knows the device by it). Over HTTPS it verifies the server
against ``ssl_context`` (None: the system's trust store)."""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import urljoin, urlsplit

import aiohttp

TOKEN_PATH = "/v1/id/auth/realms/olt/protocol/openid-connect/token"


class OltApiError(Exception):
    """The API answered with a status the gateway cannot act on."""

    def __init__(self, status: int, text: str) -> None:
        super().__init__(f"HTTP {status}: {text[:300]}")
        self.status = status


class InstallationGone(OltApiError):
    """410 (or 404 on the firmware): the installation was canceled or finished elsewhere."""


class OltApiClient:
    def __init__(self, api_url: str, client_id: str, client_secret: str, *,
                 bind_address: str | None = None, ssl_context: ssl.SSLContext | None = None) -> None:
        self.api_url = api_url.rstrip("/")
        self.ssl_context = ssl_context
        self.client_id = client_id
        self.client_secret = client_secret
        self.bind_address = bind_address
        self._session: aiohttp.ClientSession | None = None
        self._token: str | None = None

    async def open(self) -> None:
        connector = aiohttp.TCPConnector(
            local_addr=(self.bind_address, 0) if self.bind_address else None, force_close=True,
            ssl=self.ssl_context if self.ssl_context is not None else True)
        self._session = aiohttp.ClientSession(connector=connector)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
        self._session = None
        self._token = None

    def url(self, link: str) -> str:
        """A link from the API, resolved against the API base this gateway was configured
        with: the link's own host may be unreachable from the device's network."""
        parts = urlsplit(link)
        path = parts.path + (f"?{parts.query}" if parts.query else "")
        return urljoin(self.api_url + "/", path.lstrip("/"))

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            raise RuntimeError("OltApiClient is not open")
        return self._session

    async def _authorization(self, renew: bool = False) -> dict[str, str]:
        if self._token is None or renew:
            form = {"grant_type": "client_credentials", "client_id": self.client_id,
                    "client_secret": self.client_secret}
            async with self.session.post(self.url(TOKEN_PATH), data=form) as response:
                body = await response.json(content_type=None)
                if response.status != 200:
                    raise OltApiError(response.status, str(body))
                self._token = body["access_token"]
        return {"Authorization": f"Bearer {self._token}"}

    @asynccontextmanager
    async def _send(self, method: str, path: str, **options: Any) -> AsyncIterator[aiohttp.ClientResponse]:
        headers = dict(options.pop("headers", {}))
        for renew in (False, True):
            headers.update(await self._authorization(renew))
            response = await self.session.request(method, self.url(path), headers=headers, **options)
            if response.status == 401 and not renew:
                response.release()
                continue  # expired token: fetch a new one, once
            try:
                yield response
            finally:
                response.release()
            return

    async def call(self, method: str, path: str, body: Any = None) -> Any:
        """A JSON call; returns the envelope's ``data``. 410 → InstallationGone."""
        async with self._send(method, path, json=body) as response:
            text = await response.text()
            if response.status == 410:
                raise InstallationGone(response.status, text)
            if response.status >= 400:
                raise OltApiError(response.status, text)
            return (await response.json(content_type=None))["data"]

    @asynccontextmanager
    async def download(self, link: str, headers: dict[str, str]) -> AsyncIterator[aiohttp.ClientResponse]:
        async with self._send("GET", link, headers=headers) as response:
            yield response

"""The operators' client for a back end's admin API (``otaharness serve`` prints its URL, CA and
bearer token): one ``requests`` session, the CA as the only trust, a failed call an
AssertionError naming it (the operators run in tests and benchmarks, which report it so)."""

from __future__ import annotations

from typing import Any

import requests


class AdminApi:
    def __init__(self, base_url: str, ca: str, token: str) -> None:
        self.base_url = base_url.rstrip("/")
        self.http = requests.Session()
        self.http.trust_env = False  # REQUESTS_CA_BUNDLE would replace our CA
        self.http.verify = ca
        self.http.headers["Authorization"] = f"Bearer {token}"

    def close(self) -> None:
        self.http.close()

    def call(self, method: str, path: str, **kwargs: Any) -> Any:
        return self.answer(method, path, **kwargs).json()

    def answer(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        response = self.http.request(method, self.base_url + path, timeout=60, **kwargs)
        if response.status_code >= 300:
            raise AssertionError(f"{method} {path}: {response.status_code} {response.text}")
        return response

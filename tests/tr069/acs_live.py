"""A live ACS on its own event loop in a thread (wall clock), for synchronous clients: schemathesis,
``requests``, hypothesis tests that send one request per example. ``call`` runs a function on the
server's loop (the SQLite connection belongs to that thread); ``snapshot`` is everything a
refused request must leave alone: the store's records and the state directory's files."""

from __future__ import annotations

import http.client
import json
import random
import socket
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from live_loop import LiveLoop
from otaharness.servers.tr069 import AcsConfig, AcsServer


# What the seeded ACS holds (see LiveAcs.seed).
DEVICE = "E48D8C-CHR-S1"
GROUP = "g"
FILE = "f.bin"
FILE_CONTENT = b"firmware " * 100


class WallClock:
    def epoch(self) -> float:
        return time.time()


class LiveAcs(LiveLoop):
    def __init__(self, state_dir: Path, config: AcsConfig | None = None) -> None:
        super().__init__("tr069-live-acs")
        self.state_dir = state_dir
        self.config = config
        self.server: AcsServer | None = None
        self.batch_id = 0

    async def serve(self) -> None:
        self.server = AcsServer(self.state_dir, WallClock(), random.Random(7), self.config)
        await self.server.start()
        self.seed()
        await self.serving()
        await self.server.stop()

    def seed(self) -> None:
        """A device (no Connection Request URL: requests to it end at once), a group holding
        it, a file, and a batch listing the device."""
        assert self.server is not None
        store, acs = self.server.store, self.server.acs
        store.save_device(DEVICE, oui="E48D8C", product_class="CHR", serial_number="S1",
                          manufacturer="MikroTik", software_version="1", parameters={},
                          last_inform=acs.now(), last_events=[], registered=acs.now())
        store.save_group(GROUP, devices=[DEVICE])
        store.save_file(FILE, FILE_CONTENT, file_type="1 Firmware Upgrade Image", oui="",
                        product_class="", version="2", uploaded=acs.now())
        self.batch_id = acs.create_batch({"group": GROUP, "original_version": "1", "file": FILE,
                                          "new_version": "2"})

    def ensure_seeded(self) -> None:
        """Put back what ``seed`` made and a request removed (call on the loop: ``call``)."""
        assert self.server is not None
        store = self.server.store
        if store.device(DEVICE) is None or store.group(GROUP) is None or store.file(FILE) is None:
            self.seed()
        elif store.batch(self.batch_id) is None:
            self.batch_id = self.server.acs.create_batch({
                "group": GROUP, "original_version": "1", "file": FILE, "new_version": "2"})

    @property
    def token(self) -> str:
        assert self.server is not None
        return self.server.admin_token

    def url(self, name: str) -> str:
        assert self.server is not None
        return self.server.endpoints()[name]

    def request(self, method: str, path: str, body: bytes | None = None, *,
                headers: dict[str, str] | None = None, json_body: Any = None,
                endpoint: str = "admin") -> tuple[int, Any]:
        """One request with ``path`` sent exactly as given (no client normalises dot segments
        or escapes); the answer's JSON, or its bytes when it is not JSON. Admin requests carry
        the admin token unless ``headers`` has an Authorization of its own."""
        headers = dict(headers or {})
        if endpoint == "admin":
            headers.setdefault("Authorization", f"Bearer {self.token}")
        if json_body is not None:
            body = json.dumps(json_body).encode()
        where = urlsplit(self.url(endpoint))
        connection = http.client.HTTPConnection(where.hostname, where.port, timeout=20)
        try:
            connection.request(method, path, body=body, headers=headers)
            response = connection.getresponse()
            data = response.read()
        finally:
            connection.close()
        if response.getheader("Content-Type", "").startswith("application/json"):
            return response.status, json.loads(data)
        return response.status, data

    def raw(self, request: bytes, endpoint: str = "admin") -> bytes:
        """Send ``request`` bytes as they are (headers that are not UTF-8, say), with the admin
        token after the request line when it goes to the admin API; the answer."""
        if endpoint == "admin" and b"\r\nauthorization:" not in request.lower():
            line, _, rest = request.partition(b"\r\n")
            request = line + b"\r\nAuthorization: Bearer " + self.token.encode() + b"\r\n" + rest
        where = urlsplit(self.url(endpoint))
        with socket.create_connection((where.hostname, where.port), timeout=20) as connection:
            connection.sendall(request)
            answer = b""
            while chunk := connection.recv(65536):
                answer += chunk
        return answer

    def snapshot(self) -> dict[str, Any]:
        return self.call(self._snapshot)

    def _snapshot(self) -> dict[str, Any]:
        assert self.server is not None
        store = self.server.store
        disk = {str(p.relative_to(self.state_dir)): p.stat().st_size if p.is_file() else None
                for p in self.state_dir.rglob("*") if not p.name.startswith("acs.sqlite3")}
        return {"files": store.files(), "groups": store.groups(), "devices": store.devices(),
                "batches": store.batches(), "batch_devices": store.batch_devices(),
                "tasks": store.tasks(), "disk": disk}

"""``serve --state-dir DIR`` with TLS keeps its CAs in ``DIR/pki``: a station certificate (and the
trust) issued by the first run still works against the server started again after ``kill -9``."""

from __future__ import annotations

import asyncio
import base64
import json
import ssl
import stat
from pathlib import Path

import aiohttp
from cryptography.hazmat.primitives import serialization
from served import Served

from otaharness.protocols.basics_station.eui import format_id6

STATION = 0x0016C001FF000001


def bearer(served: Served) -> dict[str, str]:
    return {"Authorization": f"Bearer {served.endpoints['tokens']['cups']}"}


async def issue_station_files(served: Served) -> dict[str, bytes]:
    """The station's home files (DER trust, certificate and SEC1 key) from the admin API."""
    station = f"{STATION:016X}"
    tls = ssl.create_default_context(cafile=served.endpoints["ca"])
    async with aiohttp.ClientSession() as session:
        async with session.put(f"{served.endpoints['cups']}/admin/stations/{station}",
                               json={"tcUri": "wss://lns.example:443"}, headers=bearer(served),
                               ssl=tls) as reply:
            assert reply.status in (200, 201), await reply.text()
        async with session.post(f"{served.endpoints['cups']}/admin/stations/{station}/credentials",
                                json={"auth": "certificate"}, headers=bearer(served),
                                ssl=tls) as reply:
            assert reply.status == 200, await reply.text()
            files = (await reply.json())["files"]
    return {name: base64.b64decode(content) for name, content in files.items()}


def station_tls(files: dict[str, bytes], folder: Path) -> ssl.SSLContext:
    """A client context as the station builds it from its home files."""
    folder.mkdir(mode=0o700)
    certificate, key = folder / "cups.crt.pem", folder / "cups.key.pem"
    certificate.write_text(ssl.DER_cert_to_PEM_cert(files["cups.crt"]))
    key.write_bytes(serialization.load_der_private_key(files["cups.key"], None).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))
    context = ssl.create_default_context(cadata=ssl.DER_cert_to_PEM_cert(files["cups.trust"]))
    context.load_cert_chain(certificate, key)
    return context


async def update_info(served: Served, tls: ssl.SSLContext) -> int:
    body = json.dumps({"router": format_id6(STATION), "cupsUri": served.endpoints["cups"],
                       "tcUri": "", "cupsCredCrc": 0, "tcCredCrc": 0, "station": "2.0.6",
                       "model": "linux", "package": "", "keys": []}).encode()
    async with aiohttp.ClientSession() as session:
        async with session.post(served.endpoints["cups"] + "/update-info", data=body,
                                ssl=tls) as reply:
            return reply.status


def test_a_station_certificate_from_the_first_run_works_after_kill_9(tmp_path: Path) -> None:
    state_dir = tmp_path / "state"
    first = Served("cups", state_dir)
    first.start()
    try:
        files = asyncio.run(issue_station_files(first))
        tls = station_tls(files, tmp_path / "station")
        assert asyncio.run(update_info(first, tls)) == 200
        first.kill9()
        first_log = first.log_text()
    finally:
        first.stop()

    kept = state_dir / "pki"
    assert stat.S_IMODE(kept.stat().st_mode) == 0o700
    keys = sorted(kept.glob("*.key"))
    assert [key.name for key in keys] == ["device-ca.key", "server-ca.key"]
    assert all(stat.S_IMODE(key.stat().st_mode) == 0o600 for key in keys)

    again = Served("cups", state_dir)
    again.start()
    try:
        # the same station files: its trust verifies the new run's server certificate, and the
        # server still accepts the certificate the first run issued
        assert asyncio.run(update_info(again, tls)) == 200
        assert asyncio.run(update_info(again, ssl.create_default_context(
            cadata=ssl.DER_cert_to_PEM_cert(files["cups.trust"])))) in (401, 403)
        logs = first_log + again.log_text()
    finally:
        again.stop()
    assert "PRIVATE KEY" not in logs
    for key in keys:  # no stored key's bytes in what the server logged
        body = "".join(key.read_text().splitlines()[1:-1])
        assert body[:40] not in logs

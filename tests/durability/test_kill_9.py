"""Every persisting server survives ``kill -9`` mid-write: ``serve FLOW --state-dir DIR`` is
killed (SIGKILL, the whole process group) while 8 clients write records through its API, then
started again on the same DIR. Everything it acknowledged (answered 2xx) is there, whole; anything
else it shows is whole too (never half a record or half a file). Judged from outside, through the
same APIs, as an operator would."""

from __future__ import annotations

import asyncio
import base64
import hashlib
from pathlib import Path

import aiohttp
import pytest
from served import Served, write_until_killed

KILL_AFTER = 60  # acknowledged writes before the kill; the other writers are mid-request then
FILE_SIZE = 96 * 1024


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def expect_2xx(reply: aiohttp.ClientResponse) -> None:
    if not 200 <= reply.status < 300:
        raise AssertionError(f"{reply.method} {reply.url.path}: {reply.status} {await reply.text()}")


@pytest.fixture
def state_dir(tmp_path: Path) -> Path:
    return tmp_path / "state"


def run_kill_and_restart(flow: str, state_dir: Path, write, check) -> None:
    """Write until killed, restart on the same state, ``check(served, session, acknowledged,
    first_endpoints)``."""
    served = Served(flow, state_dir)
    first = served.start()
    try:
        acknowledged = asyncio.run(write_until_killed(served, lambda session, n: write(served, session, n),
                                                      kill_after=KILL_AFTER))
    finally:
        served.stop()
    assert len(acknowledged) >= KILL_AFTER
    again = Served(flow, state_dir)
    again.start()
    try:
        async def verify() -> None:
            async with aiohttp.ClientSession() as session:
                await check(again, session, acknowledged, first)
        asyncio.run(verify())
    finally:
        again.stop()


def test_cups_registry(state_dir: Path) -> None:
    def station(number: int) -> str:
        return f"0016C001FF{number:06X}"

    async def write(served: Served, session: aiohttp.ClientSession, number: int) -> None:
        async with session.put(f"{served.endpoints['cups']}/admin/stations/{station(number)}",
                               json={"cupsUri": f"https://cups-{number}.example:443",
                                     "tcUri": f"wss://lns-{number}.example:443"},
                               headers=bearer(served.endpoints["tokens"]["cups"]), ssl=served.tls()) as reply:
            await expect_2xx(reply)

    async def check(served: Served, session: aiohttp.ClientSession, acknowledged: set[int], _first) -> None:
        for number in range(max(acknowledged) + 16):
            async with session.get(f"{served.endpoints['cups']}/admin/stations/{station(number)}",
                                   headers=bearer(served.endpoints["tokens"]["cups"]), ssl=served.tls()) as reply:
                if number in acknowledged:
                    assert reply.status == 200, (number, await reply.text())
                if reply.status == 200:
                    twin = await reply.json()
                    assert (twin["cupsUri"], twin["tcUri"]) == (
                        f"https://cups-{number}.example:443", f"wss://lns-{number}.example:443"), twin
                else:
                    assert reply.status == 404, (number, reply.status)

    run_kill_and_restart("cups", state_dir, write, check)


def test_tr069_groups_and_files(state_dir: Path) -> None:
    def content(number: int) -> bytes:
        return hashlib.sha256(str(number).encode()).digest() * (FILE_SIZE // 32)

    async def write(served: Served, session: aiohttp.ClientSession, number: int) -> None:
        admin, token = served.endpoints["admin"], served.endpoints["tokens"]["admin"]
        if number % 2:
            async with session.put(f"{admin}/files/fw-{number}.bin", data=content(number),
                                   headers=bearer(token), ssl=served.tls()) as reply:
                await expect_2xx(reply)
        else:
            async with session.put(f"{admin}/groups/g{number}",
                                   json={"oui": "001122", "product_class": f"pc-{number}", "devices": []},
                                   headers=bearer(token), ssl=served.tls()) as reply:
                await expect_2xx(reply)

    async def check(served: Served, session: aiohttp.ClientSession, acknowledged: set[int], _first) -> None:
        admin, token = served.endpoints["admin"], served.endpoints["tokens"]["admin"]
        async with session.get(f"{admin}/groups", headers=bearer(token), ssl=served.tls()) as reply:
            assert reply.status == 200
            groups = await reply.json()
        by_name = {group["name"]: group for group in groups}
        for number in (n for n in acknowledged if n % 2 == 0):
            assert by_name[f"g{number}"]["product_class"] == f"pc-{number}", by_name.get(f"g{number}")
        for name, group in by_name.items():
            assert group["product_class"] == f"pc-{name[1:]}" and group["oui"] == "001122", group
        for number in range(max(acknowledged) + 16):
            if number % 2 == 0:
                continue
            async with session.get(f"{admin}/files/fw-{number}.bin", headers=bearer(token),
                                   ssl=served.tls()) as reply:
                if number in acknowledged:
                    assert reply.status == 200, (number, reply.status)
                if reply.status != 200:
                    assert reply.status == 404, (number, reply.status)
                    continue
                listed = await reply.json()
            expected = content(number)
            assert (listed["size"], listed["md5"]) == (len(expected), hashlib.md5(expected).hexdigest()), listed
            async with session.get(f"{served.endpoints['files']}/fw-{number}.bin", ssl=served.tls()) as reply:
                assert reply.status == 200, (number, reply.status)
                assert await reply.read() == expected, f"fw-{number}.bin is not whole"

    run_kill_and_restart("tr069", state_dir, write, check)


def test_olt_firmwares(state_dir: Path) -> None:
    async def write(served: Served, session: aiohttp.ClientSession, number: int) -> None:
        async with session.post(f"{served.endpoints['olt']}/v1/firmwares",
                                json={"name": f"fw-{number}", "version": f"1.0.{number}"},
                                headers=bearer(served.endpoints["tokens"]["olt"]), ssl=served.tls()) as reply:
            await expect_2xx(reply)

    async def check(served: Served, session: aiohttp.ClientSession, acknowledged: set[int], first) -> None:
        # The first run's tenant signs in again with its client credentials.
        async with session.post(f"{served.endpoints['olt']}/v1/id/auth/realms/olt/protocol/openid-connect/token",
                                data={"grant_type": "client_credentials",
                                      "client_id": first["tokens"]["olt-client-id"],
                                      "client_secret": first["tokens"]["olt-client-secret"]},
                                ssl=served.tls()) as reply:
            assert reply.status == 200, await reply.text()
            token = (await reply.json())["access_token"]
        names: dict[str, str] = {}
        page = 0
        while True:
            async with session.get(f"{served.endpoints['olt']}/v1/firmwares", params={"page": page, "pageSize": 100},
                                   headers=bearer(token), ssl=served.tls()) as reply:
                assert reply.status == 200, await reply.text()
                body = await reply.json()
            names.update({item["name"]: item["version"] for item in body["data"]})
            if not body["data"] or len(names) >= body["meta"]["itemsTotal"]:
                break
            page += 1
        for number in acknowledged:
            assert names.get(f"fw-{number}") == f"1.0.{number}", number
        for name, version in names.items():
            assert version == f"1.0.{name.removeprefix('fw-')}", (name, version)

    run_kill_and_restart("olt", state_dir, write, check)


def test_fuota_campaigns(state_dir: Path) -> None:
    dev_eui, gen_app_key = "0004A30B001CF001", "2b7e151628aed2a6abf7158809cf4f3c"
    image = base64.b64encode(bytes(range(256)) * 8).decode()
    registered: set[str] = set()
    registering: list[asyncio.Lock] = []

    async def write(served: Served, session: aiohttp.ClientSession, number: int) -> None:
        if not registering:
            registering.append(asyncio.Lock())
        async with registering[0]:  # the device first, once
            if not registered:
                await register(served, session)
                registered.add(dev_eui)
        config = {"name": f"campaign-{number}", "firmware_version": number,
                  "devices": [{"dev_eui": dev_eui, "gen_app_key": gen_app_key}]}
        async with session.post(f"{served.endpoints['fuota']}/campaigns", json={"config": config, "image": image},
                                headers=bearer(served.endpoints["tokens"]["fuota"]), ssl=served.tls()) as reply:
            await expect_2xx(reply)

    async def register(served: Served, session: aiohttp.ClientSession) -> None:
        async with session.put(f"{served.endpoints['lorawan-app']}/api/devices/{dev_eui}",
                               json={"joinEui": "70B3D57ED0000001", "appKey": gen_app_key},
                               headers=bearer(served.endpoints["tokens"]["lorawan-app"]),
                               ssl=served.tls()) as reply:
            assert reply.status in (201, 409), await reply.text()

    async def check(served: Served, session: aiohttp.ClientSession, acknowledged: set[int], _first) -> None:
        async with session.get(f"{served.endpoints['fuota']}/campaigns",
                               headers=bearer(served.endpoints["tokens"]["fuota"]), ssl=served.tls()) as reply:
            assert reply.status == 200, await reply.text()
            campaigns = await reply.json()
        by_name = {campaign["name"]: campaign for campaign in campaigns}
        for number in acknowledged:
            assert f"campaign-{number}" in by_name, number
        for campaign in campaigns:  # every stored campaign reads back whole
            assert campaign["state"] != "unreadable" and sum(campaign["devices"].values()) == 1, campaign

    run_kill_and_restart("fuota", state_dir, write, check)

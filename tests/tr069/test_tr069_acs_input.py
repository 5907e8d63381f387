"""The ACS facing bad or hostile input: a SOAP fault or a 4xx, and it keeps serving others."""

from __future__ import annotations

import aiohttp
import pytest
from tr069_world import HOUR, RawCpe, World, booted, device_id, events_of, inform_bytes, rpc_bytes

from otaharness.protocols.cwmp import (
    CWMP_1_0, Envelope, Fault, GetRPCMethods, Header, build_envelope, parse_envelope)
from otaharness.servers.tr069 import AcsConfig
from otaharness.protocols.http_digest import DigestClient, basic_authorization

BILLION_LAUGHS = (b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
                  b'<!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">'
                  b'<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]>'
                  b'<lolz>&lol3;</lolz>')
XXE = (b'<?xml version="1.0"?><!DOCTYPE foo [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>'
       b'<soap-env:Envelope xmlns:soap-env="http://schemas.xmlsoap.org/soap/envelope/">'
       b'<soap-env:Body>&xxe;</soap-env:Body></soap-env:Envelope>')
BAD_INPUT = {
    "malformed XML": (b"<soap-env:Envelope xmlns:soap-env='x'><unclosed>", 400, None),
    "XXE": (XXE, 400, None),
    "entity expansion": (BILLION_LAUGHS, 400, None),
    "not SOAP": (b"<html><body>hello</body></html>", 400, None),
    "wrong namespace": (inform_bytes("X1").replace(CWMP_1_0.encode(), b"urn:example:not-cwmp"),
                        500, 8003),
    "unknown RPC": (rpc_bytes("<cwmp:FactoryResetEverything/>"), 500, 8000),
    "Inform without DeviceId": (rpc_bytes("<cwmp:Inform><Event/></cwmp:Inform>"), 500, 8003),
}


@pytest.mark.parametrize("name", BAD_INPUT)
def test_bad_input_gets_a_fault_or_4xx_and_others_are_still_served(run_world, name):
    body, expected_status, fault_code = BAD_INPUT[name]

    async def main(world: World) -> None:
        await world.start()
        attacker = RawCpe(world, "127.2.0.1")
        try:
            status, data, _ = await attacker.post(body, **{"Content-Type": "text/xml"})
        finally:
            await attacker.close()
        assert status == expected_status
        if fault_code is not None:
            fault = parse_envelope(data).body
            assert isinstance(fault, Fault) and fault.fault_code == fault_code
        cpe = await world.add_cpe("CHR0001")  # an honest CPE is still served
        await booted(world, cpe)
        assert world.acs.store.device(device_id(cpe)) is not None

    run_world(main)


def test_oversized_body_gets_413(run_world):
    async def main(world: World) -> None:
        await world.start(AcsConfig(max_body_bytes=64 * 1024))
        client = RawCpe(world, "127.2.0.1")
        try:
            padding = b"<!-- " + b"x" * 100_000 + b" -->"
            status, _, _ = await client.post(inform_bytes("BIG").replace(b"<soap-env:Body>",
                                                                         padding + b"<soap-env:Body>"))
            assert status == 413
            status, _, _ = await client.post(inform_bytes("SMALL"))
            assert status == 200
        finally:
            await client.close()

    run_world(main)


def test_only_post_is_allowed(run_world):
    async def main(world: World) -> None:
        await world.start()
        async with world.http.get(world.url("acs")) as response:
            assert response.status == 405

    run_world(main)


def test_another_cpes_session_cookie_is_refused_and_its_owner_goes_on(run_world):
    async def main(world: World) -> None:
        await world.start()
        owner, thief = RawCpe(world, "127.2.0.1"), RawCpe(world, "127.2.0.2")
        try:
            assert (await owner.post(inform_bytes("OWNER")))[0] == 200
            assert owner.cookie.startswith("session=")
            status, data, _ = await thief.post(b"", Cookie=owner.cookie)
            assert status == 403
            status, data, headers = await owner.post(b"")
            assert (status, data) == (204, b"")
            # Without cookie and Inform the thief has no session at all.
            assert (await thief.post(b""))[0] == 400
        finally:
            await owner.close()
            await thief.close()

    run_world(main)


def test_session_idle_timeout_and_maximum_duration(run_world):
    async def main(world: World) -> None:
        await world.start(AcsConfig(session_idle_timeout=30, max_session_duration=300))
        client = RawCpe(world, "127.2.0.1")
        try:
            assert (await client.post(inform_bytes("IDLE")))[0] == 200
            await world.clock.run_for(31)
            assert (await client.post(b""))[0] == 400  # the session expired
            assert (await client.post(inform_bytes("LONG")))[0] == 200
            ask = build_envelope(Envelope(body=GetRPCMethods(), header=Header(id="g")))
            for _ in range(10):  # busy but slow: 290 s of requests 29 s apart
                await world.clock.run_for(29)
                assert (await client.post(ask))[0] == 200
            await world.clock.run_for(29)
            status, data, headers = await client.post(ask)
            assert (status, data, headers.get("Connection")) == (204, b"", "close")
        finally:
            await client.close()

    run_world(main)


def test_digest_and_basic_authentication_of_cpes(run_world):
    async def main(world: World) -> None:
        await world.start(AcsConfig(auth_mode="digest", users={"cpe": "secret"}))
        client = RawCpe(world, "127.2.0.1")
        try:
            status, _, headers = await client.post(inform_bytes("AUTH"))
            assert status == 401 and headers["WWW-Authenticate"].startswith("Digest ")
            assert (await client.post(inform_bytes("AUTH"), Authorization=basic_authorization(
                "cpe", "secret")))[0] == 401  # Basic is not accepted in digest mode
            wrong = DigestClient("cpe", "guess")
            wrong.accept_challenge(headers["WWW-Authenticate"])
            path = aiohttp.client.URL(client.url).raw_path
            assert (await client.post(inform_bytes("AUTH"), Authorization=wrong.authorization(
                "POST", path)))[0] == 401
            right = DigestClient("cpe", "secret")
            right.accept_challenge(headers["WWW-Authenticate"])
            assert (await client.post(inform_bytes("AUTH"), Authorization=right.authorization(
                "POST", path)))[0] == 200
        finally:
            await client.close()
        cpe = await world.add_cpe("CHR0001", username="cpe", password="secret")
        await booted(world, cpe)

    run_world(main)


def test_connection_request_is_digest_authenticated(run_world):
    async def main(world: World) -> None:
        await world.start(AcsConfig(connection_request_username="acs",
                                    connection_request_password="cr-secret"))
        good = await world.add_cpe("CHR0001", connection_request_username="acs",
                                   connection_request_password="cr-secret")
        other = await world.add_cpe("CHR0002", connection_request_username="acs",
                                    connection_request_password="something else")
        await booted(world, good, other)
        assert await world.acs.acs.connection_request(device_id(good))
        assert not await world.acs.acs.connection_request(device_id(other))
        outcomes = [e["detail"]["outcome"] for e in events_of(world, other, "connection-request")]
        assert outcomes == ["HTTP 401"]
        assert await world.run_until(lambda: ("6 CONNECTION REQUEST",) in good.informs, HOUR)
        assert ("6 CONNECTION REQUEST",) not in other.informs

    run_world(main)

"""The ACS's CWMP endpoint facing malformed, deeply nested, oversized or otherwise odd SOAP: the
protocol's answer every time — HTTP 400 for what is not a SOAP message, 413 beyond
``max_body_bytes``, a SOAP Fault (8000/8003, HTTP 500 per SOAP 1.1) for CWMP it cannot take —
never a bare server error or a dropped connection, and other CPEs are served as before."""

from __future__ import annotations

import asyncio
import re
import tempfile
from pathlib import Path

import pytest
import requests
from acs_live import LiveAcs
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tr069_world import RawCpe, World, booted, device_id, inform_bytes, rpc_bytes

from otaharness.protocols.cwmp import (
    CWMP_1_0,
    CWMP_1_1,
    AutonomousTransferCompleteResponse,
    CwmpError,
    Fault,
    InformResponse,
    parse_envelope,
)
from otaharness.servers.tr069 import AcsConfig

TIMES = "<StartTime>2026-01-05T00:00:00Z</StartTime><CompleteTime>2026-01-05T00:01:00Z</CompleteTime>"
ATC = ("<cwmp:AutonomousTransferComplete><AnnounceURL/><TransferURL>http://files/x</TransferURL>"
       "<IsDownload>1</IsDownload><FileType>1 Firmware Upgrade Image</FileType>"
       "<FileSize>10</FileSize><TargetFileName>x</TargetFileName><FaultStruct><FaultCode>0"
       f"</FaultCode><FaultString/></FaultStruct>{TIMES}</cwmp:AutonomousTransferComplete>")


def nested(depth: int) -> bytes:
    return rpc_bytes("<a>" * depth + "</a>" * depth)


# In a session (after an Inform): (body, HTTP status, fault code or None).
HOSTILE = {
    "20000 levels deep": (nested(20_000), 400, None),
    "33 levels deep": (nested(31), 400, None),  # Envelope, Body and 31
    "250000 elements": (rpc_bytes("<a/>" * 250_000), 400, None),
    "not UTF-8": (rpc_bytes("<cwmp:GetRPCMethods/>").replace(b"GetRPCMethods/", b"Get\xff\xfe/"),
                  400, None),
    "5000-digit integer": (rpc_bytes(f"<cwmp:TransferComplete><CommandKey>k</CommandKey><FaultStruct>"
                                     f"<FaultCode>{'9' * 5000}</FaultCode><FaultString/></FaultStruct>"
                                     f"{TIMES}</cwmp:TransferComplete>"), 500, 8003),
    "AutonomousTransferComplete in cwmp-1-0": (rpc_bytes(ATC), 500, 8003),
    "10000-character unknown RPC": (rpc_bytes(f"<cwmp:{'X' * 10_000}/>"), 500, 8000),
    "100000-character name": (rpc_bytes(f"<cwmp:{'X' * 100_000}/>"), 400, None),  # libxml2's cap
    "header that must be understood": (
        rpc_bytes("<cwmp:GetRPCMethods/>").replace(
            b"<soap-env:Body>", b'<soap-env:Header><x:Y xmlns:x="urn:x" '
                                b'soap-env:mustUnderstand="1"/></soap-env:Header><soap-env:Body>'),
        500, 8003),
    "DTD": (b'<!DOCTYPE x [<!ENTITY a "b">]>' + rpc_bytes("<cwmp:GetRPCMethods/>"), 400, None),
}


@pytest.mark.parametrize("name", HOSTILE)
def test_hostile_soap_in_a_session_gets_the_protocols_answer(run_world, name):
    body, expected_status, fault_code = HOSTILE[name]

    async def main(world: World) -> None:
        await world.start()
        client = RawCpe(world, "127.2.0.1")
        try:
            assert (await client.post(inform_bytes("HOSTILE")))[0] == 200
            status, data, _ = await client.post(body)
            assert status == expected_status, data[:200]
            if fault_code is not None:
                fault = parse_envelope(data).body
                assert isinstance(fault, Fault) and fault.fault_code == fault_code
                assert len(fault.fault_string) <= 1024
            assert (await client.post(b""))[0] == 204  # the session goes on and ends cleanly
        finally:
            await client.close()
        cpe = await world.add_cpe("CHR0001")  # an honest CPE is still served
        await booted(world, cpe)
        assert world.acs.store.device(device_id(cpe)) is not None

    run_world(main)


def test_autonomous_transfer_complete_is_answered_in_cwmp_1_1(run_world):
    """The positive control of the namespace rule: from cwmp-1-1 on, it is a request."""
    async def main(world: World) -> None:
        await world.start()
        client = RawCpe(world, "127.2.0.1")
        try:
            assert (await client.post(inform_bytes("ATC", CWMP_1_1)))[0] == 200
            status, data, _ = await client.post(rpc_bytes(ATC, CWMP_1_1))
            assert status == 200
            assert isinstance(parse_envelope(data).body, AutonomousTransferCompleteResponse)
        finally:
            await client.close()

    run_world(main)


async def _raw_exchange(port: int, request: bytes) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(request)
        await writer.drain()
        return await reader.readuntil(b"\r\n\r\n")
    finally:
        writer.close()


def test_digest_header_that_is_not_utf8_is_a_401(run_world):
    """A known user name and an issued nonce used to reach the MD5 with the header's text: a
    byte that is not UTF-8 (a surrogate escape in Python) made it raise, a 500."""
    async def main(world: World) -> None:
        await world.start(AcsConfig(auth_mode="digest", users={"cpe": "secret"}))
        port = world.acs.ports["acs"]
        challenge = await _raw_exchange(port, b"POST / HTTP/1.1\r\nHost: acs\r\nContent-Length: 0\r\n\r\n")
        nonce = re.search(rb'nonce="([0-9a-f]+)"', challenge).group(1)
        for field in (b'cnonce="\xff\xfe"', b'uri="/\xc3"', b'username="cpe\xff"'):
            authorization = (b'Authorization: Digest username="cpe", realm="otaharness ACS", nonce="'
                             + nonce + b'", uri="/", response="0", qop=auth, nc=00000001, '
                             b'cnonce="c", ' + field + b"\r\n")
            head = await _raw_exchange(port, b"POST / HTTP/1.1\r\nHost: acs\r\n" + authorization
                                       + b"Content-Length: 0\r\n\r\n")
            assert head.startswith(b"HTTP/1.1 401 "), head[:80]

    run_world(main)


# -- any bytes at all, from a live ACS ------------------------------------------------------------
@pytest.fixture(scope="module")
def live_acs():
    with tempfile.TemporaryDirectory() as directory:
        server = LiveAcs(Path(directory) / "acs").start_and_wait()
        yield server
        server.stop()


def test_oversized_bodies_get_413_and_the_client_goes_on(live_acs):
    """Beyond max_body_bytes (1 MiB): 413 whether the length is announced or the body is
    chunked, read far enough for the client to get its answer (no reset while it still sends),
    and the same keep-alive connection goes on. On the wall clock: aiohttp drains the rest of a
    refused body for a while, which a virtual clock's shutdown would wait for."""
    url = live_acs.url("acs")

    def chunks():
        for _ in range(400):
            yield b"<a>" + b"x" * 50_000 + b"</a>"

    with requests.Session() as cpe:
        for body in (b"<x>" + b"a" * 50_000_000 + b"</x>", chunks()):
            response = cpe.post(url, data=body, timeout=30)
            assert response.status_code == 413, response.text[:200]
        response = cpe.post(url, data=inform_bytes("AFTER-413"), timeout=30)
        assert response.status_code == 200
        assert isinstance(parse_envelope(response.content).body, InformResponse)


VALID = [inform_bytes("FUZZ"), inform_bytes("FUZZ11", CWMP_1_1), rpc_bytes(ATC, CWMP_1_1),
         rpc_bytes("<cwmp:GetRPCMethods/>"),
         rpc_bytes(f"<cwmp:TransferComplete><CommandKey>otaharness-1</CommandKey><FaultStruct>"
                   f"<FaultCode>0</FaultCode><FaultString/></FaultStruct>{TIMES}"
                   f"</cwmp:TransferComplete>"),
         rpc_bytes("<cwmp:DownloadResponse><Status>1</Status>"
                   f"{TIMES}</cwmp:DownloadResponse>"),
         rpc_bytes("<soap-env:Fault><faultcode>Client</faultcode><faultstring>CWMP fault"
                   "</faultstring><detail><cwmp:Fault><FaultCode>9010</FaultCode><FaultString>x"
                   "</FaultString></cwmp:Fault></detail></soap-env:Fault>")]
TEXT_PIECES = st.one_of(
    st.sampled_from([b"9" * 40, b"9" * 5000, b"-" + b"1" * 4400]),  # numbers no CWMP type holds
    st.sampled_from([b"", b"-1", b"&amp;", b"&lt;x&gt;", b"<a>", b"\xff", b"\xc3", b"\x00", b"&#0;",
                     b"&#xD800;", b"]]>", b"<!--", b"<?x?>", b'"', b"urn:dslforum-org:cwmp-1-2",
                     b"1 BOOT", b"true"]))
NAMESPACES = [CWMP_1_0.encode(), CWMP_1_1.encode(), b"urn:dslforum-org:cwmp-1-2",
              b"urn:dslforum-org:cwmp-1-3", b"urn:example"]


@st.composite
def mutated(draw) -> bytes:
    data = bytearray(draw(st.sampled_from(VALID)))
    for _ in range(draw(st.integers(1, 2))):
        where = draw(st.integers(0, len(data)))
        kind = draw(st.sampled_from(["insert", "delete", "replace", "truncate", "text", "text",
                                     "namespace"]))
        if kind == "insert":
            data[where:where] = draw(st.binary(min_size=1, max_size=8))
        elif kind == "delete":
            del data[where:where + draw(st.integers(1, 40))]
        elif kind == "replace":
            data[where:where + 1] = draw(st.binary(min_size=1, max_size=1))
        elif kind == "truncate":
            del data[where:]
        elif kind == "namespace":  # the message in another CWMP version, or in none
            data = bytearray(re.sub(rb"urn:dslforum-org:cwmp-1-\d",
                                    draw(st.sampled_from(NAMESPACES)), bytes(data)))
        else:  # a text node's content
            closers = [m.start() for m in re.finditer(rb"</", data)]
            if closers:
                at = draw(st.sampled_from(closers))
                start = data.rfind(b">", 0, at) + 1
                data[start:at] = draw(TEXT_PIECES)
    return bytes(data)


def is_protocol_answer(status: int, data: bytes) -> bool:
    if status in (200, 204, 400, 403, 413):
        return True
    if status != 500:
        return False
    try:
        fault = parse_envelope(data).body
    except CwmpError:
        return False  # a 500 must carry a SOAP Fault
    return isinstance(fault, Fault) and 8000 <= fault.fault_code <= 8005


@given(body=st.one_of(st.binary(max_size=3000), mutated(), mutated(), mutated()))
@settings(max_examples=200, deadline=None, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
def test_any_body_gets_the_protocols_answer_and_others_are_served(live_acs, body):
    url = live_acs.url("acs")
    with requests.Session() as cpe:  # its own connection: an Inform, then the body
        assert cpe.post(url, data=inform_bytes("SESSION"), timeout=10).status_code == 200
        response = cpe.post(url, data=body, timeout=10)
        assert is_protocol_answer(response.status_code, response.content), (
            response.status_code, response.content[:300])
    honest = requests.post(url, data=inform_bytes("HONEST"), timeout=10)
    assert honest.status_code == 200 and isinstance(parse_envelope(honest.content).body,
                                                    InformResponse)

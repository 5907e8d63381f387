"""TR-069 security from a client's side: Digest replays, stale nonces and reused nonce counts,
sessions that cannot mix, HTTPS (a CPE refusing an ACS whose certificate is from another CA),
and the admin API's bearer token. Every refusal is judged from what the client got back and
what the ACS stored."""

from __future__ import annotations

import random
import re

import aiohttp
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tr069_world import HOUR, RawCpe, World, booted, device_id, events_of, inform_bytes, rpc_bytes
from yarl import URL

from otaharness.emulators.cpe.quirks import Quirks
from otaharness.protocols.cwmp import CWMP_1_0, CWMP_1_2, Fault, parse_envelope
from otaharness.protocols.http_digest import (
    AuthError, DigestClient, DigestVerifier, ServerAuth, basic_authorization, digest_response,
    is_stale, parse_auth_params, redacted)
from otaharness.runtime.pki import LOCAL_NAMES, Pki
from otaharness.servers.tr069 import AcsConfig, AcsServer

DIGEST = AcsConfig(auth_mode="digest", users={"cpe": "secret"}, nonce_lifetime=300)


@pytest.fixture
def pki(tmp_path):
    pki = Pki(tmp_path / "pki")
    yield pki
    pki.close()


# --- the Digest module on its own -------------------------------------------------------------
def test_digest_response_rfc_2617_example():
    # RFC 2617 §3.5
    assert digest_response(username="Mufasa", password="Circle Of Life", realm="testrealm@host.com",
                           method="GET", uri="/dir/index.html",
                           nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093", nc="00000001",
                           cnonce="0a4f113b") == "6629fae49393a05397450978507c4ef1"


def test_digest_response_rfc_7616_md5_example():
    # RFC 7616 §3.9.1 (MD5 variant)
    assert digest_response(
        username="Mufasa", password="Circle of Life", realm="http-auth@example.org",
        method="GET", uri="/dir/index.html", nonce="7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v",
        nc="00000001", cnonce="f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ",
    ) == "8ca523f5e9506fed4657c9700eebdbec"


def test_auth_parameters_keep_quoted_commas_and_refuse_garbage():
    params = parse_auth_params('realm="a, b", qop="auth,auth-int", nonce=abc, stale=true')
    assert params == {"realm": "a, b", "qop": "auth,auth-int", "nonce": "abc", "stale": "true"}
    with pytest.raises(AuthError):
        parse_auth_params('realm="a", ,,=')


class FakeTime:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_a_replayed_header_is_refused_and_a_rising_count_accepted():
    verifier = DigestVerifier("realm")
    client = DigestClient("cpe", "pw")
    client.accept_challenge(verifier.challenge())
    passwords = {"cpe": "pw"}.get
    first = client.authorization("POST", "/")
    assert verifier.verify(first, "POST", "/", passwords).accepted
    replay = verifier.verify(first, "POST", "/", passwords)
    assert (replay.username, replay.count_reused, replay.accepted) == ("cpe", True, False)
    assert verifier.verify(client.authorization("POST", "/"), "POST", "/", passwords).accepted


def test_a_constant_nonce_count_is_told_apart_and_accepted_only_when_not_strict():
    passwords = {"cpe": "pw"}.get
    for strict in (True, False):
        verifier = DigestVerifier("realm", strict_nc=strict)
        client = DigestClient("cpe", "pw", fixed_nc=True)  # cwmp-sim
        client.accept_challenge(verifier.challenge())
        assert verifier.verify(client.authorization("POST", "/"), "POST", "/", passwords).accepted
        again = verifier.verify(client.authorization("POST", "/"), "POST", "/", passwords)
        assert again.accepted is (not strict) and again.count_reused is strict


def test_an_expired_or_unknown_nonce_is_stale_only_with_the_right_password():
    clock = FakeTime()
    verifier = DigestVerifier("realm", clock, nonce_lifetime=300)
    passwords = {"cpe": "pw"}.get
    client = DigestClient("cpe", "pw")
    client.accept_challenge(verifier.challenge())
    clock.now = 299
    assert verifier.verify(client.authorization("POST", "/"), "POST", "/", passwords).accepted
    clock.now = 301
    expired = verifier.verify(client.authorization("POST", "/"), "POST", "/", passwords)
    assert (expired.username, expired.stale, expired.accepted) == ("cpe", True, False)
    stranger = DigestClient("cpe", "pw")
    stranger.accept_challenge('Digest realm="realm", qop="auth", nonce="never-issued"')
    assert verifier.verify(stranger.authorization("POST", "/"), "POST", "/", passwords).stale
    guesser = DigestClient("cpe", "guess")
    guesser.accept_challenge('Digest realm="realm", qop="auth", nonce="never-issued"')
    assert verifier.verify(guesser.authorization("POST", "/"), "POST", "/", passwords).username is None


def test_wrong_password_method_uri_and_missing_qop_are_refused():
    verifier = DigestVerifier("realm")
    passwords = {"cpe": "pw"}.get
    challenge = verifier.challenge()
    wrong = DigestClient("cpe", "nope")
    wrong.accept_challenge(challenge)
    assert verifier.verify(wrong.authorization("POST", "/"), "POST", "/", passwords).username is None
    right = DigestClient("cpe", "pw")
    right.accept_challenge(challenge)
    assert verifier.verify(right.authorization("GET", "/"), "POST", "/", passwords).username is None
    assert verifier.verify(right.authorization("POST", "/a"), "POST", "/", passwords).username is None
    legacy = DigestClient("cpe", "pw")  # RFC 2069: no qop, so no nonce count to check
    legacy.accept_challenge(challenge.replace('qop="auth", ', ""))
    assert verifier.verify(legacy.authorization("POST", "/"), "POST", "/", passwords).username is None


def test_nonces_do_not_depend_on_any_seed():
    nonces = {parse_auth_params(DigestVerifier("realm").challenge()[len("Digest "):])["nonce"]
              for _ in range(50)}
    assert len(nonces) == 50 and all(re.fullmatch(r"[0-9a-f]{32}", n) for n in nonces)


def test_remembered_nonces_are_bounded():
    verifier = DigestVerifier("realm", max_nonces=3)
    client = DigestClient("cpe", "pw")
    client.accept_challenge(verifier.challenge())
    for _ in range(3):
        verifier.challenge()
    # The first nonce was forgotten: the right password gets a stale=true re-challenge.
    assert verifier.verify(client.authorization("POST", "/"), "POST", "/", {"cpe": "pw"}.get).stale


def test_server_auth_modes():
    users = {"u": "p"}
    basic = basic_authorization("u", "p")
    assert ServerAuth("none", "r", users).check(None, "POST", "/").user == ""
    assert ServerAuth("basic", "r", users).check(basic, "POST", "/").user == "u"
    assert ServerAuth("digest", "r", users).check(basic, "POST", "/").user is None
    assert ServerAuth("any", "r", users).check(basic, "POST", "/").user == "u"
    assert ServerAuth("any", "r", users).check(
        basic_authorization("u", "x"), "POST", "/").user is None
    assert ServerAuth("basic", "r", users).check("Basic !!!", "POST", "/").user is None
    assert is_stale(ServerAuth("digest", "r", users).challenge(stale=True))
    with pytest.raises(ValueError, match="auth mode"):
        ServerAuth("kerberos", "r", users)


def test_logged_headers_never_show_a_digest_response_or_basic_credentials():
    client = DigestClient("cpe", "pw")
    client.accept_challenge(DigestVerifier("realm").challenge())
    header = client.authorization("POST", "/")
    response = parse_auth_params(header[len("Digest "):])["response"]
    assert response not in redacted(header) and response[:4] in redacted(header)
    basic = basic_authorization("cpe", "pw")
    assert basic.split()[1] not in redacted(basic)


# --- Digest at the ACS, from a client's side ----------------------------------------------------
def _answer(client: DigestClient, headers) -> str:
    assert client.accept_challenge(headers["WWW-Authenticate"])
    return client.authorization("POST", "/")


def test_a_captured_digest_header_replayed_on_a_forged_inform_registers_nothing(run_world):
    async def main(world: World) -> None:
        await world.start(DIGEST)
        honest, attacker = RawCpe(world, "127.2.0.1"), RawCpe(world, "127.2.0.66")
        try:
            _, _, headers = await honest.post(inform_bytes("HONEST"))
            captured = _answer(DigestClient("cpe", "secret"), headers)
            assert (await honest.post(inform_bytes("HONEST"), Authorization=captured))[0] == 200
            await world.clock.run_for(60)  # within the nonce's lifetime
            status, _, headers = await attacker.post(inform_bytes("FORGED"), Authorization=captured)
            assert status == 401 and not is_stale(headers["WWW-Authenticate"])
        finally:
            await honest.close()
            await attacker.close()
        assert world.acs.store.device("E48D8C-CHR-FORGED") is None
        assert world.acs.store.device("E48D8C-CHR-HONEST") is not None

    run_world(main)


def test_a_stale_nonce_gets_a_stale_challenge_and_the_next_nonce_works(run_world):
    async def main(world: World) -> None:
        await world.start(DIGEST)
        client, digest = RawCpe(world, "127.2.0.1"), DigestClient("cpe", "secret")
        try:
            _, _, headers = await client.post(inform_bytes("SLOW"))
            digest.accept_challenge(headers["WWW-Authenticate"])
            await world.clock.run_for(301)
            status, _, headers = await client.post(
                inform_bytes("SLOW"), Authorization=digest.authorization("POST", "/"))
            assert status == 401 and is_stale(headers["WWW-Authenticate"])
            assert world.acs.store.device("E48D8C-CHR-SLOW") is None
            status, _, _ = await client.post(inform_bytes("SLOW"),
                                             Authorization=_answer(digest, headers))
            assert status == 200
        finally:
            await client.close()

    run_world(main)


async def _inform_then_empty_post_with_the_same_count(world: World, serial: str) -> int:
    client, digest = RawCpe(world, "127.2.0.1"), DigestClient("cpe", "secret", fixed_nc=True)
    try:
        _, _, headers = await client.post(inform_bytes(serial))
        assert (await client.post(inform_bytes(serial),
                                  Authorization=_answer(digest, headers)))[0] == 200
        status, _, _ = await client.post(b"", Authorization=digest.authorization("POST", "/"))
        return status
    finally:
        await client.close()


@pytest.mark.parametrize("allowance, serial, allowed", [
    ((), "CWMPSIM1", False),
    (("serial:CWMPSIM*",), "CWMPSIM1", True),
    (("serial:CWMPSIM*",), "OTHER1", False),
    (("oui:E48D8C",), "OTHER1", True),
    (("oui:00D09E",), "OTHER1", False),
])
def test_a_reused_nonce_count_passes_only_for_allowed_devices(run_world, allowance, serial,
                                                              allowed):
    async def main(world: World) -> int:
        await world.start(AcsConfig(auth_mode="digest", users={"cpe": "secret"},
                                    nc_reuse_devices=allowance))
        return await _inform_then_empty_post_with_the_same_count(world, serial)

    assert run_world(main) == (204 if allowed else 401)


def test_cwmp_sim_without_the_allowance_is_refused_mid_session(run_world):
    """The Download test of test_tr069_quirks.py passes through the allowance; without it the
    same CPE cannot finish a session (it keeps its nonce, as cwmp-sim does)."""

    async def main(world: World) -> None:
        await world.start(AcsConfig(auth_mode="digest", users={"cpe": "secret"}))
        cpe = await world.add_cpe("CHR0001", quirks=Quirks(fixed_nonce_count=True),
                                  username="cpe", password="secret")
        await world.clock.run_for(600)
        assert cpe.sessions_completed == 0
        assert "HTTP 401" in cpe.last_session_error

    run_world(main)


# --- sessions that cannot mix -------------------------------------------------------------------
def test_an_empty_post_on_a_new_connection_touches_no_other_session(run_world):
    async def main(world: World) -> None:
        await world.start()
        owner, stranger = RawCpe(world, "127.2.0.1"), RawCpe(world, "127.2.0.1")  # same host
        try:
            assert (await owner.post(inform_bytes("OWNER")))[0] == 200
            owner.cookie = ""  # a cookieless CPE: its session is its connection
            (session,) = world.acs.cwmp.sessions.values()
            status, data, _ = await stranger.post(b"")
            assert status == 400 and b"no CWMP session" in data
            assert list(world.acs.cwmp.sessions.values()) == [session] and not session.ended
            status, data, _ = await owner.post(b"")
            assert (status, data) == (204, b"")
        finally:
            await owner.close()
            await stranger.close()
        ends = [e["detail"]["reason"] for e in world.acs.store.events("E48D8C-CHR-OWNER")
                if e["kind"] == "session-end"]
        assert ends == ["done"] and not world.acs.cwmp.sessions

    run_world(main)


def test_a_fault_is_answered_in_its_own_sessions_namespace(run_world):
    async def main(world: World) -> None:
        await world.start()
        old, new = RawCpe(world, "127.2.0.1"), RawCpe(world, "127.2.0.1")
        stranger = RawCpe(world, "127.2.0.1")  # same host, no session
        try:
            assert (await old.post(inform_bytes("OLD", CWMP_1_0)))[0] == 200
            assert (await new.post(inform_bytes("NEW", CWMP_1_2)))[0] == 200
            old.cookie = new.cookie = ""
            for client, namespace in ((new, CWMP_1_2), (old, CWMP_1_0), (stranger, CWMP_1_0)):
                status, data, _ = await client.post(rpc_bytes("<cwmp:FactoryResetEverything/>",
                                                              namespace))
                reply = parse_envelope(data)
                assert status == 500 and isinstance(reply.body, Fault)
                assert reply.namespace == namespace
        finally:
            for client in (old, new, stranger):
                await client.close()

    run_world(main)


def test_ended_sessions_are_summarised_and_dropped(run_world):
    async def main(world: World) -> None:
        await world.start(AcsConfig(max_sessions=2))
        clients = [RawCpe(world, f"127.2.0.{n}") for n in range(1, 4)]
        try:
            assert (await clients[0].post(inform_bytes("A")))[0] == 200
            assert (await clients[1].post(inform_bytes("B")))[0] == 200
            status, _, headers = await clients[2].post(inform_bytes("C"))
            assert status == 503 and headers["Retry-After"]
            assert world.acs.store.device("E48D8C-CHR-C") is None
            assert (await clients[0].post(b""))[0] == 204
            assert len(world.acs.cwmp.sessions) == 1
            assert (await clients[2].post(inform_bytes("C")))[0] == 200
        finally:
            for client in clients:
                await client.close()
        (end,) = [e for e in world.acs.store.events("E48D8C-CHR-A") if e["kind"] == "session-end"]
        assert end["detail"] == {"reason": "done", "requests": 2, "connections": 1}

    run_world(main)


# --- HTTPS ----------------------------------------------------------------------------------------
def test_a_cpe_downloads_over_https_with_a_verified_acs(run_world, pki):
    async def main(world: World) -> None:
        await world.start(pki=pki)
        assert world.url("acs").startswith("https://") and world.url("files").startswith("https://")
        cpe = await world.add_cpe("CHR0001")
        echo = await world.add_cpe("CHR0002", quirks=Quirks(cookies="echo-attributes"))
        await booted(world, cpe, echo)
        assert "Secure" in echo.credentials.cookie_header  # the session cookie stays on HTTPS
        await world.upload("branding.tar", b"web content " * 100, "2 Web Content")
        status, _ = await world.admin("POST", "/actions/upgrade", json={
            "devices": [device_id(cpe)], "file": "branding.tar"})
        assert status == 202
        assert await world.run_until(lambda: bool(events_of(world, cpe, "transfer-complete")), HOUR)
        assert events_of(world, cpe, "transfer-complete")[0]["detail"]["code"] == 0
        assert cpe.nv.files["2 Web Content"] == ("branding.tar", b"web content " * 100)
        task = world.acs.store.tasks(device_id=device_id(cpe))[0]
        assert task["state"] == "done"

    run_world(main)


def _rogue_acs_context(pki: Pki):
    """A server context whose certificate is from a CA the CPEs do not trust."""
    import ssl

    issued = pki.rogue_ca.issue("rogue ACS", names=LOCAL_NAMES, server=True, client=False)
    certificate, key = pki.write_identity("rogue-acs", issued)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(certificate, key)
    return context


def test_a_cpe_refuses_an_acs_whose_certificate_is_from_another_ca(run_world, pki):
    async def main(world: World) -> None:
        await world.start(pki=pki, tls=_rogue_acs_context(pki))
        cpe = await world.add_cpe("CHR0001")
        await world.clock.run_for(600)
        assert cpe.sessions_completed == 0
        # the ACS as its URL names it and the TLS library's reason, not aiohttp's repr
        acs = URL(world.url("acs"))
        assert cpe.last_session_error == (
            f"ACS {acs.host}:{acs.port} certificate refused: certificate verify failed: "
            "unable to get local issuer certificate"), cpe.last_session_error
        assert world.acs.store.devices() == []

    run_world(main)


@pytest.mark.parametrize("username, password, reason", [
    ("", "", "ACS asks for credentials and this CPE has none"),
    ("cpe", "wrong", "ACS refused our credentials"),
])
def test_a_refused_cpe_says_whether_it_had_credentials(run_world, username, password, reason):
    async def main(world: World) -> None:
        await world.start(DIGEST)
        cpe = await world.add_cpe("CHR0001", username=username, password=password)
        await world.clock.run_for(60)
        assert cpe.sessions_completed == 0
        assert cpe.last_session_error == reason

    run_world(main)


def test_risk_a_cpe_that_skips_the_certificate_check_believes_a_rogue_acs(run_world, pki):
    async def main(world: World) -> None:
        await world.start(pki=pki, tls=_rogue_acs_context(pki))
        cpe = await world.add_cpe("CHR0001", quirks=Quirks(skip_certificate_check=True))
        await booted(world, cpe)
        assert world.acs.store.device(device_id(cpe)) is not None

    run_world(main)


# --- the admin API's bearer token ---------------------------------------------------------------
@pytest.mark.parametrize("authorization", [None, "Bearer not-the-token", "Basic YWRtaW46YWRtaW4=",
                                           "Bearer OTHER-ACS"])
def test_the_admin_api_refuses_a_missing_or_wrong_token_and_stores_nothing(run_world, tmp_path,
                                                                        authorization):
    async def main(world: World) -> None:
        await world.start()
        other = AcsServer(tmp_path / "other", world.clock, random.Random(2))
        await other.start()
        try:
            header = authorization
            if header == "Bearer OTHER-ACS":  # a token of another API
                header = f"Bearer {other.admin_token}"
            headers = {"Authorization": header} if header else {}
            async with aiohttp.ClientSession() as http:
                async with http.put(world.url("admin") + "/groups/g", headers=headers,
                                    json={"oui": "E48D8C"}) as response:
                    assert response.status == 401
                    assert response.headers["WWW-Authenticate"].startswith("Bearer ")
                # the CWMP endpoint does not take the admin token as credentials either
            assert world.acs.store.group("g") is None
            status, _ = await world.admin("PUT", "/groups/g", json={"oui": "E48D8C"})
            assert status == 200 and world.acs.store.group("g") is not None
        finally:
            await other.stop()

    run_world(main)


def test_each_acs_has_its_own_admin_token_from_the_csprng(tmp_path):
    first = AcsServer(tmp_path / "a", None, random.Random(1))  # type: ignore[arg-type]
    second = AcsServer(tmp_path / "b", None, random.Random(1))  # type: ignore[arg-type]
    try:
        assert first.admin_token != second.admin_token and len(first.admin_token) >= 40
    finally:
        first.store.close()
        second.store.close()


@settings(max_examples=300, deadline=None, database=None)
@given(header=st.text(max_size=300) | st.builds(
    lambda params: "Digest " + ", ".join(f'{k}="{v}"' for k, v in params.items()),
    st.dictionaries(st.sampled_from(["username", "realm", "nonce", "uri", "response", "qop",
                                     "nc", "cnonce", "algorithm"]),
                    st.text(max_size=40), max_size=9)))
def test_no_header_is_ever_accepted_without_the_password(header):
    """Whatever a client sends, the check answers (never raises) and accepts nothing that was
    not computed from the password."""
    auth = ServerAuth("any", "realm", {"cpe": "pw"})
    auth.challenge()
    assert not auth.check(header, "POST", "/").accepted


def test_the_file_server_refuses_a_replayed_digest_header(run_world):
    async def main(world: World) -> None:
        await world.start(AcsConfig(file_auth_mode="digest", file_users={"fs": "pw"}))
        await world.upload("pkg.bin", b"firmware")
        url = world.url("files") + "/pkg.bin"
        async with world.http.get(url) as response:
            assert response.status == 401
            digest = DigestClient("fs", "pw")
            assert digest.accept_challenge(response.headers["WWW-Authenticate"])
        header = {"Authorization": digest.authorization("GET", "/pkg.bin")}
        async with world.http.get(url, headers=header) as response:
            assert (response.status, await response.read()) == (200, b"firmware")
        async with world.http.get(url, headers=header) as response:
            assert response.status == 401

    run_world(main)

"""Pure parts of the TR-069 ACS and CPE: HTTP Digest (RFC vectors), batch windows, the dummy
firmware formats, MikroTik upgrade XML, RouterOS scripts, data models."""

from __future__ import annotations

import datetime as dt
import random

import pytest
from tr069_world import FIXTURES

from emulators.cpe.datamodel import DataModel
from emulators.cpe.firmware import (
    CorruptFile, build_dummy_npk, build_image, parse_alter_script, parse_dummy_npk, parse_image,
    parse_upgrade_xml)
from otaharness.servers.tr069.http_auth import (
    AuthError, DigestClient, DigestVerifier, ServerAuth, basic_authorization, digest_response,
    parse_auth_params)
from otaharness.servers.tr069.schedule import (
    ScheduleError, in_window, local_day_bounds, parse_days, parse_hours)

UTC = dt.timezone.utc


# --- HTTP authentication ------------------------------------------------------------------------
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


@pytest.mark.parametrize("strict", [False, True])
def test_digest_verifier_nonce_count_policy(strict):
    verifier = DigestVerifier("realm", random.Random(1), strict_nc=strict)
    client = DigestClient("cpe", "pw", random.Random(2), fixed_nc=True)
    client.accept_challenge(verifier.challenge())
    passwords = {"cpe": "pw"}.get
    assert verifier.verify(client.authorization("POST", "/"), "POST", passwords) == "cpe"
    replay = verifier.verify(client.authorization("POST", "/"), "POST", passwords)
    assert replay == (None if strict else "cpe")  # cwmp-sim's constant nc=00000001


def test_digest_verifier_refuses_wrong_password_unknown_nonce_and_method():
    verifier = DigestVerifier("realm", random.Random(1))
    passwords = {"cpe": "pw"}.get
    wrong = DigestClient("cpe", "nope", random.Random(2))
    wrong.accept_challenge(verifier.challenge())
    assert verifier.verify(wrong.authorization("POST", "/"), "POST", passwords) is None
    stranger = DigestClient("cpe", "pw", random.Random(3))
    stranger.accept_challenge('Digest realm="realm", qop="auth", nonce="never-issued"')
    assert verifier.verify(stranger.authorization("POST", "/"), "POST", passwords) is None
    right = DigestClient("cpe", "pw", random.Random(4))
    right.accept_challenge(verifier.challenge())
    assert verifier.verify(right.authorization("GET", "/"), "POST", passwords) is None


def test_server_auth_modes():
    users = {"u": "p"}
    basic = basic_authorization("u", "p")
    assert ServerAuth("none", "r", users, random.Random(1)).check(None, "POST") == ""
    assert ServerAuth("basic", "r", users, random.Random(1)).check(basic, "POST") == "u"
    assert ServerAuth("digest", "r", users, random.Random(1)).check(basic, "POST") is None
    assert ServerAuth("any", "r", users, random.Random(1)).check(basic, "POST") == "u"
    assert ServerAuth("any", "r", users, random.Random(1)).check(
        basic_authorization("u", "x"), "POST") is None
    assert ServerAuth("basic", "r", users, random.Random(1)).check("Basic !!!", "POST") is None
    with pytest.raises(ValueError, match="auth mode"):
        ServerAuth("kerberos", "r", users, random.Random(1))


# --- batch windows ------------------------------------------------------------------------------
def test_days_and_hours_forms():
    assert parse_days([1, "Tuesday", "sun", "SUN"]) == ["mon", "tue", "sun"]
    assert parse_hours(["22-23", 0, "5"]) == [0, 5, 22, 23]
    for bad_days in (["Funday"], [8], []):
        with pytest.raises(ScheduleError):
            parse_days(bad_days)
    for bad_hours in (["24"], ["5-3"], ["x"], []):
        with pytest.raises(ScheduleError):
            parse_hours(bad_hours)


def test_window_is_evaluated_in_the_batch_time_zone():
    monday_0230_utc = dt.datetime(2026, 1, 5, 2, 30, tzinfo=UTC).timestamp()
    assert in_window(monday_0230_utc, ["mon"], [2], None)
    assert not in_window(monday_0230_utc, ["mon"], [2], "Asia/Tokyo")  # 11:30 there
    assert in_window(monday_0230_utc, ["mon"], [11], "Asia/Tokyo")
    assert in_window(monday_0230_utc, ["sun"], [21], "America/New_York")  # Sunday 21:30 EST


def test_local_day_bounds_follow_daylight_saving_time():
    # Europe/Riga moves to summer time on 2026-03-29: that local day lasts 23 hours.
    noon = dt.datetime(2026, 3, 29, 12, tzinfo=UTC).timestamp()
    start, end = local_day_bounds(noon, "Europe/Riga")
    assert end - start == 23 * 3600
    assert dt.datetime.fromtimestamp(start, UTC) == dt.datetime(2026, 3, 28, 22, tzinfo=UTC)
    assert local_day_bounds(noon, "UTC") == (noon - 12 * 3600, noon + 12 * 3600)


# --- firmware formats ----------------------------------------------------------------------------
def test_dummy_npk_round_trip_and_corruption():
    package = build_dummy_npk("routeros-x86", "6.48.4")
    parsed = parse_dummy_npk(package)
    assert (parsed.name, parsed.version) == ("routeros-x86", "6.48.4")
    flipped = bytearray(package)
    flipped[50] ^= 1
    for broken, reason in ((bytes(flipped), "checksum"), (package[:-1], "length"),
                           (b"\0" * 4 + package[4:], "magic"), (package[:5], "short")):
        with pytest.raises(CorruptFile, match=reason):
            parse_dummy_npk(broken)


def test_generic_image_checksum():
    image = build_image("1.1.0", b"payload")
    assert parse_image(image) == "1.1.0"
    with pytest.raises(CorruptFile, match="checksum"):
        parse_image(image[:-1] + b"X")
    with pytest.raises(CorruptFile, match="magic"):
        parse_image(b"MZ" + image)


def test_seed_upgrade_xml_lists_both_packages():
    assert parse_upgrade_xml((FIXTURES / "upgrade_6.48.4.xml").read_bytes()) == [
        "https://splynx_domain:7567/routeros-x86-6.48.4.npk",
        "https://splynx_domain:7567/tr069-client-6.48.4.npk"]


@pytest.mark.parametrize("document, complaint", [
    (b'<upgrade version="2" type="links"><links><link><url>u</url></link></links></upgrade>',
     "expected"),
    (b'<upgrade version="1" type="links"><config/><links/></upgrade>', "no package URL"),
    (b'<upgrade version="1" type="links"><links><link><url> </url></link></links></upgrade>',
     "no package URL"),
    (b'<?xml version="1.0"?><!DOCTYPE u [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
     b'<upgrade version="1" type="links"><links><link><url>&x;</url></link></links></upgrade>',
     "not XML"),
    (b"routeros", "not XML"),
])
def test_bad_upgrade_xml_is_a_corrupt_file(document, complaint):
    with pytest.raises(CorruptFile, match=complaint):
        parse_upgrade_xml(document)


def test_alter_script_commands():
    text = (FIXTURES / "set-identity.alter").read_text() + '/ip dns set servers="1.1.1.1,8.8.8.8"\n'
    assert parse_alter_script(text) == [
        ("/system identity", {"name": "branch-office-7"}),
        ("/tr069-client", {"periodic-inform-interval": "600"}),
        ("/ip dns", {"servers": "1.1.1.1,8.8.8.8"})]


def test_data_models_have_the_forced_inform_parameters():
    tr181 = DataModel.load("mikrotik-chr-tr181.json")
    tr098 = DataModel.load("generic-gateway-tr098.json")
    forced = {name for name, _ in tr181.forced_inform()}
    assert {"Device.DeviceInfo.SoftwareVersion", "Device.ManagementServer.ConnectionRequestURL",
            "Device.ManagementServer.ParameterKey"} <= forced
    assert tr098.get("DeviceInfo.SoftwareVersion") == "1.0.0"
    assert tr098.matching(("InternetGatewayDevice.ManagementServer.",)) is not None
    assert tr098.matching(("InternetGatewayDevice.Nope",)) is None
    with pytest.raises(ValueError, match="root"):
        DataModel("Device", {})


# --- the CPE's answers to ACS requests ----------------------------------------------------------
def _cpe():  # type: ignore[no-untyped-def]
    from otaharness.runtime.clock import VirtualClock
    from emulators.cpe import Cpe

    return Cpe("S1", acs_url="http://127.0.0.1:1/", clock=VirtualClock(), rng=random.Random(1))


def test_cpe_parameter_rpcs():
    from otaharness.protocols.cwmp import (
        Fault, GetParameterValues, ParameterValueStruct, SetParameterValues)

    cpe = _cpe()
    values = cpe._rpc_GetParameterValues(GetParameterValues(parameter_names=("Device.DeviceInfo.",)))
    names = {item.name: item.value for item in values.parameter_list}
    assert names["Device.DeviceInfo.SoftwareVersion"] == "6.48"
    assert names["Device.DeviceInfo.SerialNumber"] == "S1"
    unknown = cpe._rpc_GetParameterValues(GetParameterValues(parameter_names=("Device.Nope",)))
    assert isinstance(unknown, Fault) and unknown.fault_code == 9005
    refused = cpe._rpc_SetParameterValues(SetParameterValues(parameter_list=(
        ParameterValueStruct(name="Device.DeviceInfo.SoftwareVersion", value="9"),
        ParameterValueStruct(name="Device.DeviceInfo.ProvisioningCode", value="x")),
        parameter_key="k1"))
    assert isinstance(refused, Fault) and refused.fault_code == 9003
    assert [(f.parameter_name, f.fault_code) for f in refused.set_parameter_values_fault] == [
        ("Device.DeviceInfo.SoftwareVersion", 9008)]
    assert cpe.software_version == "6.48"  # nothing applied from a refused request
    done = cpe._rpc_SetParameterValues(SetParameterValues(parameter_list=(
        ParameterValueStruct(name="Device.DeviceInfo.ProvisioningCode", value="x"),),
        parameter_key="k2"))
    assert done.status == 0
    assert cpe.model.get("ManagementServer.ParameterKey") == "k2"
    assert cpe.model.get("DeviceInfo.ProvisioningCode") == "x"

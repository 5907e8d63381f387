"""Pure parts of the TR-069 ACS and CPE: batch windows, the dummy
firmware formats, MikroTik upgrade XML, RouterOS scripts, data models."""

from __future__ import annotations

import datetime as dt
import random

import pytest
from tr069_world import FIXTURES

from otaharness.emulators.cpe.datamodel import DataModel
from otaharness.emulators.cpe.firmware import (
    CorruptFile, build_dummy_npk, build_image, parse_alter_script, parse_dummy_npk, parse_image,
    parse_upgrade_xml)
from otaharness.servers.tr069.schedule import (
    ScheduleError, in_window, local_day_bounds, parse_days, parse_hours)

UTC = dt.timezone.utc


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
    from otaharness.emulators.cpe import Cpe

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

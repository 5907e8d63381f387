"""LNS messages of the CUPS flow: discovery, version, router_config (basicstation 2.0.6)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from otaharness.protocols.basics_station import (
    BasicsStationCodecError,
    RouterConfig,
    RouterInfoRequest,
    RouterInfoResponse,
    VersionMessage,
    check_muxs_uri,
)

EU868_FIXTURE = Path(__file__).resolve().parents[2] / "fixtures" / "basics_station" / "eu868_router_config.json"

# Fact sheet §7.2 [observed]
OBSERVED_VERSION = (
    '{"msgtype":"version","station":"2.0.6(linux/testsim)","firmware":null,"package":null,'
    '"model":"linux","protocol":2,"features":"rmtsh"}'
)


# --------------------------------------------------------------------------------------------
# Discovery


def test_router_info_request_matches_observed() -> None:
    assert RouterInfoRequest(1).to_json() == '{"router":"::1"}'
    assert RouterInfoRequest.decode('{"router":"::1"}') == RouterInfoRequest(1)
    # The Azure simulator sends the EUI as a number; servers accept it.
    assert RouterInfoRequest.decode('{"router":1}') == RouterInfoRequest(1)


@pytest.mark.parametrize(("text", "message"), [
    ("{}", "missing field 'router'"),
    ('{"router":null}', "field 'router' must be string or integer, got null"),
    ('{"router":"x"}', "contains 'x'"),
    ("[]", "must be a JSON object"),
])
def test_router_info_request_errors(text: str, message: str) -> None:
    with pytest.raises(BasicsStationCodecError, match=message):
        RouterInfoRequest.decode(text)


def test_router_info_accept_and_reject_round_trip() -> None:
    accept = RouterInfoResponse.accept(router=1, muxs=0, uri="ws://127.0.0.1:6039/router-data/::1")
    text = accept.to_json()
    assert json.loads(text) == {"router": "::1", "muxs": "::0", "uri": "ws://127.0.0.1:6039/router-data/::1"}
    assert list(json.loads(text)) == ["router", "muxs", "uri"]
    assert RouterInfoResponse.decode(text) == accept
    assert accept.accepted

    reject = RouterInfoResponse.reject(router=1, error="Router not provisioned")
    assert json.loads(reject.to_json()) == {"router": "::1", "error": "Router not provisioned"}
    decoded = RouterInfoResponse.decode(reject.to_json())
    assert decoded == reject and not decoded.accepted


def test_router_info_response_as_the_station_reads_it() -> None:
    # Unknown fields are ignored; a missing uri is a rejection, not a parse error.
    decoded = RouterInfoResponse.decode('{"router":"::1","muxs":"::0","extra":[1]}')
    assert decoded.uri is None and not decoded.accepted
    with pytest.raises(BasicsStationCodecError, match="field 'error' must be string, got null"):
        RouterInfoResponse.decode('{"router":"::1","error":null}')
    with pytest.raises(BasicsStationCodecError, match="field 'router' must be string, got 1"):
        RouterInfoResponse.decode('{"router":1,"uri":"ws://h:1/p"}')


@pytest.mark.parametrize("uri", ["ws://127.0.0.1:6039/router", "wss://lns.example:5001/router-data/1", "WS://h:1/"])
def test_muxs_uri_accepted(uri: str) -> None:
    assert check_muxs_uri(uri) == uri


@pytest.mark.parametrize(("uri", "message"), [
    ("http://h:1/p", "must be ws://"),
    ("ws://h/router", "needs a host, a port and a path"),
    ("ws://h:6039", "needs a host, a port and a path"),
    ("ws://:6039/p", "needs a host, a port and a path"),
    ("ws://h:x/p", "bad port"),
    ("ws://h:1/" + "p" * 120, "too long"),
])
def test_muxs_uri_rejected_like_the_station(uri: str, message: str) -> None:
    with pytest.raises(BasicsStationCodecError, match=message):
        check_muxs_uri(uri)
    with pytest.raises(BasicsStationCodecError, match=message):
        RouterInfoResponse.decode(json.dumps({"router": "::1", "muxs": "::0", "uri": uri}))


# --------------------------------------------------------------------------------------------
# version


def test_version_message_matches_observed() -> None:
    message = VersionMessage(station="2.0.6(linux/testsim)", firmware=None, package=None, model="linux", features="rmtsh")
    assert message.to_json() == OBSERVED_VERSION
    assert VersionMessage.decode(OBSERVED_VERSION) == message
    assert message.feature_set == {"rmtsh"}


def test_version_message_after_upgrade_carries_package_twice() -> None:
    message = VersionMessage("2.0.6(linux/std)", "1.0.1-e2e", "1.0.1-e2e", "linux", "rmtsh gps")
    text = message.to_json()
    assert '"firmware":"1.0.1-e2e","package":"1.0.1-e2e"' in text
    assert VersionMessage.decode(text) == message
    assert message.feature_set == {"rmtsh", "gps"}


@pytest.mark.parametrize(("change", "message"), [
    ({"msgtype": "updf"}, "expected msgtype 'version', got 'updf'"),
    ({"protocol": "2"}, "field 'protocol' must be integer"),
    ({"features": None}, "field 'features' must be string, got null"),
    ({"package": 1}, "field 'package' must be string or null, got 1"),
])
def test_version_message_errors(change: dict, message: str) -> None:
    document = json.loads(OBSERVED_VERSION) | change
    with pytest.raises(BasicsStationCodecError, match=message):
        VersionMessage.decode(json.dumps(document))


def test_version_message_missing_field() -> None:
    document = json.loads(OBSERVED_VERSION)
    del document["model"]
    with pytest.raises(BasicsStationCodecError, match="missing field 'model'"):
        VersionMessage.decode(json.dumps(document))


# --------------------------------------------------------------------------------------------
# router_config


@pytest.fixture(scope="module")
def eu868() -> dict:
    return json.loads(EU868_FIXTURE.read_text())


def test_eu868_fixture_is_a_valid_router_config(eu868: dict) -> None:
    config = RouterConfig.from_dict(eu868)
    assert config.region == "EU868"
    assert config.hwspec == "sx1301/1"
    assert config.radio_conf_key == "sx1301_conf"
    assert config.freq_range == (863_000_000, 870_000_000)
    # EU868 DR table: DR0..5 SF12..7/125 kHz, DR6 SF7/250 kHz, DR7 FSK, rest undefined.
    assert config.drs[:8] == ((12, 125, 0), (11, 125, 0), (10, 125, 0), (9, 125, 0),
                              (8, 125, 0), (7, 125, 0), (7, 250, 0), (0, 0, 0))
    assert all(dr[0] < 0 for dr in config.drs[8:]) and len(config.drs) == 16
    # The three mandatory join channels are among the eight uplink channels.
    frequencies = {channel[0] for channel in config.upchannels}
    assert {868_100_000, 868_300_000, 868_500_000} <= frequencies
    assert len(frequencies) == 8


def test_eu868_radio_setup_listens_on_every_upchannel(eu868: dict) -> None:
    config = RouterConfig.from_dict(eu868)
    (board,) = config.radio_conf  # hwspec sx1301/1: one concentrator
    radios = {index: board[f"radio_{index}"]["freq"] for index in (0, 1)}
    multi_sf = {
        radios[chan["radio"]] + chan["if"]
        for name, chan in board.items() if name.startswith("chan_multiSF_") and chan["enable"]
    }
    assert multi_sf == {channel[0] for channel in config.upchannels}
    lora_std = board["chan_Lora_std"]
    assert radios[lora_std["radio"]] + lora_std["if"] == 868_300_000  # DR6 SF7/250 kHz channel


def test_router_config_round_trip_with_mux_time(eu868: dict) -> None:
    config = RouterConfig.from_dict(eu868)
    text = dataclasses.replace(config, mux_time=1795356891.25).to_json()
    document = json.loads(text)
    assert document["msgtype"] == "router_config" and document["MuxTime"] == 1795356891.25
    assert document["hwspec"] == "sx1301/1" and "sx1301_conf" in document
    decoded = RouterConfig.decode(text)
    assert decoded.mux_time == 1795356891.25
    assert decoded.to_dict() | {"MuxTime": None} == config.to_dict() | {"MuxTime": None}


def test_router_config_join_eui_key_is_kept(eu868: dict) -> None:
    document = {key: value for key, value in eu868.items() if key != "JoinEui"} | {"JoinEUI": [[1, 2]]}
    config = RouterConfig.from_dict(document)
    assert config.join_eui_key == "JoinEUI" and config.join_eui_ranges == ((1, 2),)
    assert json.loads(config.to_json())["JoinEUI"] == [[1, 2]]


@pytest.mark.parametrize(("drop", "message"), [
    ("hwspec", "without 'hwspec': the station closes the connection"),
    ("sx1301_conf", "without a radio conf"),
])
def test_router_config_without_required_keys_is_refused(eu868: dict, drop: str, message: str) -> None:
    document = {key: value for key, value in eu868.items() if key != drop}
    with pytest.raises(BasicsStationCodecError, match=message):
        RouterConfig.from_dict(document)


@pytest.mark.parametrize(("change", "message"), [
    ({"upchannels": [[868100000, 0, 8]]}, "DRs must lie in 0..7"),
    ({"DRs": [[12, 125]]}, "DRs\\[0\\] must be three integers"),
    ({"DRs": [[12, 125, 0]] * 17}, "at most 16"),
    ({"freq_range": [1]}, "'freq_range' must be \\[min_hz, max_hz\\]"),
    ({"hwspec": "x" * 32}, "'hwspec' must be 1..31 characters"),
    ({"NetID": [-1]}, "'NetID' must be null or an array of unsigned ints"),
    ({"JoinEui": [[1]]}, "'JoinEui' must be null or an array of \\[first, last\\] EUIs"),
    ({"max_eirp": "16"}, "'max_eirp' must be a number"),
    ({"msgtype": "dnmsg"}, "expected msgtype 'router_config'"),
    ({"region": None}, "field 'region' must be string, got null"),
])
def test_router_config_field_errors(eu868: dict, change: dict, message: str) -> None:
    with pytest.raises(BasicsStationCodecError, match=message):
        RouterConfig.from_dict(eu868 | change)

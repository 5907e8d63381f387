"""Property tests of the Basics Station codecs (CUPS request/reply, credentials, LNS messages):
decoding arbitrary bytes, text or JSON raises only BasicsStationCodecError, and every message
that has both directions survives encode → decode unchanged."""

from __future__ import annotations

import json
import re
import zlib
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from otaharness.protocols.basics_station import (
    BasicsStationCodecError,
    Credentials,
    RouterConfig,
    RouterInfoRequest,
    RouterInfoResponse,
    UpdateInfoRequest,
    UpdateInfoResponse,
    VersionMessage,
    check_muxs_uri,
    decode_json_eui,
    parse_eui,
    router_eui,
)
from otaharness.protocols.basics_station.eui import EUI_TEXT_PATTERN
from otaharness.protocols.basics_station.lns_data import (
    DeviceClass,
    DownlinkMessage,
    DownlinkSchedule,
    DownlinkTransmitted,
    RadioInfo,
    ScheduledFrame,
    TimesyncReply,
    TimesyncRequest,
    UplinkInfo,
    decode_station_message,
    uplink_from_phy_payload,
)

EXAMPLES = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
EU868 = json.loads((Path(__file__).resolve().parents[2] / "fixtures/basics_station/eu868_router_config.json")
                   .read_text())

U32 = st.integers(0, 0xFFFFFFFF)
I64 = st.integers(-(2**63), 2**63 - 1)
EUI = st.integers(0, 2**64 - 1)
FLOAT = st.floats(allow_nan=False, allow_infinity=False)
json_scalars = st.none() | st.booleans() | I64 | FLOAT | st.text(max_size=12)
json_values = st.recursive(json_scalars, lambda inner: st.lists(inner, max_size=4)
                           | st.dictionaries(st.text(max_size=8), inner, max_size=4), max_leaves=12)
# Integers and floats beyond what the JSON reader takes, NaN, and deep nesting: only as text.
hostile_text = st.one_of(
    st.text(max_size=200),
    st.binary(max_size=200),
    json_values.map(json.dumps),
    st.integers(1, 3000).map(lambda depth: "[" * depth + "]" * depth),
    st.integers(1, 3000).map(lambda depth: '{"msgtype":"updf","x":' + "[" * depth),
    st.sampled_from(['{"router":NaN}', '{"router":Infinity}', '{"router":1e999}', '{"router":' + "9" * 400 + "}",
                     '{"msgtype":"version","protocol":-Infinity}', '{"txtime":' + "1" * 30 + "}"]),
)


def only_codec_errors(decode: Any, value: Any) -> Any:
    """``decode(value)``, where the only exception allowed is BasicsStationCodecError."""
    try:
        return decode(value)
    except BasicsStationCodecError:
        return None


# --------------------------------------------------------------------------------------------
# Valid messages as strategies


radio_infos = st.builds(
    RadioInfo, dr=st.integers(0, 15), freq=U32,
    upinfo=st.builds(UplinkInfo, rctx=I64, xtime=I64, gpstime=I64, fts=I64, rssi=FLOAT, snr=FLOAT, rxtime=FLOAT),
    ref_time=FLOAT)
update_info_requests = st.builds(
    UpdateInfoRequest, router=EUI, cups_uri=st.none() | st.text(max_size=40), tc_uri=st.none() | st.text(max_size=40),
    cups_cred_crc=U32, tc_cred_crc=U32, station=st.text(max_size=40), model=st.text(max_size=10),
    package=st.none() | st.text(max_size=20), keys=st.lists(U32, max_size=4).map(tuple))
version_messages = st.builds(
    VersionMessage, station=st.text(max_size=30), firmware=st.none() | st.text(max_size=10),
    package=st.none() | st.text(max_size=10), model=st.text(max_size=10), features=st.text(max_size=20), protocol=I64)
router_configs = st.builds(
    RouterConfig, region=st.text(max_size=8), hwspec=st.text(min_size=1, max_size=31),
    freq_range=st.tuples(I64, I64),
    drs=st.lists(st.tuples(I64, I64, I64), max_size=16).map(tuple),
    upchannels=st.lists(st.tuples(I64, st.integers(0, 7), st.integers(0, 7)), max_size=8).map(tuple),
    radio_conf=json_values, radio_conf_key=st.sampled_from(["sx1301_conf", "SX1302_conf", "radio_conf"]),
    max_eirp=st.none() | FLOAT, net_ids=st.none() | st.lists(st.integers(0, 2**63 - 1), max_size=3).map(tuple),
    join_eui_ranges=st.none() | st.lists(st.tuples(I64, I64), max_size=3).map(tuple),
    join_eui_key=st.sampled_from(["JoinEui", "JoinEUI"]), mux_time=st.none() | FLOAT)


@st.composite
def downlink_messages(draw: st.DrawFn) -> DownlinkMessage:
    rx1 = draw(st.none() | st.tuples(st.integers(0, 15), U32))
    rx2 = draw(st.tuples(st.integers(0, 15), U32) if rx1 is None else st.none() | st.tuples(st.integers(0, 15), U32))
    optional = st.none() | I64
    return DownlinkMessage(
        dev_eui=draw(EUI), device_class=draw(st.sampled_from(DeviceClass)), diid=draw(I64),
        pdu=draw(st.binary(max_size=255)), rx_delay=draw(st.integers(0, 15)),
        rx1_dr=rx1 and rx1[0], rx1_freq=rx1 and rx1[1], rx2_dr=rx2 and rx2[0], rx2_freq=rx2 and rx2[1],
        xtime=draw(optional), rctx=draw(optional), priority=draw(st.none() | st.integers(0, 255)),
        mux_time=draw(st.none() | FLOAT), gpstime=draw(optional))


@st.composite
def scheduled_frames(draw: st.DrawFn) -> ScheduledFrame:
    when = draw(st.sampled_from(["ontime", "gpstime", "xtime"]))
    return ScheduledFrame(diid=draw(I64), dr=draw(st.integers(0, 15)), freq=draw(U32),
                          pdu=draw(st.binary(max_size=255)),
                          priority=draw(st.none() | I64), rctx=draw(st.none() | I64), **{when: draw(I64)})


def der(content: bytes, long_form: bool) -> bytes:
    """A DER SEQUENCE the station measures right: short form under 128 bytes, else 0x82 hi lo."""
    if long_form or len(content) >= 128:
        return b"\x30\x82" + len(content).to_bytes(2, "big") + content
    return bytes([0x30, len(content)]) + content


ders = st.builds(der, st.binary(max_size=300), st.booleans())
credentials = st.one_of(
    st.builds(Credentials, trust=ders, certificate=st.none() | ders, key=st.none() | ders),
    st.builds(Credentials, trust=ders, certificate=st.none() | ders,
              auth_token=st.binary(min_size=1, max_size=80).filter(lambda token: token[0] not in (0x00, 0x30))))


# --------------------------------------------------------------------------------------------
# Arbitrary input: only the codec's own error


TEXT_DECODERS = {
    "CUPS request": UpdateInfoRequest.decode,
    "router-info request": RouterInfoRequest.decode,
    "router-info response": RouterInfoResponse.decode,
    "version": VersionMessage.decode,
    "router_config": RouterConfig.decode,
    "station data message": decode_station_message,
}


@EXAMPLES
@given(text=hostile_text)
def test_text_decoders_raise_only_their_own_error(text: str | bytes) -> None:
    for decode in TEXT_DECODERS.values():
        only_codec_errors(decode, text)


DICT_DECODERS = {  # decoder of a parsed message, and the msgtype it reads
    "dnmsg": DownlinkMessage.from_dict, "dnsched": DownlinkSchedule.from_dict, "dntxed": DownlinkTransmitted.from_dict,
    "timesync request": TimesyncRequest.from_dict, "timesync reply": TimesyncReply.from_dict,
    "router_config": RouterConfig.from_dict, "version": VersionMessage.from_dict,
    "updf": decode_station_message, "jreq": decode_station_message, "propdf": decode_station_message,
}
VALID_DOCUMENTS = [
    EU868,
    {"msgtype": "version", "station": "2.0.6", "firmware": None, "package": "v1", "model": "linux", "protocol": 2,
     "features": ""},
    {"msgtype": "dnmsg", "DevEui": "00-00-00-00-00-00-00-01", "dC": 0, "diid": 1, "pdu": "00", "RxDelay": 1,
     "RX1DR": 5, "RX1Freq": 868100000, "xtime": 1, "rctx": 0},
    {"msgtype": "dnsched", "schedule": [{"diid": 1, "DR": 0, "Freq": 869525000, "pdu": "00", "xtime": 5}]},
    {"msgtype": "dntxed", "diid": 1, "DR": 0, "Freq": 869525000, "DevEui": "00-00-00-00-00-00-00-01"},
    {"msgtype": "timesync", "txtime": 1, "gpstime": 2},
    {"msgtype": "updf", "MHdr": 64, "DevAddr": 1, "FCtrl": 0, "FCnt": 0, "FOpts": "", "FPort": 1, "FRMPayload": "00",
     "MIC": -1, "RefTime": 0.0, "DR": 5, "Freq": 868100000,
     "upinfo": {"rctx": 0, "xtime": 1, "gpstime": 0, "fts": -1, "rssi": -60, "snr": 8.5, "rxtime": 0.0}},
    {"msgtype": "jreq", "MHdr": 0, "JoinEui": "00-00-00-00-00-00-00-01", "DevEui": "00-00-00-00-00-00-00-02",
     "DevNonce": 1, "MIC": 5, "DR": 5, "Freq": 868100000, "upinfo": {"rctx": 0, "xtime": 1, "rssi": -60, "snr": 1}},
    {"msgtype": "propdf", "FRMPayload": "e0", "DR": 5, "Freq": 868100000, "upinfo": {"rctx": 0, "xtime": 1,
                                                                                   "rssi": -60, "snr": 1}},
]


@st.composite
def mutated_documents(draw: st.DrawFn) -> dict[str, Any]:
    """A valid message with some fields replaced by other JSON, removed, or added."""
    document = dict(draw(st.sampled_from(VALID_DOCUMENTS)))
    for _ in range(draw(st.integers(1, 3))):
        action = draw(st.sampled_from(["replace", "delete", "add"]))
        if action == "add" or not document:
            document[draw(st.text(max_size=8))] = draw(json_values)
        else:
            key = draw(st.sampled_from(sorted(document)))
            if action == "delete":
                del document[key]
            else:
                document[key] = draw(json_values)
    return document


@settings(EXAMPLES, max_examples=300)
@given(document=mutated_documents() | st.dictionaries(st.text(max_size=8), json_values, max_size=6))
def test_parsed_message_decoders_raise_only_their_own_error(document: dict[str, Any]) -> None:
    for name, decode in DICT_DECODERS.items():
        only_codec_errors(decode, document)
        only_codec_errors(decode, {**document, "msgtype": name.split()[0]})


@EXAMPLES
@given(body=st.binary(max_size=600) | st.builds(lambda head, rest: bytes(head) + rest,
                                                st.lists(st.integers(0, 8), min_size=14, max_size=14),
                                                st.binary(max_size=40)))
def test_cups_reply_and_credential_decoders_raise_only_their_own_error(body: bytes) -> None:
    only_codec_errors(UpdateInfoResponse.decode, body)
    only_codec_errors(Credentials.decode, body)
    only_codec_errors(Credentials.decode, b"\x30" + body)


@EXAMPLES
@given(value=json_values | st.text(alphabet="0123456789abcdefABCDEF:-xg ", max_size=30))
def test_eui_readers_raise_only_their_own_error(value: Any) -> None:
    for read in (parse_eui, decode_json_eui, router_eui):
        eui = only_codec_errors(read, value)
        assert eui is None or 0 <= eui < 2**64


@EXAMPLES
@given(uri=st.text(max_size=60) | st.builds("{}://{}".format, st.sampled_from(["ws", "wss", "WS", "http"]),
                                             st.text(max_size=40)))
def test_muxs_uri_check_raises_only_its_own_error(uri: str) -> None:
    only_codec_errors(check_muxs_uri, uri)


@EXAMPLES
@given(frame=st.binary(max_size=60) | st.builds(lambda mhdr, rest: bytes([mhdr]) + rest,
                                                st.sampled_from([0x00, 0x40, 0x80, 0xC0, 0xE0, 0x20, 0x60, 0x41]),
                                                st.binary(max_size=40)),
       radio=radio_infos, key=st.sampled_from(["JoinEui", "JoinEUI"]))
def test_frames_split_like_the_station_or_refused_and_messages_round_trip(frame: bytes, radio: RadioInfo,
                                                                          key: str) -> None:
    message = only_codec_errors(lambda data: uplink_from_phy_payload(data, radio, key), frame)
    if message is None:
        return
    assert message.phy_payload() == frame
    assert decode_station_message(json.dumps(message.to_dict())) == message


# --------------------------------------------------------------------------------------------
# Round trips


@EXAMPLES
@given(request=update_info_requests)
def test_cups_request_round_trip(request: UpdateInfoRequest) -> None:
    body = request.encode()
    assert UpdateInfoRequest.decode(body) == request
    assert json.loads(body) == json.loads(request.to_json())  # the station's encoder writes plain JSON


@EXAMPLES
@given(blob=credentials)
def test_credentials_round_trip_and_crc_agrees_with_the_station(blob: Credentials) -> None:
    encoded = blob.encode()
    assert Credentials.decode(encoded) == blob
    assert zlib.crc32(encoded) == blob.station_crc()


@EXAMPLES
@given(router=EUI, muxs=EUI, error=st.text(max_size=40), port=st.integers(1, 65535))
def test_discovery_messages_round_trip(router: int, muxs: int, error: str, port: int) -> None:
    assert RouterInfoRequest.decode(RouterInfoRequest(router).to_json()) == RouterInfoRequest(router)
    accept = RouterInfoResponse.accept(router, muxs, f"ws://127.0.0.1:{port}/router-data/{router:016X}")
    assert RouterInfoResponse.decode(accept.to_json()) == accept
    reject = RouterInfoResponse.reject(router, error)
    assert RouterInfoResponse.decode(reject.to_json()) == reject


@EXAMPLES
@given(version=version_messages, config=router_configs)
def test_version_and_router_config_round_trip(version: VersionMessage, config: RouterConfig) -> None:
    assert VersionMessage.decode(version.to_json()) == version
    assert RouterConfig.decode(config.to_json()) == config


@EXAMPLES
@given(message=downlink_messages() | st.builds(DownlinkSchedule, st.lists(scheduled_frames(), max_size=3).map(tuple),
                                               st.none() | FLOAT)
       | st.builds(DownlinkTransmitted, diid=I64, dr=st.integers(0, 15), freq=U32, dev_eui=EUI, rctx=I64, xtime=I64,
                   txtime=FLOAT, gpstime=I64)
       | st.builds(TimesyncRequest, I64)
       | st.builds(TimesyncReply, gpstime=I64, txtime=st.none() | I64, xtime=st.none() | I64,
                   mux_time=st.none() | FLOAT))
def test_lns_data_messages_round_trip(message: Any) -> None:
    assert type(message).from_dict(json.loads(json.dumps(message.to_dict()))) == message


@settings(EXAMPLES, max_examples=1000)
@given(text=st.text(alphabet="0123456789abcdefABCDEF-:x\n ", max_size=26)
       | st.lists(st.text(alphabet="0aF", max_size=5), max_size=9).flatmap(
           lambda groups: st.sampled_from([":", "-", "::"]).map(lambda separator: separator.join(groups))))
def test_the_documented_eui_pattern_is_exactly_what_parse_eui_reads(text: str) -> None:
    """The OpenAPI documents state EUIs with EUI_TEXT_PATTERN: a text matches it (ECMA reading:
    ``$`` is the end of the string) if and only if the servers' parse_eui reads it."""
    matches = re.fullmatch(EUI_TEXT_PATTERN.removeprefix("^").removesuffix("$"), text) is not None
    assert matches == (only_codec_errors(parse_eui, text) is not None), text

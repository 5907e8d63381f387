"""The LNS data-message codec against the station messages observed in the fact sheet (§7.2) and
the rules of basicstation 2.0.6 ``s2e_parse_lora_frame``/``handle_dnmsg``."""

from __future__ import annotations

import json

import pytest

from otaharness.protocols.basics_station import BasicsStationCodecError
from otaharness.protocols.basics_station.lns_data import (
    DeviceClass,
    DownlinkMessage,
    DownlinkSchedule,
    DownlinkTransmitted,
    JoinRequestMessage,
    ProprietaryFrame,
    RadioInfo,
    ScheduledFrame,
    TimesyncReply,
    TimesyncRequest,
    UplinkDataFrame,
    UplinkInfo,
    decode_station_message,
    signed_int32,
    uplink_from_phy_payload,
)
from otaharness.protocols.lorawan import build_join_request

# Observed from the real station 2.0.6 (fact sheet §7.2).
UPDF_FIXTURE = (
    '{"msgtype":"updf","MHdr":64,"DevAddr":1,"FCtrl":0,"FCnt":0,"FOpts":"","FPort":1,"FRMPayload":"0102",'
    '"MIC":1,"RefTime":1795356891.436158,"DR":5,"Freq":868100000,"upinfo":{"rctx":0,"xtime":14918174035602480,'
    '"gpstime":0,"fts":-1,"rssi":-50,"snr":9,"rxtime":1795356891.436168}}'
)
DNTXED_FIXTURE = (
    '{"msgtype":"dntxed","seqno":1000,"diid":1000,"DR":0,"Freq":869525000,"DevEui":"00-00-00-00-11-00-00-02",'
    '"rctx":0,"xtime":14918174035630555,"txtime":430.712143,"gpstime":0}'
)
RADIO = RadioInfo(dr=5, freq=868_100_000, upinfo=UplinkInfo(rctx=0, xtime=14918174035602480, rssi=-50, snr=9),
                  ref_time=1795356891.436158)


def test_observed_updf_decodes_to_its_frame_and_back() -> None:
    message = decode_station_message(UPDF_FIXTURE)
    assert isinstance(message, UplinkDataFrame)
    assert (message.dev_addr, message.fport, message.frm_payload, message.mic) == (1, 1, b"\x01\x02",
                                                                                  b"\x01\x00\x00\x00")
    assert message.radio.upinfo == UplinkInfo(rctx=0, xtime=14918174035602480, gpstime=0, fts=-1, rssi=-50.0,
                                              snr=9.0, rxtime=1795356891.436168)
    assert message.phy_payload() == bytes.fromhex("40" "01000000" "00" "0000" "01" "0102" "01000000")
    assert message.to_dict() == json.loads(UPDF_FIXTURE)
    assert list(message.to_dict()) == list(json.loads(UPDF_FIXTURE))  # the station's key order


def test_devaddr_and_mic_are_signed_int32_as_the_station_prints_them() -> None:
    # DevAddr 0x80000001 and MIC octets ff ff ff ff (LE) are negative for the station.
    frame = bytes.fromhex("40" "01000080" "00" "0700" "05" "aa" "ffffffff")
    document = uplink_from_phy_payload(frame, RADIO).to_dict()
    assert document["DevAddr"] == -2147483647 and document["MIC"] == -1
    back = UplinkDataFrame.from_dict(document)
    assert back.dev_addr == 0x80000001 and back.phy_payload() == frame
    assert signed_int32(0x7FFFFFFF) == 2147483647 and signed_int32(0x80000000) == -2147483648


def test_frame_without_fport_is_fport_minus_one_with_empty_payload() -> None:
    frame = bytes.fromhex("40" "011b0126" "02" "0300" "020d" "c24ea1a4")  # FOpts LinkCheckReq + DeviceTimeReq
    document = uplink_from_phy_payload(frame, RADIO).to_dict()
    assert (document["FPort"], document["FRMPayload"], document["FOpts"], document["FCtrl"]) == (-1, "", "020d", 2)
    assert document["DevAddr"] == 0x26011B01
    assert UplinkDataFrame.from_dict(document).phy_payload() == frame


def test_join_request_fields_and_both_eui_spellings() -> None:
    request = build_join_request(app_eui=0x70B3D57ED0000001, dev_eui=0x0000000011000002, dev_nonce=0x1234,
                                 app_key=bytes(range(16))).to_bytes()
    message = uplink_from_phy_payload(request, RADIO)
    document = message.to_dict()
    assert list(document)[:6] == ["msgtype", "MHdr", "JoinEui", "DevEui", "DevNonce", "MIC"]
    assert document["JoinEui"] == "70-B3-D5-7E-D0-00-00-01" and document["DevEui"] == "00-00-00-00-11-00-00-02"
    assert document["DevNonce"] == 0x1234
    assert document["MIC"] == signed_int32(int.from_bytes(request[-4:], "little"))
    assert JoinRequestMessage.from_dict(document).phy_payload() == request
    upper = JoinRequestMessage.from_phy_payload(request, RADIO, join_eui_key="JoinEUI").to_dict()
    assert "JoinEUI" in upper and "DevEUI" in upper and "JoinEui" not in upper
    assert JoinRequestMessage.from_dict(upper).phy_payload() == request


def test_station_frame_checks() -> None:
    with pytest.raises(BasicsStationCodecError, match="not a LoRaWAN frame"):
        uplink_from_phy_payload(bytes.fromhex("40010000000000000000"), RADIO)  # 10 < 12 octets
    with pytest.raises(BasicsStationCodecError, match="not a LoRaWAN frame"):
        uplink_from_phy_payload(bytes.fromhex("41" + "00" * 11), RADIO)  # Major 1
    with pytest.raises(BasicsStationCodecError, match="23 octets"):
        uplink_from_phy_payload(bytes(22), RADIO)
    with pytest.raises(BasicsStationCodecError, match="FOptsLen 5"):
        uplink_from_phy_payload(bytes.fromhex("40" "01000000" "05" "0000" "0102" "01000000"), RADIO)
    with pytest.raises(BasicsStationCodecError, match="downlink"):
        uplink_from_phy_payload(bytes.fromhex("60" "01000000" "00" "0000" "01000000"), RADIO)
    proprietary = uplink_from_phy_payload(b"\xe0\x01\x02", RADIO)
    assert isinstance(proprietary, ProprietaryFrame) and proprietary.to_dict()["FRMPayload"] == "e00102"


@pytest.mark.parametrize("change, message", [
    ({"MIC": 1 << 32}, "32-bit"),
    ({"FPort": -2}, "FPort"),
    ({"FRMPayload": "0g"}, "hex"),
    ({"DevAddr": "1"}, "DevAddr"),
    ({"upinfo": []}, "upinfo"),
    ({"msgtype": "jacc"}, "msgtype"),
])
def test_malformed_updf_is_refused(change: dict, message: str) -> None:
    document = {**json.loads(UPDF_FIXTURE), **change}
    with pytest.raises(BasicsStationCodecError, match=message):
        decode_station_message(document)


def test_observed_dntxed_round_trip() -> None:
    message = decode_station_message(DNTXED_FIXTURE)
    assert message == DownlinkTransmitted(diid=1000, dr=0, freq=869_525_000, dev_eui=0x0000000011000002,
                                          rctx=0, xtime=14918174035630555, txtime=430.712143, gpstime=0)
    assert json.dumps(message.to_dict(), separators=(",", ":")) == DNTXED_FIXTURE
    legacy = {key: value for key, value in json.loads(DNTXED_FIXTURE).items() if key != "diid"}
    assert DownlinkTransmitted.from_dict(legacy).diid == 1000  # old stations: seqno only


def test_dnmsg_fields_and_station_rules() -> None:
    message = DownlinkMessage(dev_eui=0x0000000011000002, device_class=DeviceClass.A, diid=7, pdu=b"\x60\x01",
                              rx_delay=1, rx1_dr=5, rx1_freq=868_100_000, xtime=14918174035602480, rctx=0,
                              priority=0, mux_time=1795356891.5)
    document = message.to_dict()
    assert document == {"msgtype": "dnmsg", "DevEui": "00-00-00-00-11-00-00-02", "dC": 0, "diid": 7, "pdu": "6001",
                        "RxDelay": 1, "RX1DR": 5, "RX1Freq": 868100000, "xtime": 14918174035602480, "rctx": 0,
                        "priority": 0, "MuxTime": 1795356891.5}
    assert DownlinkMessage.from_dict(document) == message
    # Aliases the station accepts: DR/Freq for RX1 (DR sets RxDelay 0), seqno, DevEUI as a number.
    alias = DownlinkMessage.from_dict({"msgtype": "dnmsg", "DevEUI": 5, "dC": 2, "seqno": 9, "pdu": "00",
                                       "RxDelay": 3, "DR": 4, "Freq": 868_300_000})
    assert (alias.dev_eui, alias.device_class, alias.diid, alias.rx_delay, alias.rx1_dr, alias.rx1_freq) == (
        5, DeviceClass.C, 9, 0, 4, 868_300_000)
    missing_delay = DownlinkMessage.from_dict({"msgtype": "dnmsg", "DevEui": "01", "dC": 2, "diid": 1, "pdu": "",
                                               "RX2DR": 0, "RX2Freq": 869_525_000})
    assert missing_delay.rx_delay == 1  # the station maps a missing RxDelay to 1
    assert not DownlinkMessage(dev_eui=0, device_class=DeviceClass.C, diid=1, pdu=b"", rx2_dr=0,
                               rx2_freq=869_525_000).expects_dntxed


@pytest.mark.parametrize("fields, message", [
    ({"rx1_dr": 5}, "both RX1DR and RX1Freq"),
    ({"rx2_freq": 869_525_000}, "both RX2DR and RX2Freq"),
    ({}, "neither RX1 nor RX2"),
    ({"rx2_dr": 0, "rx2_freq": 869_525_000, "pdu": bytes(256)}, "at most 255"),
    ({"rx2_dr": 0, "rx2_freq": 869_525_000, "rx_delay": 16}, "RxDelay"),
])
def test_dnmsg_the_station_would_ignore_is_refused(fields: dict, message: str) -> None:
    arguments = {"dev_eui": 1, "device_class": DeviceClass.A, "diid": 1, "pdu": b"\x60", **fields}
    with pytest.raises(BasicsStationCodecError, match=message):
        DownlinkMessage(**arguments)


def test_dnmsg_without_required_fields_is_refused() -> None:
    with pytest.raises(BasicsStationCodecError, match="'dC'"):
        DownlinkMessage.from_dict({"msgtype": "dnmsg", "DevEui": "01", "diid": 1, "pdu": "00", "RX2DR": 0,
                                   "RX2Freq": 869_525_000})


def test_dnsched_entries_need_exactly_one_time() -> None:
    entry = ScheduledFrame(diid=3, dr=3, freq=869_525_000, pdu=b"\x01", gpstime=1_400_000_000_000_000)
    schedule = DownlinkSchedule((entry,), mux_time=1.5)
    document = schedule.to_dict()
    assert document == {"msgtype": "dnsched", "schedule": [{"diid": 3, "DR": 3, "Freq": 869525000, "pdu": "01",
                                                             "gpstime": 1400000000000000}], "MuxTime": 1.5}
    assert DownlinkSchedule.from_dict(document) == schedule
    with pytest.raises(BasicsStationCodecError, match="exactly one"):
        ScheduledFrame(diid=3, dr=3, freq=869_525_000, pdu=b"", ontime=5, xtime=9)


def test_timesync_request_and_reply() -> None:
    request = decode_station_message('{"msgtype":"timesync","txtime":1234567}')
    assert request == TimesyncRequest(txtime=1234567)
    reply = TimesyncReply(gpstime=1_400_000_000_000_000, txtime=1234567, mux_time=1795356891.25)
    assert reply.to_dict() == {"msgtype": "timesync", "txtime": 1234567, "gpstime": 1400000000000000,
                               "MuxTime": 1795356891.25}
    assert TimesyncReply.from_dict(reply.to_dict()) == reply
    push = TimesyncReply(gpstime=5, xtime=14918174035602480)
    assert push.to_dict() == {"msgtype": "timesync", "xtime": 14918174035602480, "gpstime": 5}


def test_unknown_station_message_is_refused() -> None:
    with pytest.raises(BasicsStationCodecError, match="not a station data message"):
        decode_station_message('{"msgtype":"version"}')
    with pytest.raises(BasicsStationCodecError, match="not a station data message"):
        decode_station_message({"msgtype": ["updf"]})
    with pytest.raises(BasicsStationCodecError, match="JSON"):
        decode_station_message("{not json")

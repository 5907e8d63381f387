"""LoRaWAN 1.0.x MAC commands. Expected octets are written out from the LoRaWAN 1.0.3 §5 tables."""

from __future__ import annotations

import pytest

from otaharness.protocols.lorawan import (
    FrameTooShortError,
    LoRaWANError,
    MType,
    SessionKeys,
    UnknownMacCommandError,
    build_data_frame,
    decode_mac_commands,
    decode_phy_payload,
    encode_mac_commands,
)
from otaharness.protocols.lorawan.mac_commands import (
    DeviceTimeAns,
    DeviceTimeReq,
    DevStatusAns,
    DevStatusReq,
    DlChannelAns,
    DlChannelReq,
    DutyCycleAns,
    DutyCycleReq,
    LinkADRAns,
    LinkADRReq,
    LinkCheckAns,
    LinkCheckReq,
    MacCommand,
    NewChannelAns,
    NewChannelReq,
    RXParamSetupAns,
    RXParamSetupReq,
    RXTimingSetupAns,
    RXTimingSetupReq,
    TxParamSetupAns,
    TxParamSetupReq,
)

DOWNLINK_CASES: list[tuple[MacCommand, str]] = [
    (LinkCheckAns(margin=20, gw_cnt=3), "02 14 03"),
    # DR5, TXPower 1; ChMask channels 0-2; ChMaskCntl 0, NbTrans 1
    (LinkADRReq(data_rate=5, tx_power=1, ch_mask=0x0007, ch_mask_cntl=0, nb_trans=1), "03 51 0700 01"),
    (LinkADRReq(data_rate=0, tx_power=0, ch_mask=0xFF00, ch_mask_cntl=6, nb_trans=15), "03 00 00ff 6f"),
    (DutyCycleReq(max_duty_cycle=7), "04 07"),
    # RX1DRoffset 2, RX2 DR3, 869.525 MHz = 8695250 * 100 Hz = 0x84ADD2
    (RXParamSetupReq(rx1_dr_offset=2, rx2_data_rate=3, frequency_hz=869_525_000), "05 23 d2ad84"),
    (DevStatusReq(), "06"),
    # ChIndex 3, 867.1 MHz = 8671000 = 0x844F18, MaxDR 5 / MinDR 0
    (NewChannelReq(ch_index=3, frequency_hz=867_100_000, max_dr=5, min_dr=0), "07 03 184f84 50"),
    (RXTimingSetupReq(delay=2), "08 02"),
    (TxParamSetupReq(downlink_dwell_time=True, uplink_dwell_time=False, max_eirp_index=5), "09 25"),
    (DlChannelReq(ch_index=1, frequency_hz=868_300_000), "0a 01 f87d84"),
    (DeviceTimeAns(gps_seconds=0x4D2F1E0A, fraction_256=0x80), "0d 0a1e2f4d 80"),
    # LoRaWAN 1.0.3 §5.9 example: 2016-02-12 14:24:31 UTC = 1139322288 = 0x43E8ADB0 GPS seconds
    (DeviceTimeAns(gps_seconds=1139322288), "0d b0ade843 00"),
]

UPLINK_CASES: list[tuple[MacCommand, str]] = [
    (LinkCheckReq(), "02"),
    (LinkADRAns(channel_mask_ack=True, data_rate_ack=False, power_ack=True), "03 05"),
    (DutyCycleAns(), "04"),
    (RXParamSetupAns(channel_ack=False, rx2_data_rate_ack=True, rx1_dr_offset_ack=True), "05 06"),
    (DevStatusAns(battery=254, margin=-1), "06 fe 3f"),
    (DevStatusAns(battery=0, margin=31), "06 00 1f"),
    (NewChannelAns(channel_frequency_ok=True, data_rate_range_ok=False), "07 01"),
    (RXTimingSetupAns(), "08"),
    (TxParamSetupAns(), "09"),
    (DlChannelAns(channel_frequency_ok=True, uplink_frequency_exists=True), "0a 03"),
    (DeviceTimeReq(), "0d"),
]


@pytest.mark.parametrize(("command", "wire"), DOWNLINK_CASES,
                         ids=[type(c).__name__ for c, _ in DOWNLINK_CASES])
def test_downlink_command_layout(command: MacCommand, wire: str) -> None:
    data = bytes.fromhex(wire)
    assert command.to_bytes() == data
    assert decode_mac_commands(data, uplink=False) == [command]


@pytest.mark.parametrize(("command", "wire"), UPLINK_CASES,
                         ids=[type(c).__name__ for c, _ in UPLINK_CASES])
def test_uplink_command_layout(command: MacCommand, wire: str) -> None:
    data = bytes.fromhex(wire)
    assert command.to_bytes() == data
    assert decode_mac_commands(data, uplink=True) == [command]


def test_same_cid_decodes_per_direction() -> None:
    assert decode_mac_commands(b"\x06", uplink=False) == [DevStatusReq()]
    with pytest.raises(FrameTooShortError, match="DevStatusAns"):
        decode_mac_commands(b"\x06", uplink=True)


def test_concatenated_commands_in_fopts() -> None:
    commands = [LinkADRAns(), DevStatusAns(battery=100, margin=-20), DeviceTimeReq(), LinkCheckReq()]
    fopts = encode_mac_commands(commands)
    assert fopts == bytes.fromhex("0307" "06642c" "0d" "02")
    keys = SessionKeys(nwk_s_key=bytes(16), app_s_key=bytes(16))
    frame = decode_phy_payload(build_data_frame(MType.UNCONFIRMED_DATA_UP, dev_addr=1, fcnt=9, keys=keys,
                                                fopts=fopts).to_bytes())
    assert decode_mac_commands(frame.fopts, uplink=frame.uplink) == commands


def test_fopts_limit_of_15_octets() -> None:
    keys = SessionKeys(nwk_s_key=bytes(16), app_s_key=bytes(16))
    commands = [LinkADRReq(data_rate=0, tx_power=0, ch_mask=7)] * 3 + [DevStatusReq()]
    fopts = encode_mac_commands(commands)
    assert len(fopts) == 16
    with pytest.raises(LoRaWANError, match="at most 15"):
        build_data_frame(MType.UNCONFIRMED_DATA_DOWN, dev_addr=1, fcnt=0, keys=keys, fopts=fopts)
    frame = build_data_frame(MType.UNCONFIRMED_DATA_DOWN, dev_addr=1, fcnt=0, keys=keys, fopts=fopts[:15])
    assert decode_mac_commands(frame.fopts, uplink=False) == commands[:3]


def test_unknown_cid() -> None:
    with pytest.raises(UnknownMacCommandError, match="0x0b at offset 1"):
        decode_mac_commands(b"\x02\x0b", uplink=True)


def test_truncated_command() -> None:
    with pytest.raises(FrameTooShortError, match="LinkADRReq payload needs 4"):
        decode_mac_commands(bytes.fromhex("0351"), uplink=False)


def test_rfu_bits_are_ignored_on_decode() -> None:
    assert decode_mac_commands(b"\x08\xf2", uplink=False) == [RXTimingSetupReq(delay=2)]


@pytest.mark.parametrize("make", [
    lambda: LinkADRReq(data_rate=16, tx_power=0, ch_mask=0),
    lambda: DevStatusAns(battery=1, margin=32),
    lambda: RXParamSetupReq(rx1_dr_offset=0, rx2_data_rate=0, frequency_hz=869_525_050),
    lambda: NewChannelReq(ch_index=0, frequency_hz=1 << 31, max_dr=5, min_dr=0),
])
def test_out_of_range_fields(make) -> None:
    with pytest.raises(LoRaWANError):
        make()


def test_derived_values() -> None:
    assert TxParamSetupReq(downlink_dwell_time=False, uplink_dwell_time=False, max_eirp_index=5).max_eirp_dbm == 16
    assert RXTimingSetupReq(delay=0).rx1_delay_s == 1
    assert DeviceTimeAns(gps_seconds=10, fraction_256=64).gps_time == 10.25
    assert not LinkADRAns(power_ack=False).all_ok

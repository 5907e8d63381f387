"""MAC command rules of the emulated device (LoRaWAN 1.0.3 §5, RP002 EU868), its duty cycle and
multicast acceptance rules."""

from __future__ import annotations

import asyncio
import random

import pytest
from lorawan_radio_world import (
    APP_S_KEY,
    NWK_S_KEY,
    RX2_FREQUENCY,
    MiniNetwork,
    NetworkSession,
    make_device,
    run_virtual,
)

from otaharness.emulators.lorawan_device import AbpActivation, DeviceClass, DeviceConfig, MacSettings
from otaharness.emulators.lorawan_device.mac import MacContext, answer_mac_commands
from otaharness.runtime.radio import RadioMedium, Transmission
from otaharness.protocols.lorawan import EU868, DownlinkFCtrl, MType, SessionKeys, build_data_frame
from otaharness.protocols.lorawan import mac_commands as mc
from otaharness.protocols.lorawan.keys import derive_mc_session_keys

KEYS = SessionKeys(nwk_s_key=NWK_S_KEY, app_s_key=APP_S_KEY)


def _context(snr: float = 0.0) -> MacContext:
    config = DeviceConfig(dev_eui=1, abp=AbpActivation(1, KEYS))
    return MacContext(EU868, MacSettings.defaults(EU868, config), last_snr_db=snr, battery=254,
                      on_link_check=lambda ans: None, on_device_time=lambda ans: None)


def test_new_channel_may_not_touch_the_default_channels() -> None:
    ctx = _context()
    answers = answer_mac_commands(ctx, [
        mc.NewChannelReq(ch_index=0, frequency_hz=867_100_000, max_dr=5, min_dr=0),
        mc.NewChannelReq(ch_index=3, frequency_hz=867_100_000, max_dr=5, min_dr=0),
        mc.NewChannelReq(ch_index=4, frequency_hz=867_300_000, max_dr=1, min_dr=3),
    ])
    assert answers == [mc.NewChannelAns(channel_frequency_ok=False, data_rate_range_ok=True),
                       mc.NewChannelAns(), mc.NewChannelAns(channel_frequency_ok=True, data_rate_range_ok=False)]
    assert ctx.settings.channels[0].frequency_hz == 868_100_000
    assert ctx.settings.channels[3].frequency_hz == 867_100_000
    assert ctx.settings.channels[4] is None


def test_dl_channel_needs_an_existing_uplink_channel() -> None:
    ctx = _context()
    ok, missing = answer_mac_commands(ctx, [mc.DlChannelReq(ch_index=1, frequency_hz=869_100_000),
                                            mc.DlChannelReq(ch_index=9, frequency_hz=869_100_000)])
    assert ok.all_ok and not missing.uplink_frequency_exists
    assert ctx.settings.channels[1].rx1_frequency_hz == 869_100_000


def test_rx_param_setup_is_all_or_nothing() -> None:
    ctx = _context()
    [refused] = answer_mac_commands(ctx, [mc.RXParamSetupReq(rx1_dr_offset=2, rx2_data_rate=7, frequency_hz=869_525_000)])
    assert refused == mc.RXParamSetupAns(channel_ack=True, rx2_data_rate_ack=False, rx1_dr_offset_ack=True)
    assert ctx.settings.rx1_dr_offset == 0
    [accepted] = answer_mac_commands(ctx, [mc.RXParamSetupReq(rx1_dr_offset=2, rx2_data_rate=3, frequency_hz=869_525_000)])
    assert accepted.all_ok and (ctx.settings.rx1_dr_offset, ctx.settings.rx2_data_rate) == (2, 3)


def test_dev_status_reports_battery_and_clamped_snr_margin() -> None:
    assert answer_mac_commands(_context(snr=7.4), [mc.DevStatusReq()]) == [mc.DevStatusAns(battery=254, margin=7)]
    assert answer_mac_commands(_context(snr=-50), [mc.DevStatusReq()]) == [mc.DevStatusAns(battery=254, margin=-32)]


def test_link_adr_channel_mask_control_6_turns_every_defined_channel_on() -> None:
    ctx = _context()
    answer_mac_commands(ctx, [mc.LinkADRReq(data_rate=2, tx_power=0, ch_mask=0b001)])
    assert [ch.enabled for ch in ctx.settings.channels[:3]] == [True, False, False]
    [answer] = answer_mac_commands(ctx, [mc.LinkADRReq(data_rate=2, tx_power=0, ch_mask=0, ch_mask_cntl=6)])
    assert answer.all_ok and all(ch.enabled for ch in ctx.settings.channels[:3])


def _abp_device(medium, clock, **overrides):
    return make_device(medium, clock, "dev", DeviceConfig(dev_eui=1, abp=AbpActivation(0x26000001, KEYS), **overrides))


def test_device_keeps_its_own_sub_band_duty_cycle() -> None:
    async def main(clock):
        medium = RadioMedium(EU868, random.Random(1))
        starts = []
        medium.attach_gateway("gw", (0.0, 0.0), lambda r: starts.append((r.start, r.frame.airtime)))
        device = _abp_device(medium, clock, data_rate=0)
        await device.send(1, b"a")
        await device.send(1, b"b")
        return starts, device

    starts, device = run_virtual(main)
    (first, airtime), (second, _) = starts
    # The three default channels share sub-band g1 (1 %): the next start is airtime/0.01 later.
    assert second - first == pytest.approx(airtime / 0.01)
    assert device.counters["duty_cycle_waits"] == 1


def test_duty_cycle_req_adds_an_aggregate_limit() -> None:
    async def main(clock):
        medium = RadioMedium(EU868, random.Random(1))
        starts = []
        network = MiniNetwork(medium)
        network.gateway.on_uplink = lambda r: (starts.append((r.start, r.frame.airtime)), network.on_uplink(r))
        network.sessions[0x26000001] = NetworkSession(KEYS)
        replies = iter([(None, b"", False, mc.DutyCycleReq(max_duty_cycle=9).to_bytes())])
        network.responder = lambda frame, fcnt, r: next(replies, None)
        device = _abp_device(medium, clock)
        await device.send(1, b"a")  # gets DutyCycleReq: 1/512
        await device.send(1, b"b")  # answers; from now on 1/512 of the time
        await device.send(1, b"c")
        return starts

    starts = run_virtual(main)
    (_, _), (second, airtime), (third, _) = starts
    assert third - second == pytest.approx(airtime * 512)


def test_multicast_frames_breaking_the_rules_are_dropped() -> None:
    mc_addr = 0x01020304
    mc_keys = derive_mc_session_keys(bytes(range(1, 17)), mc_addr)

    async def main(clock):
        medium = RadioMedium(EU868, random.Random(1))
        gateway = medium.attach_gateway("gw", (0.0, 0.0), lambda r: None)
        got = []
        device = _abp_device(medium, clock, device_class=DeviceClass.C)
        device.on_downlink = lambda *a: got.append(a)
        device.add_multicast_group(2, mc_addr, mc_keys, min_fcnt=10, max_fcnt=11)
        frames = [
            (MType.CONFIRMED_DATA_DOWN, 10, 201, DownlinkFCtrl()),  # confirmed: not allowed
            (MType.UNCONFIRMED_DATA_DOWN, 10, 0, DownlinkFCtrl()),  # FPort 0: no MAC commands
            (MType.UNCONFIRMED_DATA_DOWN, 10, 201, DownlinkFCtrl(ack=True)),  # ACK set
            (MType.UNCONFIRMED_DATA_DOWN, 10, 201, DownlinkFCtrl()),  # fine
            (MType.UNCONFIRMED_DATA_DOWN, 12, 201, DownlinkFCtrl()),  # above maxMcFCount
        ]
        for mtype, fcnt, fport, fctrl in frames:
            phy = build_data_frame(mtype, dev_addr=mc_addr, fcnt=fcnt, keys=mc_keys, fport=fport, payload=b"x",
                                   fctrl=fctrl).to_bytes()
            gateway.transmit(Transmission(RX2_FREQUENCY, EU868.data_rate(0), phy, power_dbm=27))
            await asyncio.sleep(60)
        return device, got

    device, got = run_virtual(main)
    assert got == [(201, b"x", True)]
    assert device.counters["multicast_rejected"] == 3
    assert device.counters["multicast_fcnt_beyond_max"] == 1

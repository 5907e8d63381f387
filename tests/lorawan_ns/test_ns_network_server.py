"""The network server core on virtual time, with a fake gateway port and devices built from the
LoRaWAN codecs: joins, de-duplication, class A/C downlinks, multicast, counters, duty cycle,
restart."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from lorawan_ns_world import (
    APP_KEY,
    GATEWAY_1,
    GATEWAY_2,
    JOIN_EUI,
    XTIME_BASE,
    EndDevice,
    World,
    radio,
    run_world,
)
from otaharness.protocols.basics_station.lns_data import DeviceClass
from otaharness.protocols.lorawan import EU868, DataFrame, SessionKeys, derive_session_keys, frame_time_on_air_s
from otaharness.protocols.lorawan.mac_commands import (
    DeviceTimeAns,
    DeviceTimeReq,
    DevStatusAns,
    DevStatusReq,
    LinkCheckAns,
    LinkCheckReq,
    decode_mac_commands,
    encode_mac_commands,
)
from otaharness.runtime.clock import gps_seconds
from otaharness.servers.lorawan.server import MULTICAST_DEV_EUI_PREFIX

DEV_EUI = 0x0000_0000_1100_0002
NS_LOG = "otaharness.servers.lorawan.server"
NWK_S_KEY = bytes.fromhex("2b7e151628aed2a6abf7158809cf4f3c")
APP_S_KEY = bytes.fromhex("000102030405060708090a0b0c0d0e0f")


def abp_device(world: World, dev_eui: int, dev_addr: int, device_class: str = "A") -> EndDevice:
    world.server.add_abp_device(dev_eui, dev_addr, NWK_S_KEY, APP_S_KEY, device_class)
    return EndDevice(dev_eui, dev_addr=dev_addr, keys=SessionKeys(nwk_s_key=NWK_S_KEY, app_s_key=APP_S_KEY))


def test_otaa_join_end_to_end(tmp_path: Path) -> None:
    async def main(world: World) -> None:
        world.server.add_otaa_device(DEV_EUI, JOIN_EUI, APP_KEY)
        uplinks: list[tuple[int, int, bytes, int]] = []
        world.server.on_uplink(10, lambda eui, port, payload, meta: uplinks.append((eui, port, payload, meta.fcnt)))
        device = EndDevice(DEV_EUI)
        accept = await world.join(device)

        join_dnmsg = world.port.sent[-1].message
        assert join_dnmsg.device_class is DeviceClass.A and join_dnmsg.dev_eui == DEV_EUI
        assert join_dnmsg.rx_delay == EU868.join_accept_delay1_s == 5
        assert (join_dnmsg.rx1_dr, join_dnmsg.rx1_freq) == (5, 868_100_000)
        assert join_dnmsg.rx2_freq is None and join_dnmsg.xtime == XTIME_BASE and join_dnmsg.rctx == 0
        assert accept.rx_delay == 1 and accept.rx2_data_rate == 0 and accept.net_id == 0
        assert accept.dev_addr >> 25 == 0  # NwkID of NetID 0

        stored = world.server.device(DEV_EUI)
        assert stored.dev_addr == accept.dev_addr and stored.session_keys == device.keys
        assert world.server.registry.dev_nonce_used(DEV_EUI, device.dev_nonce)

        await world.receive(device.uplink(10, b"hello"))
        assert uplinks == [(DEV_EUI, 10, b"hello", 0)]
        assert world.server.device(DEV_EUI).fcnt_up == 0

    run_world(tmp_path, main)


def test_join_with_reused_dev_nonce_is_rejected(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    async def main(world: World) -> None:
        world.server.add_otaa_device(DEV_EUI, JOIN_EUI, APP_KEY)
        device = EndDevice(DEV_EUI)
        first = await world.join(device)
        sent = len(world.port.sent)
        with caplog.at_level(logging.WARNING, NS_LOG):
            await world.receive(device.join_request(dev_nonce=device.dev_nonce))
            await world.run_for(6)
        assert len(world.port.sent) == sent
        assert "DevNonce 1 was used before" in caplog.text
        assert world.server.device(DEV_EUI).dev_addr == first.dev_addr

        wrong_key = EndDevice(DEV_EUI, app_key=bytes(16))
        with caplog.at_level(logging.WARNING, NS_LOG):
            await world.receive(wrong_key.join_request(dev_nonce=77))
            await world.run_for(6)
        assert len(world.port.sent) == sent and "MIC check failed" in caplog.text
        assert not world.server.registry.dev_nonce_used(DEV_EUI, 77)

    run_world(tmp_path, main)


def test_uplink_heard_by_two_gateways_is_processed_once_and_answered_by_the_best(tmp_path: Path) -> None:
    async def main(world: World) -> None:
        device = abp_device(world, DEV_EUI, 0x2601_1B01)
        metas = []
        world.server.on_uplink(1, lambda eui, port, payload, meta: metas.append(meta))
        phy = device.uplink(1, b"\x01\x02", confirmed=True)
        await world.receive(phy, (GATEWAY_1, radio(snr=2.0, rssi=-100, xtime=XTIME_BASE + 5)),
                            (GATEWAY_2, radio(snr=9.5, rssi=-70, xtime=XTIME_BASE + 99, rctx=1)))
        assert len(metas) == 1
        assert metas[0].gateway_id == GATEWAY_2 and len(metas[0].receptions) == 2
        [ack] = world.port.sent
        assert ack.gateway == GATEWAY_2 and ack.message.xtime == XTIME_BASE + 99 and ack.message.rctx == 1
        frame, payload, _ = device.take_downlink(ack.message.pdu)
        assert frame.fctrl.ack and frame.fport is None and payload == b""

    run_world(tmp_path, main)


def test_class_a_downlink_goes_in_rx1_with_the_uplink_timing(tmp_path: Path) -> None:
    async def main(world: World) -> None:
        device = abp_device(world, DEV_EUI, 0x2601_1B01)
        handle = world.server.enqueue_downlink(DEV_EUI, 5, b"config")
        await world.run_for(30)
        assert world.port.sent == []  # class A: nothing before an uplink
        await world.receive(device.uplink(1, b"x"), (GATEWAY_1, radio(dr=3, freq=868_500_000, xtime=XTIME_BASE + 7,
                                                                       rctx=2)))
        [sent] = world.port.sent
        message = sent.message
        assert (message.device_class, message.rx_delay, message.xtime, message.rctx) == (DeviceClass.A, 1,
                                                                                           XTIME_BASE + 7, 2)
        assert (message.rx1_dr, message.rx1_freq, message.rx2_dr) == (3, 868_500_000, None)
        frame, payload, fcnt = device.take_downlink(message.pdu)
        assert (frame.fport, payload, fcnt, frame.confirmed) == (5, b"config", 0, False)
        await world.run_for(2)
        assert handle.transmitted.done() and handle.transmitted.result().diid == message.diid
        assert world.server.registry.queued(DEV_EUI, waiting_only=False) == []
        assert world.server.device(DEV_EUI).nfcnt_down == 1

    run_world(tmp_path, main)


def test_withdrawn_downlinks_never_go_out(tmp_path: Path) -> None:
    async def main(world: World) -> None:
        device = abp_device(world, DEV_EUI, 0x2601_1B01)
        withdrawn = world.server.enqueue_downlink(DEV_EUI, 201, b"setup")
        kept = world.server.enqueue_downlink(DEV_EUI, 5, b"config")
        assert world.server.withdraw_downlinks(DEV_EUI, {200, 201, 202, 203}) == 1
        assert withdrawn.transmitted.cancelled()
        await world.receive(device.uplink(1, b"x"), (GATEWAY_1, radio(xtime=XTIME_BASE + 7)))
        [sent] = world.port.sent
        frame, payload, _ = device.take_downlink(sent.message.pdu)
        assert (frame.fport, payload) == (5, b"config")
        await world.run_for(2)
        assert kept.transmitted.done() and world.server.registry.queued(DEV_EUI, waiting_only=False) == []

    run_world(tmp_path, main)


def test_class_a_falls_back_to_rx2_when_rx1_has_no_duty_cycle(tmp_path: Path) -> None:
    async def main(world: World) -> None:
        device = abp_device(world, DEV_EUI, 0x2601_1B01)
        await world.receive(device.uplink(1, b"a", confirmed=True))
        await world.run_for(1.5)
        # 1.7 s after the first: RX1 (868.1 MHz, 1 % band) is blocked by the first answer for
        # airtime/0.01 ≈ 4 s, RX2 (869.525 MHz, 10 % band) is free.
        await world.receive(device.uplink(1, b"b", confirmed=True))
        first, second = world.port.sent
        assert first.message.rx1_freq == 868_100_000
        assert second.message.rx1_freq is None
        assert (second.message.rx2_dr, second.message.rx2_freq) == (0, 869_525_000)
        assert second.message.rx_delay == 1 and second.message.xtime == XTIME_BASE
        assert device.take_downlink(second.message.pdu)[0].fctrl.ack

    run_world(tmp_path, main)


def test_class_c_downlink_is_sent_on_rx2_at_once(tmp_path: Path) -> None:
    async def main(world: World) -> None:
        device = abp_device(world, DEV_EUI, 0x2601_1B01, "C")
        early = world.server.enqueue_downlink(DEV_EUI, 7, b"waits")
        await world.run_for(10)
        assert world.port.sent == [] and not early.transmitted.done()  # no gateway known yet
        await world.receive(device.uplink(1, b"here"))  # delivers the waiting one in RX1
        await world.run_for(5)
        assert early.transmitted.done()

        handle = world.server.enqueue_downlink(DEV_EUI, 7, b"now", confirmed=True)
        enqueued_at = world.clock.monotonic()
        await world.run_for(2)
        sent = world.port.sent[-1]
        assert sent.at - enqueued_at < 0.5
        message = sent.message
        assert message.device_class is DeviceClass.C and message.xtime is None and message.rx1_freq is None
        assert (message.rx2_dr, message.rx2_freq, message.rx_delay) == (0, 869_525_000, 0)
        frame, payload, _ = device.take_downlink(message.pdu)
        assert frame.confirmed and payload == b"now"
        assert handle.transmitted.done() and not handle.acknowledged.done()
        await world.receive(device.uplink(1, b"", ack=True))
        assert handle.acknowledged.result() == 1  # the FCnt of the uplink carrying the ACK

    run_world(tmp_path, main)


def test_duty_cycle_delays_the_next_class_c_downlink(tmp_path: Path) -> None:
    async def main(world: World) -> None:
        device = abp_device(world, DEV_EUI, 0x2601_1B01, "C")
        await world.receive(device.uplink(1, b""))
        payload = bytes(40)
        handles = [world.server.enqueue_downlink(DEV_EUI, 9, payload) for _ in range(2)]
        await world.run_for(120)
        assert all(handle.transmitted.done() for handle in handles)
        first, second = world.port.sent
        airtime = frame_time_on_air_s(len(first.message.pdu), EU868.data_rate(0), uplink=False)
        blocked = airtime / 0.10  # 869.525 MHz is in the 10 % sub-band
        assert second.at - first.at >= blocked
        assert second.at - first.at < blocked + 1.0  # delayed, not dropped or stuck
        assert [device.take_downlink(s.message.pdu)[1] for s in (first, second)] == [payload, payload]

    run_world(tmp_path, main)


MC_ADDR = 0x01020304
MC_NWK_S_KEY = bytes.fromhex("c3f6b388bad6c000b23291ad52c11c7b")
MC_APP_S_KEY = bytes.fromhex("95cb4518ee375606735bbacbdce837fa")
DATA_FRAGMENT_N5 = bytes.fromhex("0805000b090f09")


def test_multicast_frames_go_through_every_gateway_one_after_the_other(tmp_path: Path) -> None:
    async def main(world: World) -> None:
        group = world.server.create_multicast_group(MC_ADDR, MC_NWK_S_KEY, MC_APP_S_KEY, 869_525_000, 5,
                                                    fcnt=0x0001_0005)
        first = world.server.enqueue_multicast(group, 201, DATA_FRAGMENT_N5, gateways=[GATEWAY_1, GATEWAY_2])
        second = world.server.enqueue_multicast(group.name, 201, b"\x08\x06\x00\x0b\x09\x0f\x09",
                                                gateways=[GATEWAY_1, GATEWAY_2])
        await world.run_for(0.01)
        assert len(world.port.sent) == 2  # the second frame waits for both dntxed
        await world.run_for(10)
        assert [sent.gateway for sent in world.port.sent] == [GATEWAY_1, GATEWAY_2, GATEWAY_1, GATEWAY_2]
        # Fact sheet §5 vector: McAddr 0x01020304, FCnt 0x00010005, FPort 201.
        expected = bytes.fromhex("60040302010005" + "00c9c3869c2dced18d9090e514")
        assert [s.message.pdu for s in world.port.sent[:2]] == [expected, expected]
        for sent in world.port.sent:
            assert sent.message.device_class is DeviceClass.C and sent.message.xtime is None
            assert (sent.message.rx2_freq, sent.message.rx2_dr) == (869_525_000, 5)
            assert sent.message.dev_eui == MULTICAST_DEV_EUI_PREFIX | MC_ADDR
        frame = DataFrame.from_bytes(world.port.sent[2].message.pdu)
        assert frame.fcnt16 == 6 and frame.mic_is_valid(MC_NWK_S_KEY, 0x0001_0006)
        assert first.fcnt == 0x0001_0005 and second.fcnt == 0x0001_0006
        assert set(first.transmitted.result()) == {GATEWAY_1, GATEWAY_2}
        # The second frame on the same gateway respects the 10 % band after the first.
        airtime = frame_time_on_air_s(len(expected), EU868.data_rate(5), uplink=False)
        assert world.port.sent[2].at - world.port.sent[0].at >= airtime / 0.10
        stored = world.server.registry.find_group(group.name)
        assert stored is not None and stored.fcnt == 0x0001_0007

    run_world(tmp_path, main)


def test_multicast_waits_for_dntxed_and_gives_up_after_a_timeout(tmp_path: Path,
                                                                  caplog: pytest.LogCaptureFixture) -> None:
    async def main(world: World) -> None:
        group = world.server.create_multicast_group(MC_ADDR, MC_NWK_S_KEY, MC_APP_S_KEY, 869_525_000, 5)
        world.port.mute.add(GATEWAY_2)
        with caplog.at_level(logging.WARNING, NS_LOG):
            first = world.server.enqueue_multicast(group, 201, b"\x01", gateways=[GATEWAY_1, GATEWAY_2])
            world.server.enqueue_multicast(group, 201, b"\x02", gateways=[GATEWAY_1, GATEWAY_2])
            await world.run_for(4)
            assert len(world.port.sent) == 2  # gateway 2 never confirmed: the next frame waits
            await world.run_for(10)
        assert len(world.port.sent) == 4
        assert first.transmitted.result()[GATEWAY_2] is None and first.transmitted.result()[GATEWAY_1] is not None
        assert "no dntxed" in caplog.text

    run_world(tmp_path, main)


def test_replayed_and_backward_uplinks_are_rejected_without_state_change(tmp_path: Path,
                                                                         caplog: pytest.LogCaptureFixture) -> None:
    async def main(world: World) -> None:
        device = abp_device(world, DEV_EUI, 0x2601_1B01)
        payloads: list[bytes] = []
        world.server.on_uplink(1, lambda eui, port, payload, meta: payloads.append(payload))
        original = device.uplink(1, b"first")
        await world.receive(original)
        device.fcnt_up = 5
        await world.receive(device.uplink(1, b"five"))
        before = world.server.device(DEV_EUI)
        with caplog.at_level(logging.WARNING, NS_LOG):
            await world.receive(device.uplink(1, b"five again", fcnt=5))
            await world.receive(device.uplink(1, b"three", fcnt=3))
            await world.receive(original)
        assert payloads == [b"first", b"five"]
        assert world.server.device(DEV_EUI) == before and before.fcnt_up == 5
        assert "FCnt 5 replayed" in caplog.text and "FCnt 3 went back (last 5)" in caplog.text
        assert "FCnt 0 went back" in caplog.text
        assert world.port.sent == []

    run_world(tmp_path, main)


def test_counter_rebuilt_across_the_16_bit_wrap(tmp_path: Path) -> None:
    async def main(world: World) -> None:
        world.server.add_abp_device(DEV_EUI, 0x2601_1B01, NWK_S_KEY, APP_S_KEY, fcnt_up=0xFFFE)
        device = EndDevice(DEV_EUI, dev_addr=0x2601_1B01, keys=SessionKeys(nwk_s_key=NWK_S_KEY, app_s_key=APP_S_KEY),
                           fcnt_up=0x1_0001)
        await world.receive(device.uplink(1, b"x"))
        assert world.server.device(DEV_EUI).fcnt_up == 0x1_0001

    run_world(tmp_path, main)


def test_bad_frames_are_dropped_with_a_log_line(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    async def main(world: World) -> None:
        device = abp_device(world, DEV_EUI, 0x2601_1B01)
        delivered: list[bytes] = []
        world.server.on_uplink(1, lambda eui, port, payload, meta: delivered.append(payload))
        good = device.uplink(1, b"payload")
        bad_mic = good[:-1] + bytes([good[-1] ^ 0x01])
        stranger = EndDevice(0x99, dev_addr=0x2601_FFFF, keys=SessionKeys(nwk_s_key=NWK_S_KEY, app_s_key=APP_S_KEY))
        short = {"msgtype": "updf", "MHdr": 0x40, "DevAddr": 0x2601_1B01, "FCtrl": 0x03, "FCnt": 1, "FOpts": "",
                 "FPort": -1, "FRMPayload": "", "MIC": 0, "DR": 5, "Freq": 868_100_000,
                 "upinfo": {"rctx": 0, "xtime": XTIME_BASE, "rssi": -60, "snr": 7}}
        with caplog.at_level(logging.WARNING, NS_LOG):
            await world.receive(bad_mic)
            await world.receive(stranger.uplink(1, b"?"))
            await world.server.handle_uplink(GATEWAY_1, short)
            await world.run_for(1)
        assert delivered == [] and world.server.device(DEV_EUI).fcnt_up is None
        assert "DevAddr 26011B01 dropped: MIC check failed" in caplog.text
        assert "unknown DevAddr 2601FFFF" in caplog.text
        assert "malformed message" in caplog.text and "FOptsLen 3" in caplog.text
        await world.receive(good)  # the real frame is still accepted afterwards
        assert delivered == [b"payload"]

    run_world(tmp_path, main)


def test_mac_commands_are_answered(tmp_path: Path) -> None:
    async def main(world: World) -> None:
        device = abp_device(world, DEV_EUI, 0x2601_1B01)
        requests = encode_mac_commands([LinkCheckReq(), DeviceTimeReq()])
        phy = device.uplink(None, fopts=requests)
        received_at = world.clock.monotonic()
        epoch_at_reception = world.clock.epoch()
        await world.receive(phy, (GATEWAY_1, radio(snr=4.0)), (GATEWAY_2, radio(snr=-3.0)))
        frame, _, _ = device.take_downlink(world.port.sent[-1].message.pdu)
        link_check, device_time = decode_mac_commands(frame.fopts, uplink=False)
        assert link_check == LinkCheckAns(margin=int(4.0 + 7.5), gw_cnt=2)  # SF7 floor -7.5 dB
        assert isinstance(device_time, DeviceTimeAns)
        assert device_time.gps_time == pytest.approx(gps_seconds(epoch_at_reception), abs=1 / 256)
        assert world.clock.monotonic() > received_at  # the answer used the reception time, not "now"

        world.server.request_dev_status(DEV_EUI)
        await world.run_for(10)
        await world.receive(device.uplink(1, b"tick"))
        frame, _, _ = device.take_downlink(world.port.sent[-1].message.pdu)
        assert decode_mac_commands(frame.fopts, uplink=False) == [DevStatusReq()]
        await world.receive(device.uplink(1, b"tock", fopts=DevStatusAns(battery=200, margin=-5).to_bytes()))
        stored = world.server.device(DEV_EUI)
        assert (stored.battery, stored.margin) == (200, -5)

    run_world(tmp_path, main)


def test_restart_keeps_devices_sessions_and_counters(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    async def main(world: World) -> None:
        world.server.add_otaa_device(DEV_EUI, JOIN_EUI, APP_KEY, "A")
        device = EndDevice(DEV_EUI)
        await world.join(device)
        world.server.enqueue_downlink(DEV_EUI, 3, b"one")
        first = device.uplink(1, b"a")
        await world.receive(first)
        await world.run_for(3)
        assert device.take_downlink(world.port.sent[-1].message.pdu)[2] == 0
        world.server.enqueue_downlink(DEV_EUI, 3, b"two")  # queued across the restart

        server = await world.restart()
        assert server.device(DEV_EUI).session_keys == device.keys
        with caplog.at_level(logging.WARNING, NS_LOG):
            await world.receive(first)
            assert "FCnt 0 replayed" in caplog.text
            await world.receive(device.join_request(dev_nonce=device.dev_nonce))
            await world.run_for(6)
            assert f"DevNonce {device.dev_nonce} was used before" in caplog.text
        await world.receive(device.uplink(1, b"b"))
        frame, payload, fcnt = device.take_downlink(world.port.sent[-1].message.pdu)
        assert (payload, fcnt) == (b"two", 1)  # NFCntDown continued
        assert server.device(DEV_EUI).fcnt_up == 1

    run_world(tmp_path, main)


def test_rejoin_allocates_a_new_session(tmp_path: Path) -> None:
    async def main(world: World) -> None:
        world.server.add_otaa_device(DEV_EUI, JOIN_EUI, APP_KEY)
        device = EndDevice(DEV_EUI)
        first = await world.join(device)
        await world.run_for(60)
        second = await world.join(device)
        assert second.dev_addr != first.dev_addr
        stored = world.server.device(DEV_EUI)
        expected = derive_session_keys(APP_KEY, join_nonce=second.join_nonce, net_id=0, dev_nonce=device.dev_nonce)
        assert stored.session_keys == expected and stored.fcnt_up is None and stored.nfcnt_down == 0

    run_world(tmp_path, main)


def test_timesync_reply_echoes_txtime_with_gps_microseconds(tmp_path: Path) -> None:
    async def main(world: World) -> None:
        reply = world.server.handle_timesync(GATEWAY_1, {"msgtype": "timesync", "txtime": 123456789})
        assert reply["msgtype"] == "timesync" and reply["txtime"] == 123456789
        assert reply["gpstime"] == int(gps_seconds(world.clock.epoch()) * 1_000_000)
        assert reply["MuxTime"] == world.clock.epoch()

    run_world(tmp_path, main)


def test_gateway_not_connected_keeps_the_downlink_queued(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    async def main(world: World) -> None:
        device = abp_device(world, DEV_EUI, 0x2601_1B01)
        world.server.enqueue_downlink(DEV_EUI, 4, b"later")
        world.port.disconnected.add(GATEWAY_1)
        with caplog.at_level(logging.WARNING, NS_LOG):
            await world.receive(device.uplink(1, b"x"))
        assert "not sent" in caplog.text and world.port.sent == []
        world.port.disconnected.clear()
        await world.receive(device.uplink(1, b"y"))
        assert device.take_downlink(world.port.sent[-1].message.pdu)[1] == b"later"

    run_world(tmp_path, main)


def test_class_c_queue_is_resumed_after_a_restart(tmp_path: Path) -> None:
    async def main(world: World) -> None:
        device = abp_device(world, DEV_EUI, 0x2601_1B01, "C")
        await world.receive(device.uplink(1, b"hello"), (GATEWAY_2, radio()))
        world.server.enqueue_downlink(DEV_EUI, 8, b"persisted")
        await world.restart()  # before the class C sender ran
        assert world.port.sent == []
        await world.run_for(2)
        [sent] = world.port.sent
        assert sent.gateway == GATEWAY_2 and sent.message.device_class is DeviceClass.C
        assert device.take_downlink(sent.message.pdu)[1] == b"persisted"
        assert world.server.registry.queued(DEV_EUI, waiting_only=False) == []

    run_world(tmp_path, main)


def test_confirmed_downlink_without_ack_is_reported(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    async def main(world: World) -> None:
        device = abp_device(world, DEV_EUI, 0x2601_1B01)
        handle = world.server.enqueue_downlink(DEV_EUI, 2, b"please ack", confirmed=True)
        await world.receive(device.uplink(1, b"a"))
        frame, payload, _ = device.take_downlink(world.port.sent[-1].message.pdu)
        assert frame.confirmed and payload == b"please ack"
        await world.run_for(3)
        with caplog.at_level(logging.WARNING, NS_LOG):
            await world.receive(device.uplink(1, b"b"))  # no ACK bit
        assert handle.acknowledged.result() is None
        assert "did not acknowledge confirmed downlink" in caplog.text

    run_world(tmp_path, main)

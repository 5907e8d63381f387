"""The emulated end device on the medium: join, class A windows, class C, multicast, counters, MAC, NVM."""

from __future__ import annotations

import asyncio
import random

import pytest
from lorawan_radio_world import (
    APP_KEY,
    APP_S_KEY,
    CF_LIST_FREQUENCIES,
    NWK_S_KEY,
    RX2_FREQUENCY,
    MiniNetwork,
    NetworkSession,
    make_device,
    otaa_config,
    run_virtual,
)

from otaharness.emulators.lorawan_device import (
    AbpActivation,
    DeviceClass,
    DeviceConfig,
    DeviceError,
    DevNonceMode,
)
from otaharness.runtime.radio import RadioMedium, Transmission
from otaharness.protocols.lorawan import (
    EU868,
    DataFrame,
    MType,
    SessionKeys,
    build_data_frame,
    decode_mac_commands,
    derive_mc_session_keys,
    derive_session_keys,
)
from otaharness.protocols.lorawan import mac_commands as mc

ABP_ADDR = 0x26011B01
ABP_KEYS = SessionKeys(nwk_s_key=NWK_S_KEY, app_s_key=APP_S_KEY)
MC_ADDR = 0x01020304
MC_KEYS = derive_mc_session_keys(bytes(range(1, 17)), MC_ADDR)


def abp_config(**overrides) -> DeviceConfig:
    return DeviceConfig(dev_eui=0x0004A30B00000001, abp=AbpActivation(ABP_ADDR, ABP_KEYS), **overrides)


def downlink(fcnt: int, *, fport: int | None = 10, payload: bytes = b"hi", addr: int = ABP_ADDR,
             keys: SessionKeys = ABP_KEYS, ack: bool = False, fopts: bytes = b"",
             mtype: MType = MType.UNCONFIRMED_DATA_DOWN) -> bytes:
    from otaharness.protocols.lorawan import DownlinkFCtrl

    return build_data_frame(mtype, dev_addr=addr, fcnt=fcnt, keys=keys, fport=fport, payload=payload,
                            fctrl=DownlinkFCtrl(ack=ack), fopts=fopts).to_bytes()


def _abp_network(medium: RadioMedium, **kwargs) -> MiniNetwork:
    network = MiniNetwork(medium, **kwargs)
    network.sessions[ABP_ADDR] = NetworkSession(ABP_KEYS)
    return network


def test_otaa_join_end_to_end_then_confirmed_uplink_acknowledged() -> None:
    async def main(clock):
        medium = RadioMedium(EU868, random.Random(3))
        network = MiniNetwork(medium, app_keys={0x0004A30B001C0530: APP_KEY},
                              responder=lambda frame, fcnt, r: (None, b"", frame.confirmed, b""))
        sessions = []
        device = make_device(medium, clock, "dev", otaa_config(),
                             on_session=lambda addr, keys: sessions.append((addr, keys)))
        joined = await device.join()
        acked = await device.send(2, b"temperature", confirmed=True)
        return network, device, joined, acked, sessions

    network, device, joined, acked, sessions = run_virtual(main)
    assert joined and acked
    [request] = network.join_requests
    expected = derive_session_keys(APP_KEY, join_nonce=1, net_id=0x13, dev_nonce=request.dev_nonce)
    assert device.session.keys == expected
    assert sessions == [(0x26000001, expected)]
    assert [ch.frequency_hz for ch in device.mac.channels if ch] == list(EU868.default_channels_hz) + list(
        CF_LIST_FREQUENCIES)
    [(frame, fcnt, _)] = network.uplinks
    assert frame.mtype is MType.CONFIRMED_DATA_UP and fcnt == 0
    assert frame.decrypt_payload(expected, 0) == b"temperature"
    assert device.session.fcnt_up == 1 and device.session.fcnt_down == 0


def test_join_accept_outside_the_join_windows_is_missed() -> None:
    async def main(clock):
        medium = RadioMedium(EU868, random.Random(3))
        network = MiniNetwork(medium, app_keys={0x0004A30B001C0530: APP_KEY})
        network._join = lambda request, reception: None  # never answers: the device retries
        device = make_device(medium, clock, "dev", otaa_config(join_attempts=3))
        return await device.join(), device

    joined, device = run_virtual(main)
    assert not joined
    assert device.counters["join_requests"] == 3
    assert len(device.nvm.used_dev_nonces) == 3


def _class_a_exchange(offset_s: float, *, frequency: int | None = None):
    """ABP device sends one uplink; the network answers ``offset_s`` after RX1 opens."""
    async def main(clock):
        medium = RadioMedium(EU868, random.Random(3))
        got = []
        network = _abp_network(medium)
        device = make_device(medium, clock, "dev", abp_config(), on_downlink=lambda *a: got.append(a))

        def respond(frame, fcnt, reception):
            network.send_at(reception.end + 1.0 + offset_s, frequency or reception.frequency_hz, 5,
                            downlink(0, payload=b"window"))

        network.responder = lambda frame, fcnt, reception: respond(frame, fcnt, reception)
        await device.send(1, b"up")
        await asyncio.sleep(5)
        return medium, device, got

    return run_virtual(main)


def test_class_a_downlink_in_rx1_is_received() -> None:
    medium, device, got = _class_a_exchange(0.0)
    assert got == [(10, b"window", False)]


def test_class_a_downlink_at_a_wrong_time_or_frequency_is_missed() -> None:
    for offset, frequency in ((0.05, None), (-0.3, None), (0.0, 868_900_000)):
        medium, device, got = _class_a_exchange(offset, frequency=frequency)
        assert got == [], (offset, frequency)
        assert medium.counters["not_listening"] == 1


def test_class_a_rx2_window_catches_the_downlink() -> None:
    async def main(clock):
        medium = RadioMedium(EU868, random.Random(3))
        got = []
        network = _abp_network(medium)
        network.responder = lambda frame, fcnt, r: network.send_at(r.end + 2.0, RX2_FREQUENCY, 0, downlink(0))
        device = make_device(medium, clock, "dev", abp_config(), on_downlink=lambda *a: got.append(a))
        await device.send(1, b"up")
        return got

    assert run_virtual(main) == [(10, b"hi", False)]


def test_class_c_device_hears_rx2_at_any_time_class_a_does_not() -> None:
    async def main(clock):
        medium = RadioMedium(EU868, random.Random(3))
        got: dict[str, list] = {"A": [], "C": []}
        network = _abp_network(medium)
        for cls in (DeviceClass.A, DeviceClass.C):
            make_device(medium, clock, cls.value, abp_config(device_class=cls),
                        on_downlink=lambda *a, c=cls.value: got[c].append(a))
        await asyncio.sleep(100)
        network.gateway.transmit(Transmission(RX2_FREQUENCY, EU868.data_rate(0), downlink(0), power_dbm=27))
        await asyncio.sleep(5)
        return got

    got = run_virtual(main)
    assert got == {"A": [], "C": [(10, b"hi", False)]}


def test_multicast_reaches_group_members_in_their_session_only() -> None:
    session_frequency, session_dr = 869_525_000, 3

    async def main(clock):
        medium = RadioMedium(EU868, random.Random(3))
        got: dict[str, list] = {"member": [], "outsider": [], "other-group": []}
        network = _abp_network(medium)
        devices = {name: make_device(medium, clock, name, abp_config(device_class=DeviceClass.C),
                                     position=(300.0 + i, 0.0), on_downlink=lambda *a, n=name: got[n].append(a))
                   for i, name in enumerate(got)}
        start = devices["member"].clock.gps() + 10
        devices["member"].add_multicast_group(0, MC_ADDR, MC_KEYS)
        devices["member"].start_multicast_session(0, start_gps=start, timeout_exponent=6,
                                                  frequency_hz=session_frequency, data_rate=session_dr)
        other = derive_mc_session_keys(bytes(16), 0x0A0B0C0D)
        devices["other-group"].add_multicast_group(0, 0x0A0B0C0D, other)
        devices["other-group"].start_multicast_session(0, start_gps=start, timeout_exponent=6,
                                                       frequency_hz=session_frequency, data_rate=session_dr)

        def send(fcnt: int) -> None:
            network.gateway.transmit(Transmission(session_frequency, EU868.data_rate(session_dr),
                                                  downlink(fcnt, fport=201, payload=bytes([fcnt]), addr=MC_ADDR,
                                                           keys=MC_KEYS), power_dbm=27))

        send(0)  # before the session: the member still listens on RX2 DR0
        await asyncio.sleep(20)
        send(1)
        await asyncio.sleep(10)
        send(2)
        await asyncio.sleep(100)  # after the 64 s session
        send(3)
        await asyncio.sleep(5)
        return got, devices

    got, devices = run_virtual(main)
    assert got["member"] == [(201, bytes([1]), True), (201, bytes([2]), True)]
    assert got["outsider"] == [] and got["other-group"] == []
    assert devices["other-group"].counters["not_for_me"] == 2
    assert devices["member"].multicast[0].last_fcnt == 2


def test_replayed_downlink_is_ignored() -> None:
    async def main(clock):
        medium = RadioMedium(EU868, random.Random(3))
        got = []
        network = _abp_network(medium)
        first = downlink(7, payload=b"once")
        network.responder = lambda frame, fcnt, r: network.send_at(r.end + 1.0, r.frequency_hz, 5, first)
        device = make_device(medium, clock, "dev", abp_config(), on_downlink=lambda *a: got.append(a))
        await device.send(1, b"a")
        await asyncio.sleep(10)
        await device.send(1, b"b")  # the same downlink bytes again in RX1
        return device, got

    device, got = run_virtual(main)
    assert got == [(10, b"once", False)]
    assert device.counters["replayed"] == 1
    assert device.session.fcnt_down == 7


def test_downlink_counters_rebuild_past_16_bits() -> None:
    async def main(clock):
        medium = RadioMedium(EU868, random.Random(3))
        got = []
        network = _abp_network(medium)
        fcnts = iter([0xFFFE, 0xFFFF, 0x10000, 0x10003])
        network.responder = lambda frame, fcnt, r: network.send_at(
            r.end + 1.0, r.frequency_hz, 5, downlink(next(fcnts), payload=b"x"))
        device = make_device(medium, clock, "dev", abp_config(device_class=DeviceClass.A),
                             on_downlink=lambda *a: got.append(a))
        device.session.fcnt_down = 0xFFF0
        for _ in range(4):
            await device.send(1, b"tick")
            await asyncio.sleep(10)
        return device, got

    device, got = run_virtual(main)
    assert len(got) == 4
    assert device.session.fcnt_down == 0x10003
    assert device.counters["mic_failed"] == 0


def test_unacknowledged_confirmed_uplink_is_retransmitted_with_the_same_fcnt() -> None:
    async def main(clock):
        medium = RadioMedium(EU868, random.Random(3))
        network = _abp_network(medium)
        device = make_device(medium, clock, "dev", abp_config(confirmed_attempts=4))
        acked = await device.send(3, b"?", confirmed=True)
        return network, device, acked

    network, device, acked = run_virtual(main)
    assert not acked
    assert [fcnt for _, fcnt, _ in network.uplinks] == [0, 0, 0, 0]
    gaps = [b.start - a.end for (_, _, a), (_, _, b) in zip(network.uplinks, network.uplinks[1:])]
    # RX2 (2 s + window) then ACK_TIMEOUT 1..3 s, or a longer duty-cycle wait.
    assert all(gap > 3.0 for gap in gaps)
    assert device.session.fcnt_up == 1 and device.counters["retransmissions"] == 3


def test_mac_commands_are_applied_and_answered_on_the_next_uplink() -> None:
    requests = mc.encode_mac_commands([
        mc.LinkADRReq(data_rate=3, tx_power=2, ch_mask=0b011, nb_trans=1),
        mc.DevStatusReq(),
        mc.RXTimingSetupReq(delay=3),
    ])

    async def main(clock):
        medium = RadioMedium(EU868, random.Random(3))
        network = _abp_network(medium)
        answers = iter([(None, b"", False, requests)])
        network.responder = lambda frame, fcnt, r: next(answers, None)
        device = make_device(medium, clock, "dev", abp_config(battery=200))
        await device.send(1, b"a")
        await asyncio.sleep(10)
        await device.send(1, b"b")
        await asyncio.sleep(10)
        await device.send(1, b"c")
        return network, device

    network, device = run_virtual(main)
    second, third = network.uplinks[1][0], network.uplinks[2][0]
    answers = decode_mac_commands(second.fopts, uplink=True)
    assert [type(a) for a in answers] == [mc.RXTimingSetupAns, mc.LinkADRAns, mc.DevStatusAns]
    assert answers[1].all_ok and answers[2].battery == 200
    # RXTimingSetupAns is repeated until a downlink arrives (none came after the first).
    assert decode_mac_commands(third.fopts, uplink=True) == [mc.RXTimingSetupAns()]
    assert device.mac.data_rate == 3 and device.mac.tx_power_index == 2 and device.mac.rx1_delay_s == 3
    assert [ch.enabled for ch in device.mac.channels[:3]] == [True, True, False]
    assert second.mtype is MType.UNCONFIRMED_DATA_UP
    assert network.uplinks[1][2].data_rate.index == 3  # the new data rate is in use


def test_link_adr_with_an_undefined_channel_is_refused_and_not_applied() -> None:
    async def main(clock):
        medium = RadioMedium(EU868, random.Random(3))
        network = _abp_network(medium)
        answers = iter([(None, b"", False, mc.LinkADRReq(data_rate=3, tx_power=1, ch_mask=0b1000).to_bytes())])
        network.responder = lambda frame, fcnt, r: next(answers, None)
        device = make_device(medium, clock, "dev", abp_config())
        await device.send(1, b"a")
        await asyncio.sleep(10)
        await device.send(1, b"b")
        return network, device

    network, device = run_virtual(main)
    [answer] = decode_mac_commands(network.uplinks[1][0].fopts, uplink=True)
    assert answer == mc.LinkADRAns(channel_mask_ack=False, data_rate_ack=True, power_ack=True)
    assert device.mac.data_rate == 5


def test_device_time_answer_sets_the_drifting_clock() -> None:
    async def main(clock):
        medium = RadioMedium(EU868, random.Random(3))
        network = _abp_network(medium)
        device = make_device(medium, clock, "dev", abp_config(clock_offset_s=-42.0, clock_drift_ppm=100))

        def respond(frame, fcnt, reception):
            if any(isinstance(c, mc.DeviceTimeReq) for c in decode_mac_commands(frame.fopts, uplink=True)):
                gps = clock.gps() - (medium.now() - reception.end)
                answer = mc.DeviceTimeAns(gps_seconds=int(gps), fraction_256=int((gps % 1) * 256))
                return None, b"", False, answer.to_bytes()
            return None

        network.responder = respond
        await asyncio.sleep(3600)
        before = device.clock.gps() - clock.gps()
        device.request_device_time()
        await device.send(1, b"t")
        return before, device.clock.gps() - clock.gps()

    before, after = run_virtual(main)
    assert before == pytest.approx(-42.0 + 3600 * 100e-6, abs=1e-6)
    assert abs(after) < 1 / 256 + 1e-3


def test_reboot_keeps_what_nvm_keeps() -> None:
    async def main(clock):
        medium = RadioMedium(EU868, random.Random(3))
        network = _abp_network(medium)
        keeper = make_device(medium, clock, "keeper", abp_config())
        forgetful = make_device(medium, clock, "forgetful", abp_config(keep_fcnts=False), position=(0.0, 400.0))
        for device in (keeper, forgetful):
            device.add_multicast_group(1, MC_ADDR, MC_KEYS)
            await device.send(1, b"1")
            await asyncio.sleep(5)
            await device.send(1, b"2")
            await device.reboot()
        otaa = make_device(medium, clock, "otaa", otaa_config(dev_nonce_mode=DevNonceMode.COUNTER),
                           position=(0.0, -400.0))
        network.app_keys[otaa.config.dev_eui] = APP_KEY
        await otaa.join()
        await otaa.power_cut()
        assert otaa.session is not None  # kept in NVM by default
        await otaa.join()
        return network, keeper, forgetful

    network, keeper, forgetful = run_virtual(main)
    assert keeper.session.fcnt_up == 2 and forgetful.session.fcnt_up == 0
    assert keeper.multicast[1].mc_addr == MC_ADDR and forgetful.multicast[1].mc_addr == MC_ADDR
    assert [r.dev_nonce for r in network.join_requests] == [0, 1]


def test_reboot_cuts_an_uplink_in_progress() -> None:
    from otaharness.emulators.lorawan_device import DeviceResetError

    async def main(clock):
        medium = RadioMedium(EU868, random.Random(3))
        _abp_network(medium)
        device = make_device(medium, clock, "dev", abp_config(confirmed_attempts=8))
        sending = asyncio.ensure_future(device.send(1, b"x", confirmed=True))
        await asyncio.sleep(1.5)
        await device.reboot()
        with pytest.raises(DeviceResetError):
            await sending
        return await device.send(1, b"after")

    assert run_virtual(main) is True


def test_send_checks_its_arguments() -> None:
    async def main(clock):
        medium = RadioMedium(EU868, random.Random(3))
        device = make_device(medium, clock, "dev", otaa_config())
        with pytest.raises(DeviceError, match="join first"):
            await device.send(1, b"x")
        abp = make_device(medium, clock, "abp", abp_config(data_rate=0))
        with pytest.raises(DeviceError, match="fit at DR0"):
            await abp.send(1, bytes(52))
        with pytest.raises(DeviceError, match="FPort"):
            await abp.send(0, b"x")

    run_virtual(main)


@pytest.mark.slow  # a load run: 1,000 devices on one radio medium
def test_a_thousand_class_a_devices_share_the_air() -> None:
    count = 1000

    async def main(clock):
        medium = RadioMedium(EU868, random.Random(3))
        network = MiniNetwork(medium)
        rng = random.Random(9)
        devices = []
        for i in range(count):
            addr = 0x27000000 + i
            keys = SessionKeys(nwk_s_key=addr.to_bytes(16, "big"), app_s_key=APP_S_KEY)
            network.sessions[addr] = NetworkSession(keys)
            config = DeviceConfig(dev_eui=i + 1, abp=AbpActivation(addr, keys))
            devices.append(make_device(medium, clock, f"d{i}", config, position=(rng.uniform(-2000, 2000),
                                                                             rng.uniform(-2000, 2000)), seed=i))

        async def one(device, delay):
            await asyncio.sleep(delay)
            await device.send(1, b"hello")

        await asyncio.gather(*(one(d, rng.uniform(0, 600)) for d in devices))
        return medium, network

    medium, network = run_virtual(main)
    assert medium.counters["uplinks"] == count
    delivered = len(network.uplinks)
    assert delivered + medium.counters["lost_collision"] == count
    assert delivered > 0.9 * count

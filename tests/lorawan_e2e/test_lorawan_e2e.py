"""End to end on virtual time: device → radio medium → station emulator → LNS websocket →
network server, and back (dnmsg → station → medium → device, dntxed)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from otaharness.protocols.lorawan import EU868

from lorawan_e2e_world import GATEWAY_EUI, World, run_world


def test_join_uplink_and_class_a_downlink(tmp_path: Path) -> None:
    async def main(world: World) -> None:
        await world.station()
        device = world.device("dev1", 0x0004A30B001C0001)
        received: list[tuple[int, bytes, bool]] = []
        device.on_downlink = lambda fport, payload, multicast: received.append((fport, payload, multicast))
        assert await device.join()
        assert world.ns is not None and world.api is not None
        assert world.ns.device(0x0004A30B001C0001).dev_addr == device.session.dev_addr
        await device.send(2, b"hello")
        events = world.api.uplinks(2)
        assert [(e.dev_eui, e.payload, e.meta.fcnt) for e in events] == [(0x0004A30B001C0001, b"hello", 0)]
        handle = world.ns.enqueue_downlink(0x0004A30B001C0001, 3, b"down")
        await device.send(2, b"again")
        assert received == [(3, b"down", False)]
        dntxed = await asyncio.wait_for(handle.transmitted, 5)
        assert dntxed.dev_eui == 0x0004A30B001C0001 and dntxed.freq in EU868.default_channels_hz  # RX1

    run_world(tmp_path, main)


def test_station_sends_updf_fields_as_the_real_station(tmp_path: Path) -> None:
    """Signed DevAddr and MIC, FPort -1 without a port, the radio tail; RefTime from MuxTime."""
    from otaharness.emulators.lorawan_device import AbpActivation, DeviceConfig
    from otaharness.protocols.lorawan import SessionKeys

    keys = SessionKeys(nwk_s_key=bytes(range(16)), app_s_key=bytes(range(16, 32)))

    async def main(world: World) -> None:
        assert world.ns is not None and world.field is not None
        await world.station()
        world.ns.add_abp_device(0x1122, 0xFE00ABCD, keys.nwk_s_key, keys.app_s_key)
        device = world.field.add_device("abp", DeviceConfig(dev_eui=0x1122, abp=AbpActivation(0xFE00ABCD, keys)),
                                        (300.0, 0.0), world.rng("abp"))
        await device.send(None)  # no FPort: an empty frame
        await device.send(7, b"\x01\x02")
        session = world.server.lns.sessions[GATEWAY_EUI]
        updfs = [json.loads(text) for text in session.texts if '"updf"' in text]
        assert len(updfs) == 2
        assert list(updfs[0]) == ["msgtype", "MHdr", "DevAddr", "FCtrl", "FCnt", "FOpts", "FPort", "FRMPayload",
                                  "MIC", "RefTime", "DR", "Freq", "upinfo"]
        assert list(updfs[0]["upinfo"]) == ["rctx", "xtime", "gpstime", "fts", "rssi", "snr", "rxtime"]
        assert updfs[0]["DevAddr"] == 0xFE00ABCD - (1 << 32) and updfs[0]["FPort"] == -1
        assert updfs[1]["FPort"] == 7 and updfs[1]["FCnt"] == 1
        for message in updfs:
            assert -(1 << 31) <= message["MIC"] < (1 << 31)
            mux_time = world.clock.epoch()
            assert 0 < mux_time - message["RefTime"] < 3600  # MuxTime of router_config + elapsed
        assert [e.payload for e in world.api.uplinks(7)] == [b"\x01\x02"]  # type: ignore[union-attr]

    run_world(tmp_path, main)


def test_class_c_downlink_without_an_uplink(tmp_path: Path) -> None:
    async def main(world: World) -> None:
        assert world.ns is not None
        await world.station()
        device = world.device("c1", 0xC1, device_class="C")
        arrivals: list[tuple[float, bytes]] = []
        device.on_downlink = lambda fport, payload, multicast: arrivals.append((world.clock.monotonic(), payload))
        assert await device.join()
        await device.send(2, b"up")  # the network learns the gateway
        await asyncio.sleep(10)
        enqueued_at = world.clock.monotonic()
        handle = world.ns.enqueue_downlink(0xC1, 4, b"class-c")
        await world.until(lambda: bool(arrivals), 30)
        assert arrivals[0][1] == b"class-c" and arrivals[0][0] - enqueued_at < 5
        dntxed = await asyncio.wait_for(handle.transmitted, 10)
        assert dntxed.freq == EU868.rx2_frequency_hz

    run_world(tmp_path, main)


def test_multicast_frame_reaches_the_members_and_no_one_else(tmp_path: Path) -> None:
    from otaharness.protocols.lorawan import derive_mc_session_keys

    mc_addr = 0x01FF0001
    mc_keys = derive_mc_session_keys(bytes(range(1, 17)), mc_addr)

    async def main(world: World) -> None:
        assert world.ns is not None
        await world.station()
        devices = {name: world.device(name, 0x100 + i, (600.0 + 100 * i, 0.0), device_class="C")
                   for i, name in enumerate(("m1", "m2", "outsider"))}
        got: dict[str, list[tuple[bytes, bool]]] = {name: [] for name in devices}
        for name, device in devices.items():
            device.on_downlink = lambda fport, payload, multicast, name=name: got[name].append((payload, multicast))
            assert await device.join()
            await device.send(2, b"hi")
        world.ns.create_multicast_group(mc_addr, mc_keys.nwk_s_key, mc_keys.app_s_key, EU868.rx2_frequency_hz, 0,
                                        name="fleet")
        gps_now = world.clock.gps()
        for name in ("m1", "m2"):
            devices[name].add_multicast_group(0, mc_addr, mc_keys)
            devices[name].start_multicast_session(0, start_gps=gps_now, timeout_exponent=12,
                                                  frequency_hz=EU868.rx2_frequency_hz, data_rate=0)
        frame = world.ns.enqueue_multicast("fleet", 200, b"to-all")
        await asyncio.wait_for(frame.transmitted, 30)
        await asyncio.sleep(5)
        assert got["m1"] == got["m2"] == [(b"to-all", True)]
        assert got["outsider"] == []

    run_world(tmp_path, main)


def test_replayed_uplink_on_the_air_is_rejected(tmp_path: Path) -> None:
    from otaharness.runtime.radio import Transmission

    async def main(world: World) -> None:
        assert world.field is not None and world.api is not None
        await world.station()
        device = world.device("d1", 0xD1)
        sent: list[bytes] = []
        world.field.medium.add_monitor(lambda frame, receptions: sent.append(frame.transmission.phy_payload)
                                       if frame.uplink else None)
        assert await device.join()
        await device.send(2, b"once")
        recorded = sent[-1]
        replayer = world.field.medium.attach_device("replayer", (500.0, 0.0), lambda r: None, lambda *a: False)
        replayer.transmit(Transmission(868_100_000, EU868.data_rate(5), recorded))
        await asyncio.sleep(5)
        assert [e.payload for e in world.api.uplinks(2)] == [b"once"]
        world.field.medium.detach("replayer")

    run_world(tmp_path, main)


def test_device_out_of_range_of_every_gateway_never_joins(tmp_path: Path) -> None:
    async def main(world: World) -> None:
        assert world.field is not None and world.ns is not None
        await world.station()
        device = world.device("far", 0xFA, (200_000.0, 0.0), join_attempts=2)
        assert not await device.join()
        assert world.field.medium.counters["out_of_range"] >= 2
        assert not world.ns.device(0xFA).activated

    run_world(tmp_path, main)

"""The station emulator's radio side on its own: which window a dnmsg goes out in, dntxed, and
what is dropped (a fake station stands in for the LNS connection)."""

from __future__ import annotations

import asyncio
import random
from typing import Any

from otaharness.emulators.basics_station.radio import StationRadio
from otaharness.runtime.radio import RadioMedium, Reception
from otaharness.protocols.basics_station.lns_data import DeviceClass, DownlinkMessage
from otaharness.protocols.lorawan import EU868
from otaharness.runtime.clock import VirtualClock, VirtualEventLoop

RX1_FREQ, RX2_FREQ = 868_100_000, EU868.rx2_frequency_hz


class FakeStation:
    """What StationRadio uses of a BasicsStation: connected, router_config present."""

    name = "gw"
    tc_connected = True
    router_config = type("Config", (), {"join_eui_key": "JoinEui"})()

    def __init__(self, clock: VirtualClock) -> None:
        self.clock = clock
        self.lns_handlers: dict[str, Any] = {}
        self.sent: list[dict[str, Any]] = []

    def ref_time(self) -> float:
        return 0.0

    def send_to_lns(self, message: dict[str, Any]) -> bool:
        self.sent.append(message)
        return True


def run(main: Any) -> Any:
    clock = VirtualClock()
    loop = VirtualEventLoop(clock)

    async def drive() -> Any:
        task = asyncio.ensure_future(main(clock))
        await clock.run_until(task.done, timeout=3600)
        return task.result()

    try:
        return loop.run_until_complete(drive())
    finally:
        loop.close()


def setup(clock: VirtualClock) -> tuple[FakeStation, StationRadio, list[Reception]]:
    medium = RadioMedium(EU868, random.Random(1))
    heard: list[Reception] = []
    medium.attach_device("dev", (500.0, 0.0), heard.append, lambda *window: True)
    station = FakeStation(clock)
    radio = StationRadio(station, medium, (0.0, 0.0))  # type: ignore[arg-type]
    return station, radio, heard


def dnmsg(radio: StationRadio, **fields: Any) -> dict[str, Any]:
    defaults: dict[str, Any] = {"dev_eui": 0x11, "device_class": DeviceClass.A, "diid": 7, "pdu": b"\x60" + bytes(11),
                                "rx_delay": 1}
    return DownlinkMessage(**{**defaults, **fields}).to_dict()


def test_class_a_rx1_at_xtime_plus_rx_delay_then_dntxed() -> None:
    async def main(clock: VirtualClock) -> None:
        station, radio, heard = setup(clock)
        uplink_end = asyncio.get_running_loop().time()
        station.lns_handlers["dnmsg"](dnmsg(radio, rx1_dr=5, rx1_freq=RX1_FREQ, xtime=radio.xtime(uplink_end)))
        await asyncio.sleep(3)
        assert [(r.frequency_hz, round(r.start - uplink_end, 6)) for r in heard] == [(RX1_FREQ, 1.0)]
        assert [(m["msgtype"], m["diid"], m["Freq"], m["DevEui"]) for m in station.sent] == [
            ("dntxed", 7, RX1_FREQ, "00-00-00-00-00-00-00-11")]

    run(main)


def test_class_a_falls_back_to_rx2_when_rx1_is_refused() -> None:
    async def main(clock: VirtualClock) -> None:
        station, radio, heard = setup(clock)
        loop = asyncio.get_running_loop()
        # A long frame on the RX1 sub-band uses its 1 % budget for minutes.
        station.lns_handlers["dnmsg"](dnmsg(radio, diid=1, device_class=DeviceClass.C, rx2_dr=0, rx2_freq=RX1_FREQ,
                                            pdu=bytes(50)))
        await asyncio.sleep(5)
        uplink_end = loop.time()
        station.lns_handlers["dnmsg"](dnmsg(radio, diid=2, rx1_dr=5, rx1_freq=RX1_FREQ, rx2_dr=0, rx2_freq=RX2_FREQ,
                                            xtime=radio.xtime(uplink_end)))
        await asyncio.sleep(5)
        assert [(r.frequency_hz, round(r.start - uplink_end, 6)) for r in heard[1:]] == [(RX2_FREQ, 2.0)]
        assert [m["diid"] for m in station.sent] == [1, 2]

    run(main)


def test_late_or_foreign_xtime_is_dropped_without_dntxed() -> None:
    async def main(clock: VirtualClock) -> None:
        station, radio, heard = setup(clock)
        await asyncio.sleep(10)
        late = radio.xtime(asyncio.get_running_loop().time() - 5)
        station.lns_handlers["dnmsg"](dnmsg(radio, rx1_dr=5, rx1_freq=RX1_FREQ, xtime=late))
        foreign = (radio.radio_session + 1) << 48
        station.lns_handlers["dnmsg"](dnmsg(radio, rx1_dr=5, rx1_freq=RX1_FREQ, xtime=foreign))
        station.lns_handlers["dnmsg"]({"msgtype": "dnmsg", "DevEui": "00-00-00-00-00-00-00-01"})  # no dC, diid, pdu
        await asyncio.sleep(5)
        assert heard == [] and station.sent == []
        assert radio.counters["too_late"] == 1 and radio.counters["bad_dnmsg"] == 2

    run(main)


def test_class_c_waits_for_the_duty_cycle_of_its_sub_band() -> None:
    async def main(clock: VirtualClock) -> None:
        station, radio, heard = setup(clock)
        for diid in (1, 2):
            station.lns_handlers["dnmsg"](dnmsg(radio, diid=diid, device_class=DeviceClass.C, rx2_dr=5,
                                                rx2_freq=RX2_FREQ, pdu=bytes(30)))
        await asyncio.sleep(10)
        assert len(heard) == 2
        first, second = heard
        assert second.start >= first.start + first.frame.airtime / 0.1 - 1e-6  # 10 % sub-band
        assert [m["diid"] for m in station.sent] == [1, 2]

    run(main)


def test_uplink_leaves_as_updf_with_signed_fields() -> None:
    from otaharness.runtime.radio import Transmission
    from otaharness.protocols.lorawan import MType, SessionKeys, build_data_frame

    async def main(clock: VirtualClock) -> None:
        station, radio, _ = setup(clock)
        keys = SessionKeys(nwk_s_key=bytes(16), app_s_key=bytes(16))
        frame = build_data_frame(MType.UNCONFIRMED_DATA_UP, dev_addr=0x80000001, fcnt=3, keys=keys)
        radio.medium.devices["dev"].transmit(Transmission(RX1_FREQ, EU868.data_rate(5), frame.to_bytes()))
        radio.medium.devices["dev"].transmit(Transmission(868_300_000, EU868.data_rate(5), b"\x40\x01"))  # too short
        await asyncio.sleep(1)
        [updf] = station.sent
        assert updf["msgtype"] == "updf" and updf["DevAddr"] == 0x80000001 - (1 << 32) and updf["FPort"] == -1
        assert updf["MIC"] == int.from_bytes(frame.to_bytes()[-4:], "little", signed=True)
        assert updf["DR"] == 5 and updf["Freq"] == RX1_FREQ and updf["upinfo"]["xtime"] >> 48 == radio.radio_session
        assert radio.counters["bad_frame"] == 1

    run(main)

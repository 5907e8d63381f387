"""Shared pieces of the radio/device tests: a virtual-time loop and a minimal network on one gateway."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

from otaharness.emulators.lorawan_device import DeviceConfig, LoRaWANDevice
from otaharness.runtime.radio import GatewayRadio, RadioMedium, Reception, Transmission
from otaharness.protocols.lorawan import (
    EU868,
    DataFrame,
    DownlinkFCtrl,
    JoinRequest,
    MType,
    SessionKeys,
    build_data_frame,
    build_join_accept,
    decode_phy_payload,
    derive_session_keys,
    reconstruct_fcnt,
)
from otaharness.protocols.lorawan.region import cf_list_from_frequencies
from otaharness.runtime.clock import VirtualClock, VirtualEventLoop

APP_KEY = bytes.fromhex("2b7e151628aed2a6abf7158809cf4f3c")
NWK_S_KEY = bytes.fromhex("44024241ed4ce9a68c6a8bc055233fd3")
APP_S_KEY = bytes.fromhex("ec925802ae430ca77fd3dd73cb2cc588")
NET_ID = 0x000013
CF_LIST_FREQUENCIES = (867_100_000, 867_300_000, 867_500_000, 867_700_000, 867_900_000)
RX2_FREQUENCY = EU868.rx2_frequency_hz


def run_virtual(main: Callable[[VirtualClock], Coroutine[Any, Any, Any]], *, limit_s: float = 86400.0) -> Any:
    """Run ``main(clock)`` on a virtual-time loop, letting time pass until it returns."""
    clock = VirtualClock()
    loop = VirtualEventLoop(clock)

    async def drive() -> Any:
        task = asyncio.ensure_future(main(clock))
        await clock.run_until(task.done, timeout=limit_s)
        if not task.done():
            task.cancel()
            raise AssertionError(f"scenario still running after {limit_s} virtual seconds")
        return task.result()

    try:
        return loop.run_until_complete(drive())
    finally:
        loop.close()


def uplink(frequency: int, dr: int, payload: bytes, power: float = 14.0) -> Transmission:
    return Transmission(frequency, EU868.data_rate(dr), payload, power_dbm=power)


@dataclass
class NetworkSession:
    keys: SessionKeys
    fcnt_up: int | None = None
    fcnt_down: int = 0


@dataclass
class MiniNetwork:
    """Join server + class A responder on one gateway, enough to drive a device end to end.

    ``responder(frame, fcnt, reception)`` may return (fport, payload, ack, fopts) to send in RX1.
    """

    medium: RadioMedium
    position: tuple[float, float] = (0.0, 0.0)
    app_keys: dict[int, bytes] = field(default_factory=dict)
    responder: Callable[[DataFrame, int, Reception], tuple[int | None, bytes, bool, bytes] | None] | None = None
    downlink_power: float = 14.0
    gateway: GatewayRadio = field(init=False)
    sessions: dict[int, NetworkSession] = field(default_factory=dict)
    uplinks: list[tuple[DataFrame, int, Reception]] = field(default_factory=list)
    join_requests: list[JoinRequest] = field(default_factory=list)
    bad_mics: int = 0
    next_dev_addr: int = 0x26000001

    def __post_init__(self) -> None:
        self.gateway = self.medium.attach_gateway("gw", self.position, self.on_uplink)

    def send_at(self, when: float, frequency: int, dr: int, payload: bytes) -> None:
        tx = Transmission(frequency, EU868.data_rate(dr), payload, power_dbm=self.downlink_power)
        self.medium.loop.call_at(when, self.gateway.transmit, tx)

    def send_class_a(self, reception: Reception, payload: bytes, *, join: bool = False) -> None:
        """RX1 (same channel, RX1 DR offset 0) if the gateway's duty cycle allows it then, else RX2."""
        delay1 = EU868.join_accept_delay1_s if join else EU868.receive_delay1_s
        rx1_at = reception.end + delay1

        def rx1_or_rx2() -> None:
            if self.gateway.time_until_allowed(reception.frequency_hz) == 0:
                self.send_at(rx1_at, reception.frequency_hz, EU868.rx1_data_rate(reception.data_rate.index, 0),
                             payload)
            else:
                self.send_at(rx1_at + 1, RX2_FREQUENCY, EU868.rx2_data_rate, payload)

        self.medium.loop.call_at(rx1_at, rx1_or_rx2)

    def on_uplink(self, reception: Reception) -> None:
        frame = decode_phy_payload(reception.phy_payload)
        if isinstance(frame, JoinRequest):
            self._join(frame, reception)
        elif isinstance(frame, DataFrame):
            self._data(frame, reception)

    def _join(self, request: JoinRequest, reception: Reception) -> None:
        app_key = self.app_keys.get(request.dev_eui)
        if app_key is None or not request.mic_is_valid(app_key):
            self.bad_mics += 1
            return
        self.join_requests.append(request)
        dev_addr = self.next_dev_addr
        self.next_dev_addr += 1
        join_nonce = len(self.join_requests)
        self.sessions[dev_addr] = NetworkSession(
            derive_session_keys(app_key, join_nonce=join_nonce, net_id=NET_ID, dev_nonce=request.dev_nonce))
        accept = build_join_accept(join_nonce=join_nonce, net_id=NET_ID, dev_addr=dev_addr, app_key=app_key,
                                   cf_list=cf_list_from_frequencies(CF_LIST_FREQUENCIES))
        self.send_class_a(reception, accept.to_bytes(), join=True)

    def _data(self, frame: DataFrame, reception: Reception) -> None:
        session = self.sessions.get(frame.dev_addr)
        if session is None:
            return
        fcnt = reconstruct_fcnt(frame.fcnt16, session.fcnt_up or 0)
        if not frame.mic_is_valid(session.keys.nwk_s_key, fcnt):
            self.bad_mics += 1
            return
        session.fcnt_up = fcnt
        self.uplinks.append((frame, fcnt, reception))
        answer = self.responder(frame, fcnt, reception) if self.responder else None
        if answer is None:
            return
        fport, payload, ack, fopts = answer
        downlink = build_data_frame(MType.UNCONFIRMED_DATA_DOWN, dev_addr=frame.dev_addr, fcnt=session.fcnt_down,
                                    keys=session.keys, fport=fport, payload=payload,
                                    fctrl=DownlinkFCtrl(ack=ack), fopts=fopts)
        session.fcnt_down += 1
        self.send_class_a(reception, downlink.to_bytes())


def otaa_config(dev_eui: int = 0x0004A30B001C0530, **overrides: Any) -> DeviceConfig:
    return DeviceConfig(dev_eui=dev_eui, app_eui=0x70B3D57ED0000001, app_key=APP_KEY, **overrides)


def make_device(medium: RadioMedium, clock: VirtualClock, name: str, config: DeviceConfig,
                position: tuple[float, float] = (500.0, 0.0), seed: int = 1, **kwargs: Any) -> LoRaWANDevice:
    return LoRaWANDevice(name, config, medium, position, clock=clock, rng=random.Random(seed), **kwargs)


async def settle(seconds: float) -> None:
    await asyncio.sleep(seconds)

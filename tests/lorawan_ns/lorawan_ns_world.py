"""A network-server world for tests: the core on a virtual-time loop, a fake gateway port, and
end devices written with the LoRaWAN codecs (the device side of the air interface)."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from otaharness.protocols.basics_station.lns_data import (
    DownlinkMessage,
    DownlinkTransmitted,
    RadioInfo,
    UplinkInfo,
    uplink_from_phy_payload,
)
from otaharness.protocols.lorawan import (
    DataFrame,
    EncryptedJoinAccept,
    JoinAccept,
    MType,
    SessionKeys,
    UplinkFCtrl,
    build_data_frame,
    build_join_request,
    derive_session_keys,
    reconstruct_fcnt,
)
from otaharness.runtime.clock import VirtualClock, VirtualEventLoop
from otaharness.servers.lorawan import NetworkServer

GATEWAY_1 = 0x0000_0000_0000_00A1
GATEWAY_2 = 0x0000_0000_0000_00A2
APP_KEY = bytes(range(1, 17))
JOIN_EUI = 0x70B3D57ED0000001
XTIME_BASE = 0x35_0000_0000_0000  # a concentrator clock value of the kind the station reports


@dataclass
class SentDnmsg:
    at: float  # loop clock when the server handed it over
    gateway: int
    message: DownlinkMessage


class FakeGatewayPort:
    """Records every ``dnmsg`` and answers it with a ``dntxed`` as the station would (at the
    planned transmit time for class A, at once for class C), unless the gateway is mute."""

    def __init__(self) -> None:
        self.sent: list[SentDnmsg] = []
        self.server: NetworkServer | None = None
        self.mute: set[int] = set()
        self.disconnected: set[int] = set()

    async def send_dnmsg(self, gateway_id: int, dnmsg: dict[str, Any]) -> None:
        if gateway_id in self.disconnected:
            raise ConnectionError("station not connected")
        message = DownlinkMessage.from_dict(dnmsg)
        loop = asyncio.get_running_loop()
        self.sent.append(SentDnmsg(loop.time(), gateway_id, message))
        if gateway_id in self.mute or not message.expects_dntxed:
            return
        delay = 0.0 if message.xtime is None else message.rx_delay + (0 if message.rx1_freq is not None else 1)
        dr, freq = ((message.rx1_dr, message.rx1_freq) if message.rx1_freq is not None
                    else (message.rx2_dr, message.rx2_freq))
        dntxed = DownlinkTransmitted(diid=message.diid, dr=dr or 0, freq=freq or 0, dev_eui=message.dev_eui,
                                     xtime=(message.xtime or 0) + int(delay * 1e6), txtime=loop.time() + delay)
        assert self.server is not None
        loop.call_later(max(delay - 0.3, 0.0), lambda: asyncio.ensure_future(
            self.server.handle_dntxed(gateway_id, dntxed.to_dict())))  # type: ignore[union-attr]

    def for_device(self, dev_eui: int) -> list[SentDnmsg]:
        return [sent for sent in self.sent if sent.message.dev_eui == dev_eui]


def radio(*, xtime: int = XTIME_BASE, rssi: float = -60.0, snr: float = 7.0, dr: int = 5,
          freq: int = 868_100_000, rctx: int = 0) -> RadioInfo:
    return RadioInfo(dr=dr, freq=freq, upinfo=UplinkInfo(rctx=rctx, xtime=xtime, rssi=rssi, snr=snr))


def station_message(phy: bytes, radio_info: RadioInfo) -> dict[str, Any]:
    """The JSON object a station sends for ``phy`` (updf or jreq), as parsed from the wire."""
    return uplink_from_phy_payload(phy, radio_info).to_dict()


@dataclass
class EndDevice:
    """A LoRaWAN 1.0.x end device as far as frames go: OTAA join, uplinks, downlink checks."""

    dev_eui: int
    app_key: bytes = APP_KEY
    join_eui: int = JOIN_EUI
    dev_nonce: int = 0
    dev_addr: int | None = None
    keys: SessionKeys | None = None
    fcnt_up: int = 0
    last_fcnt_down: int | None = None
    accept: JoinAccept | None = None
    received: list[tuple[DataFrame, bytes, int]] = field(default_factory=list)

    def join_request(self, dev_nonce: int | None = None) -> bytes:
        if dev_nonce is not None:
            self.dev_nonce = dev_nonce
        else:
            self.dev_nonce += 1
        return build_join_request(app_eui=self.join_eui, dev_eui=self.dev_eui, dev_nonce=self.dev_nonce,
                                  app_key=self.app_key).to_bytes()

    def take_join_accept(self, pdu: bytes) -> JoinAccept:
        accept = EncryptedJoinAccept.from_bytes(pdu).decrypt(self.app_key)
        assert accept.mic_is_valid(self.app_key), "join-accept MIC"
        self.accept = accept
        self.dev_addr = accept.dev_addr
        self.keys = derive_session_keys(self.app_key, join_nonce=accept.join_nonce, net_id=accept.net_id,
                                        dev_nonce=self.dev_nonce)
        self.fcnt_up, self.last_fcnt_down = 0, None
        return accept

    def uplink(self, fport: int | None = 1, payload: bytes = b"", *, confirmed: bool = False, fopts: bytes = b"",
               ack: bool = False, fcnt: int | None = None) -> bytes:
        assert self.keys is not None and self.dev_addr is not None
        mtype = MType.CONFIRMED_DATA_UP if confirmed else MType.UNCONFIRMED_DATA_UP
        counter = self.fcnt_up if fcnt is None else fcnt
        frame = build_data_frame(mtype, dev_addr=self.dev_addr, fcnt=counter, keys=self.keys, fport=fport,
                                 payload=payload, fctrl=UplinkFCtrl(ack=ack), fopts=fopts)
        if fcnt is None:
            self.fcnt_up += 1
        return frame.to_bytes()

    def take_downlink(self, pdu: bytes, keys: SessionKeys | None = None,
                      dev_addr: int | None = None) -> tuple[DataFrame, bytes, int]:
        """Check and decrypt a downlink as the device would; returns (frame, payload, FCnt32)."""
        frame = DataFrame.from_bytes(pdu)
        keys = keys or self.keys
        assert keys is not None
        assert frame.dev_addr == (dev_addr if dev_addr is not None else self.dev_addr)
        fcnt = reconstruct_fcnt(frame.fcnt16, 0 if self.last_fcnt_down is None else self.last_fcnt_down + 1)
        assert frame.mic_is_valid(keys.nwk_s_key, fcnt), "downlink MIC"
        self.last_fcnt_down = fcnt
        payload = frame.decrypt_payload(keys, fcnt) if frame.fport is not None else b""
        self.received.append((frame, payload, fcnt))
        return frame, payload, fcnt


class World:
    def __init__(self, tmp_path: Path, clock: VirtualClock, seed: int = 7) -> None:
        self.tmp_path = tmp_path
        self.clock = clock
        self.port = FakeGatewayPort()
        self.seed = seed
        self.server = self.start_server()

    def start_server(self) -> NetworkServer:
        self.server = NetworkServer(self.tmp_path / "ns.sqlite", self.clock, random.Random(self.seed), self.port)
        self.port.server = self.server
        return self.server

    async def restart(self) -> NetworkServer:
        await self.server.close()
        self.seed += 1
        server = self.start_server()
        await server.start()
        return server

    async def receive(self, phy: bytes, *gateways: tuple[int, RadioInfo]) -> None:
        """The frame heard by each gateway (default: gateway 1), then the de-dup window passes."""
        for gateway, radio_info in gateways or ((GATEWAY_1, radio()),):
            await self.server.handle_uplink(gateway, station_message(phy, radio_info))
        await self.clock.run_for(0.5)

    async def run_for(self, seconds: float) -> None:
        await self.clock.run_for(seconds)

    async def join(self, device: EndDevice, gateway: int = GATEWAY_1) -> JoinAccept:
        before = len(self.port.sent)
        await self.receive(device.join_request(), (gateway, radio()))
        await self.run_for(6.0)
        assert len(self.port.sent) == before + 1, "one join-accept dnmsg"
        return device.take_join_accept(self.port.sent[-1].message.pdu)


def run_world(tmp_path: Path, main: Callable[[World], Awaitable[Any]]) -> Any:
    clock = VirtualClock()
    loop = VirtualEventLoop(clock)
    asyncio.set_event_loop(loop)

    async def scenario() -> Any:
        world = World(tmp_path, clock)
        try:
            return await main(world)
        finally:
            await world.server.close()

    try:
        return loop.run_until_complete(scenario())
    finally:
        loop.close()
        asyncio.set_event_loop(None)

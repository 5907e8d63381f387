"""The network server wired straight to an in-process radio medium (tests and benchmarks).

:class:`RadioGatewayPort` is a :class:`~otaharness.servers.lorawan.GatewayPort` that plays the
Basics Station's radio side for gateways on a :class:`~otaharness.runtime.radio.RadioMedium`: each
gateway's receptions become ``updf``/``jreq`` messages for :meth:`NetworkServer.handle_uplink`,
and every ``dnmsg`` is transmitted on the medium at the station's time (class A: the uplink's
``xtime`` + RxDelay, + 1 s for RX2; class C: at once) and answered with a ``dntxed``. A
transmission the medium refuses (duty cycle, transmitter busy) gets no ``dntxed``, as with a
real station. The LNS websocket integration replaces this in scenarios; the FUOTA layer does not
care which one carries its frames.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from otaharness.runtime.radio import GatewayRadio, Position, RadioError, RadioMedium, Reception, Transmission
from otaharness.protocols.basics_station.lns_data import (
    DownlinkMessage,
    DownlinkTransmitted,
    RadioInfo,
    UplinkInfo,
    uplink_from_phy_payload,
)
from otaharness.protocols.lorawan import EU868, Region
from otaharness.servers.lorawan import NetworkServer
from otaharness.servers.lorawan.server import CLASS_C_LEAD_S

log = logging.getLogger(__name__)

XTIME_BASE_US = 0x35_0000_0000_0000  # a concentrator clock value of the kind a station reports
GATEWAY_POWER_DBM = 14.0


class RadioGatewayPort:
    """Gateways on a radio medium, speaking to one network server."""

    def __init__(self, medium: RadioMedium, region: Region = EU868, power_dbm: float = GATEWAY_POWER_DBM) -> None:
        self.medium = medium
        self.region = region
        self.power_dbm = power_dbm
        self.server: NetworkServer | None = None
        self.radios: dict[int, GatewayRadio] = {}
        self.refused = 0

    def add_gateway(self, gateway_id: int, position: Position) -> GatewayRadio:
        radio = self.medium.attach_gateway(f"gw-{gateway_id:x}", position,
                                           lambda reception: self._on_uplink(gateway_id, reception))
        self.radios[gateway_id] = radio
        return radio

    def _on_uplink(self, gateway_id: int, reception: Reception) -> None:
        if self.server is None:
            return
        upinfo = UplinkInfo(rctx=0, xtime=XTIME_BASE_US + int(reception.end * 1e6), rssi=reception.rssi_dbm,
                            snr=reception.snr_db)
        radio_info = RadioInfo(dr=reception.data_rate.index, freq=reception.frequency_hz, upinfo=upinfo)
        try:
            message = uplink_from_phy_payload(reception.phy_payload, radio_info)
        except ValueError as error:
            log.info("gateway %x: frame not forwarded: %s", gateway_id, error)
            return
        # the decoded message, not its JSON form: nothing here crosses a wire (the LNS websocket
        # path checks the station's JSON), and a campaign forwards tens of thousands of uplinks.
        # Handed over at the next turn of the loop, where a task's first step would run (the
        # same order of events), but without a task: receive_uplink never waits.
        self.medium.loop.call_soon(self.server.receive_uplink, gateway_id, message)

    async def send_dnmsg(self, gateway_id: int, dnmsg: dict[str, Any]) -> None:
        if gateway_id not in self.radios:
            raise ConnectionError(f"gateway {gateway_id:x} is not on the medium")
        message = DownlinkMessage.from_dict(dnmsg)
        loop = asyncio.get_running_loop()
        if message.xtime is None:  # class C: the station sends at once (after its TX aim gap)
            at = loop.time() + CLASS_C_LEAD_S
        else:
            at = (message.xtime - XTIME_BASE_US) / 1e6 + message.rx_delay + (0 if message.rx1_freq is not None else 1)
        loop.call_at(at, self._transmit, gateway_id, message)

    def _transmit(self, gateway_id: int, message: DownlinkMessage) -> None:
        rx1 = message.rx1_freq is not None
        frequency = message.rx1_freq if rx1 else message.rx2_freq
        data_rate = message.rx1_dr if rx1 else message.rx2_dr
        assert frequency is not None and data_rate is not None
        try:
            frame = self.radios[gateway_id].transmit(Transmission(frequency, self.region.data_rate(data_rate),
                                                                  message.pdu, power_dbm=self.power_dbm))
        except RadioError as error:
            self.refused += 1
            log.warning("gateway %x refused dnmsg %d: %s", gateway_id, message.diid, error)
            return
        assert self.server is not None
        dntxed = DownlinkTransmitted(diid=message.diid, dr=data_rate, freq=frequency, dev_eui=message.dev_eui,
                                     xtime=XTIME_BASE_US + int(frame.start * 1e6), txtime=frame.start)
        self.medium.loop.call_soon(self.server.receive_dntxed, gateway_id, dntxed)  # as receive_uplink

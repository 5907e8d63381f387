"""The radio side of an emulated Basics Station: a gateway on the in-process radio medium.

Uplinks (basicstation 2.0.6 ``s2e_parse_lora_frame`` in ``src/lora.c``, fact sheet §7.2): every
frame the gateway hears leaves the station as the message the real station builds — ``updf``
with its fields split out (DevAddr and MIC as *signed* int32, FPort -1 when absent, no ``pdu``),
``jreq``/``rejoin`` for join frames (exactly 23 octets), ``propdf`` for proprietary frames —
followed by ``RefTime`` (the last ``MuxTime`` plus the time since), ``DR``, ``Freq`` and
``upinfo`` ``{rctx, xtime, gpstime, fts, rssi, snr, rxtime}``. Frames the station cannot parse
are dropped (counted ``bad_frame``), as are frames heard while the LNS connection is down
(``offline``): the real station keeps no backlog of radio frames across reconnects.

Downlinks (``handle_dnmsg`` in ``src/s2e.c``, fact sheet §7.3):

* class A (``dC`` 0): RX1 at the uplink's ``xtime`` + ``RxDelay`` s (0 means 1) on
  ``RX1DR``/``RX1Freq`` when given, else RX2 one second later on ``RX2DR``/``RX2Freq``; when the
  RX1 transmission is refused (duty cycle, transmitter busy) the station falls back to RX2 if the
  ``dnmsg`` carried it. A window already past is dropped (``too_late``).
* class C (``dC`` 2): with ``xtime`` and RX1 as class A (a reply); otherwise on RX2 as soon as
  possible, waiting for the transmitter and the sub-band's duty cycle for at most
  :data:`CLASS_C_MAX_WAIT_S` (then ``dropped``).
* A ``dnmsg`` whose ``DevEui`` is not 0 is confirmed with ``dntxed`` (``diid``/``seqno``, DR, Freq,
  DevEui, rctx, xtime, txtime, gpstime) when its transmission has ended.

``xtime`` is the concentrator clock: microseconds since the radio started, with the radio
session id in the top octet (as ``ral_xtime`` packs its session into bits 48-55), so an LNS that
echoes a stale ``xtime`` after a restart is recognisable. The station has no PPS, so it never sends
``timesync``; a ``timesync`` push from the LNS is ignored (``gpstime`` 0 everywhere, §7.2).
"""

from __future__ import annotations

import asyncio
import collections
import logging
from typing import Any

from otaharness.emulators.basics_station.station import BasicsStation
from otaharness.runtime.radio import RadioError, RadioMedium, Reception, Transmission
from otaharness.runtime.radio.propagation import Position
from otaharness.protocols.basics_station import BasicsStationCodecError
from otaharness.protocols.basics_station.lns_data import (
    DeviceClass,
    DownlinkMessage,
    DownlinkTransmitted,
    RadioInfo,
    UplinkInfo,
    uplink_from_phy_payload,
)

log = logging.getLogger(__name__)

RX2_AFTER_RX1_S = 1.0
CLASS_C_MAX_WAIT_S = 30.0  # how long an "as soon as possible" class C frame may wait for the radio
XTIME_SESSION_SHIFT = 48
DEFAULT_TX_POWER_DBM = 27.0  # 869.525 MHz (RX2) allows 27 dBm ERP in EU868


class StationRadio:
    """Attach a :class:`BasicsStation` to a :class:`RadioMedium` as a gateway named after it."""

    def __init__(self, station: BasicsStation, medium: RadioMedium, position: Position, *,
                 rctx: int = 0, tx_power_dbm: float = DEFAULT_TX_POWER_DBM, radio_session: int = 1) -> None:
        self.station = station
        self.medium = medium
        self.rctx = rctx
        self.tx_power_dbm = tx_power_dbm
        self.radio_session = radio_session & 0xFF
        self.counters: collections.Counter[str] = collections.Counter()
        self._origin = medium.loop.time()
        self.gateway = medium.attach_gateway(station.name, position, self._on_uplink)
        station.lns_handlers["dnmsg"] = self._on_dnmsg
        station.lns_handlers["timesync"] = lambda document: None  # a push of GPS time: no PPS here
        self._timers: set[asyncio.TimerHandle] = set()

    def detach(self) -> None:
        for timer in self._timers:
            timer.cancel()
        self._timers.clear()
        self.medium.detach(self.station.name)
        for msgtype in ("dnmsg", "timesync"):
            self.station.lns_handlers.pop(msgtype, None)

    # -- the concentrator clock ------------------------------------------------------------------
    def xtime(self, loop_time: float) -> int:
        micros = max(0, round((loop_time - self._origin) * 1_000_000))
        return (self.radio_session << XTIME_SESSION_SHIFT) | micros

    def loop_time_of(self, xtime: int) -> float | None:
        """The loop time of an ``xtime`` of this radio session (None for another session's)."""
        if xtime >> XTIME_SESSION_SHIFT != self.radio_session:
            return None
        return self._origin + (xtime & ((1 << XTIME_SESSION_SHIFT) - 1)) / 1_000_000

    # -- uplinks ---------------------------------------------------------------------------------
    def _on_uplink(self, reception: Reception) -> None:
        config = self.station.router_config
        if config is None or not self.station.tc_connected:
            self.counters["offline"] += 1
            return
        upinfo = UplinkInfo(rctx=self.rctx, xtime=self.xtime(reception.end), gpstime=0, fts=-1,
                            rssi=round(reception.rssi_dbm), snr=round(reception.snr_db * 4) / 4,
                            rxtime=self.station.clock.epoch())
        radio = RadioInfo(dr=reception.data_rate.index, freq=reception.frequency_hz, upinfo=upinfo,
                          ref_time=self.station.ref_time())
        try:
            message = uplink_from_phy_payload(reception.phy_payload, radio, config.join_eui_key)
        except BasicsStationCodecError as error:
            self.counters["bad_frame"] += 1
            log.info("%s: frame dropped: %s", self.station.name, error)
            return
        if self.station.send_to_lns(message.to_dict()):
            self.counters["uplinks_sent"] += 1
        else:
            self.counters["offline"] += 1

    # -- downlinks -------------------------------------------------------------------------------
    def _on_dnmsg(self, document: dict[str, Any]) -> None:
        try:
            message = DownlinkMessage.from_dict(document)
        except (BasicsStationCodecError, ValueError) as error:
            self.counters["bad_dnmsg"] += 1
            log.warning("%s: dnmsg dropped: %s", self.station.name, error)
            return
        now = self.medium.loop.time()
        windows: list[tuple[float, int, int]] = []  # (start, DR, frequency) in the order to try
        if message.xtime is not None:
            uplink_end = self.loop_time_of(message.xtime)
            if uplink_end is None:
                self.counters["bad_dnmsg"] += 1
                log.warning("%s: dnmsg %d dropped: xtime of another radio session", self.station.name, message.diid)
                return
            rx1 = uplink_end + max(message.rx_delay, 1)
            if message.rx1_freq is not None and message.rx1_dr is not None:
                windows.append((rx1, message.rx1_dr, message.rx1_freq))
            if message.rx2_freq is not None and message.rx2_dr is not None:
                windows.append((rx1 + RX2_AFTER_RX1_S, message.rx2_dr, message.rx2_freq))
        elif message.device_class is DeviceClass.C and message.rx2_freq is not None and message.rx2_dr is not None:
            self._send_when_free(message, message.rx2_dr, message.rx2_freq, now + CLASS_C_MAX_WAIT_S)
            return
        else:
            self.counters["bad_dnmsg"] += 1
            log.warning("%s: dnmsg %d dropped: class %s without xtime", self.station.name, message.diid,
                        message.device_class.name)
            return
        self._try_windows(message, [window for window in windows if window[0] >= now])

    def _later(self, when: float, callback: Any, *args: Any) -> None:
        def run() -> None:
            self._timers.discard(handle)
            callback(*args)

        handle = self.medium.loop.call_at(when, run)
        self._timers.add(handle)

    def _try_windows(self, message: DownlinkMessage, windows: list[tuple[float, int, int]]) -> None:
        """Wait for the first window and send in it; a refused transmission falls back to the next."""
        if not windows:
            self.counters["too_late"] += 1
            log.warning("%s: dnmsg %d for %016X dropped: too late for its window(s)", self.station.name,
                        message.diid, message.dev_eui)
            return
        start, data_rate, frequency = windows[0]
        if start > self.medium.loop.time():
            self._later(start, self._try_windows, message, windows)
            return
        if not self._transmit(message, data_rate, frequency):
            self._try_windows(message, windows[1:])

    def _send_when_free(self, message: DownlinkMessage, data_rate: int, frequency: int, deadline: float) -> None:
        if self._transmit(message, data_rate, frequency, quiet=True):
            return
        now = self.medium.loop.time()
        wait = max(self.gateway.time_until_allowed(frequency), 0.01)
        if now + wait > deadline:
            self.counters["dropped"] += 1
            log.warning("%s: class C dnmsg %d dropped: radio not free within %g s", self.station.name, message.diid,
                        CLASS_C_MAX_WAIT_S)
            return
        self._later(now + wait, self._send_when_free, message, data_rate, frequency, deadline)

    def _transmit(self, message: DownlinkMessage, data_rate: int, frequency: int, *, quiet: bool = False) -> bool:
        try:
            transmission = Transmission(frequency, self.medium.region.data_rate(data_rate), message.pdu,
                                        power_dbm=self.tx_power_dbm)
            frame = self.gateway.transmit(transmission)
        except (RadioError, ValueError) as error:
            if not quiet:
                log.info("%s: dnmsg %d not sent on %d Hz DR%d: %s", self.station.name, message.diid, frequency,
                         data_rate, error)
            self.counters["refused"] += 1
            return False
        self.counters["downlinks_sent"] += 1
        if message.expects_dntxed:
            dntxed = DownlinkTransmitted(diid=message.diid, dr=data_rate, freq=frequency, dev_eui=message.dev_eui,
                                         rctx=message.rctx or self.rctx, xtime=self.xtime(frame.start),
                                         txtime=round(frame.start - self._origin, 6), gpstime=0)
            self._later(frame.end, self.station.send_to_lns, dntxed.to_dict())
        return True

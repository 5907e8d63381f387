"""An in-process LoRa radio medium on the event loop's clock (virtual time in scenarios).

API::

    medium = RadioMedium(EU868, runtime.rng("radio"), loop=None)   # loop: the running loop
    gw = medium.attach_gateway("gw1", (0.0, 0.0), on_uplink=callback)          # -> GatewayRadio
    dev = medium.attach_device("dev1", (500.0, 0.0), receiver=callback,
                               listening=lambda freq_hz, dr_index, start, end: bool)  # -> DeviceRadio
    dev.transmit(Transmission(868_100_000, EU868.data_rate(5), phy_payload, power_dbm=14))  # -> AirFrame
    gw.transmit(Transmission(869_525_000, EU868.data_rate(0), phy_payload, power_dbm=27))
    medium.time_until_allowed("gw1", 869_525_000, airtime_s)   # 0.0 when a downlink may start now
    medium.set_loss("dev1", FixedLoss(0.1))                     # every link of dev1, both directions
    medium.set_loss("dev1", GilbertElliott(0.05, 0.5), gateway="gw1")   # one link only
    medium.set_loss("dev1", FixedLoss(0.3), direction="downlink")  # only frames to dev1
    medium.add_monitor(lambda frame, receptions: ...)           # captures (lora_capture.py)
    medium.counters                                             # collections.Counter, see below

(The brief's ``clock_time=loop.time`` became ``loop=``: the medium schedules deliveries with
``loop.call_at``, so it needs the loop itself; its clock is ``loop.time()``.)

Model and rules:

- A transmission starts at the loop time of ``transmit`` and lasts its time on air, computed from
  the PHYPayload length (protocols/lorawan/airtime): with PHY CRC for uplinks (sent by devices),
  without for downlinks (sent by gateways). Gateways receive uplinks only and devices downlinks
  only (downlinks use inverted IQ, so the two directions never interfere).
- Reach: log-distance path loss between positions (propagation.py). A receiver whose SNR is under
  the spreading factor's demodulation floor gets nothing (counted ``out_of_range``).
- Loss: per link, a model drawn from the medium's ``rng`` once per frame and receiver when the
  frame starts, in attach order, so a seed reproduces a run. A lost frame still occupies the
  channel (it can collide).
- Collisions and capture: two frames overlapping in time at one receiver on the same frequency,
  spreading factor and bandwidth collide. Of a colliding pair, a frame that arrives at least 6 dB
  stronger (``capture_threshold_db``) survives and the weaker is lost; within 6 dB both are lost.
  Different spreading factors are treated as orthogonal. Only signals above the receiver's
  demodulation floor interfere. Collisions are decided per receiver (RSSI differs per gateway).
- Delivery happens at the end of the airtime: ``on_uplink(Reception)`` at each gateway that got
  the frame; for a device, ``listening(freq, dr, start, end)`` is asked then (the device knows
  whether its receiver was open on that frequency/DR for the whole frame: class A window, class C
  continuous RX2, multicast session), and ``receiver(Reception)`` called when it says yes
  (otherwise ``not_listening``).
- Gateway duty cycle: each gateway keeps, per EU868 sub-band, the off-time rule of duty_cycle.py
  (LoRaMac-node's: the band is free again at start + airtime / duty cycle). A downlink before then
  raises :class:`DutyCycleExceeded` saying which band and how long; ``time_until_allowed`` tells a
  scheduler in advance. A gateway has one TX chain: a downlink while it is still sending raises
  :class:`TransmitterBusy`. Gateways are not half-duplex here (they hear uplinks while sending).
  Devices' duty cycle is enforced by the device emulator, not the medium.
- Counters (``medium.counters``): uplinks, downlinks, delivered, out_of_range, lost_loss,
  lost_collision, not_listening, refused_duty_cycle, refused_busy.
"""

from .duty_cycle import DutyCycleTracker
from .loss import FixedLoss, GilbertElliott, LossModel
from .medium import (
    CAPTURE_THRESHOLD_DB,
    AirFrame,
    DeviceRadio,
    DutyCycleExceeded,
    GatewayRadio,
    RadioError,
    RadioMedium,
    Reception,
    Transmission,
    TransmitterBusy,
)
from .propagation import PathLossModel, Position

__all__ = [
    "CAPTURE_THRESHOLD_DB",
    "AirFrame",
    "DeviceRadio",
    "DutyCycleExceeded",
    "DutyCycleTracker",
    "FixedLoss",
    "GatewayRadio",
    "GilbertElliott",
    "LossModel",
    "PathLossModel",
    "Position",
    "RadioError",
    "RadioMedium",
    "Reception",
    "Transmission",
    "TransmitterBusy",
]

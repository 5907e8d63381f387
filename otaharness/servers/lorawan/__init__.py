"""LoRaWAN 1.0.x network server core (class A, class C, class C multicast), transport-agnostic.

:class:`NetworkServer` ``(db_path, clock, rng, gateway_port)`` keeps devices in SQLite
(:mod:`.registry`), takes the station's uplink messages from whatever transport hosts it, and
sends downlinks through a :class:`GatewayPort`. Codecs: ``otaharness.protocols.lorawan`` (frames,
keys, MAC commands, EU868) and ``otaharness.protocols.basics_station.lns_data`` (station JSON).

Which Basics Station message carries what (basicstation 2.0.6, fact sheet §7):

* ``updf`` (data uplink) and ``jreq`` (join-request) → :meth:`NetworkServer.handle_uplink`.
  The frame is rebuilt from the station's fields (signed DevAddr/MIC, FPort -1); copies from
  several gateways within :data:`.server.DEDUP_WINDOW_S` are processed once and answered
  through the gateway with the best SNR (then RSSI).
* ``dnmsg`` → the station, for every downlink this server sends:

  - class A: ``dC`` 0, the uplink's ``xtime`` and ``rctx``, ``RxDelay`` (1 s for data, 5 s for
    a join-accept) and the DR/frequency of *one* window: ``RX1DR``/``RX1Freq`` (uplink
    frequency, uplink DR less RX1DROffset) when RX1 is free, else ``RX2DR``/``RX2Freq``
    (869.525 MHz DR0 by default; the station then sends at xtime + RxDelay + 1 s);
  - class C: ``dC`` 2, only ``RX2DR``/``RX2Freq``, no ``xtime``: the station sends at once;
  - multicast: a class C ``dnmsg`` per chosen gateway, carrying the group's frame (McAddr,
    McNwkSKey/McAppSKey, the group's FCnt) on the group's frequency/DR.

  Every ``dnmsg`` carries a non-zero ``DevEui`` — the device's, or for multicast
  ``0xFFFFFFFF_<McAddr>`` — because the station sends ``dntxed`` only for a ``dnmsg`` with a
  DevEui. ``dnsched`` is never used: it carries no DevEui and gets no ``dntxed``.
* ``dntxed`` → :meth:`NetworkServer.handle_dntxed`. It settles a downlink: the queued
  application payload is removed (without one it is retried), the next class C frame of a device
  and the next frame of a multicast group are sent only after it (or a timeout).
* ``timesync`` → :meth:`NetworkServer.handle_timesync` returns the reply.

Hosting: :mod:`.service` (``FLOW_SERVICES["lorawan"]``) attaches the core to the Basics Station
service's LNS (``LnsServer.attach_network_server``; the LNS is the gateway port) and serves the
HTTP application interface of :mod:`.app_api` (docs/lorawan.md).

Duty cycle: every frame handed to a gateway is booked per gateway and sub-band
(:mod:`.duty_cycle`, EU868 limits); the server never asks for a transmission the station would
refuse — class A falls back from RX1 to RX2 or keeps the payload queued for the next uplink,
class C and multicast wait. All timers run on the event loop clock; wire times (DeviceTimeAns,
``MuxTime``, timesync) come from the injected clock.
"""

from .duty_cycle import GatewayAirtime
from .registry import Device, DeviceClassName, DeviceRegistry, MulticastGroup, RegistryError, UnknownDevice
from .server import (
    DownlinkHandle,
    GatewayPort,
    GatewayReception,
    MulticastFrame,
    NetworkServer,
    TxWindow,
    UplinkMeta,
)

__all__ = [
    "Device", "DeviceClassName", "DeviceRegistry", "DownlinkHandle", "GatewayAirtime", "GatewayPort",
    "GatewayReception", "MulticastFrame", "MulticastGroup", "NetworkServer", "RegistryError", "TxWindow",
    "UnknownDevice", "UplinkMeta",
]

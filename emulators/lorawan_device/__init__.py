"""An emulated LoRaWAN 1.0.x class A/C end device on the in-process radio medium.

::

    device = LoRaWANDevice("dev1", DeviceConfig(dev_eui=..., app_eui=..., app_key=...), medium,
                           position=(300.0, 0.0), clock=runtime.clock, rng=runtime.rng("dev1"),
                           on_downlink=handler, on_session=capture.add_session)
    await device.join()                          # OTAA; ABP devices have a session from boot
    await device.send(2, b"...", confirmed=True)  # -> acknowledged?
    device.set_port_handler(201, fragments)     # handler(fport, payload, multicast)
    device.add_multicast_group(0, mc_addr, mc_keys); device.start_multicast_session(0, ...)
    await device.reboot(); await device.power_cut()

Behaviour:

- OTAA: DevNonce drawn from the injected rng, never one used before (LoRaWAN 1.0.0-1.0.3), or a
  counter (``DevNonceMode.COUNTER``, 1.0.4); both kept in NVM. Join-request on a random default
  channel, join-accept windows at 5 s / 6 s; the join-accept is decrypted, its MIC checked, keys
  derived, DLSettings/RxDelay/CFList applied. ABP: the session exists from boot.
- Class A: RX1 ``RxDelay`` (1 s default) and RX2 one second later after every uplink, timed from
  the end of the uplink on the device's own (drifting) clock. A window catches a downlink whose
  preamble starts within ``rx_window_symbols`` symbols of its opening on its frequency and DR; a
  frame taken in RX1 closes RX2. Class C: the receiver sits on RX2 whenever it is not sending or
  in RX1. During a multicast session the continuous receiver is on the session's frequency/DR
  instead (LoRaMac-node's McRxParams), whatever the class.
- Uplinks: random enabled channel allowed for the DR whose sub-band's duty cycle allows it (the
  device waits otherwise; DutyCycleReq adds an aggregate limit). Confirmed uplinks are repeated
  with the same FCnt after ACK_TIMEOUT (1-3 s) until acknowledged, at most
  ``confirmed_attempts``; unconfirmed ones NbTrans times unless a downlink arrives. Data rate is
  not lowered on retransmissions.
- Counters: FCntUp/FCntDown are 32-bit; a downlink's counter is rebuilt from its 16 bits as the
  smallest value above the last accepted one, and the MIC checked with it; a frame whose MIC
  holds only for an older counter is a replay and is ignored (``counters["replayed"]``).
- Multicast: up to four groups (McAddr, keys, min/max FCnt, own counter); frames must be
  unconfirmed, without ACK or MAC commands, FPort > 0; delivered with ``multicast=True``.
- MAC commands answered: LinkCheckAns (stored in ``link_check``), DevStatus, DeviceTime (the
  device clock is set to the answer at the end of the requesting uplink), RXParamSetup,
  NewChannel, DutyCycle, LinkADR, RXTimingSetup, DlChannel (emulators/lorawan_device/mac.py).
  Answers ride in the next uplink's FOpts; RXParamSetupAns, RXTimingSetupAns and DlChannelAns are
  repeated until a downlink arrives. TxParamSetupReq is ignored (not used in EU868).
- Clock: ``device.clock.gps()`` = true GPS time + ``clock_offset_s``, running
  ``clock_drift_ppm`` fast; reboot() keeps it running, power_cut() restarts it with the configured
  error.
- reboot()/power_cut(): RAM (pending answers, windows, an uplink or join in progress — which
  raises DeviceResetError — multicast sessions) is lost; NVM keeps keys, EUIs, DevNonce state and,
  as configured (DeviceConfig: keep_session, keep_fcnts, keep_multicast), the session with the MAC
  settings, the frame counters and the multicast groups.
- Scale: no per-device timers while idle; an uplink cycle is one coroutine waiting on a future
  with a deadline; windows are data the medium's ``listening`` question reads.
- Standalone use needs a medium: ``otaharness emulate lorawan`` (emulators/lorawan_cli.py) puts
  devices on one with Basics Station emulators as gateways, which talk to any LNS.
"""

from .device import DeviceClock, LoRaWANDevice, RxWindow
from .state import (
    AbpActivation,
    Channel,
    DeviceClass,
    DeviceConfig,
    DeviceError,
    DeviceResetError,
    DevNonceMode,
    MacSettings,
    MulticastGroup,
    MulticastSession,
    Nvm,
    Session,
)

__all__ = [
    "AbpActivation",
    "Channel",
    "DevNonceMode",
    "DeviceClass",
    "DeviceClock",
    "DeviceConfig",
    "DeviceError",
    "DeviceResetError",
    "LoRaWANDevice",
    "MacSettings",
    "MulticastGroup",
    "MulticastSession",
    "Nvm",
    "RxWindow",
    "Session",
]

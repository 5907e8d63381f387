"""The scenario's LoRaWAN field, shared by the lorawan and fuota step modules (step modules never
import each other): Basics Stations and devices on one radio medium, the network server behind the
LNS (service "lorawan"), and the radio capture.

Every scenario's radio traffic is written as a LoRaTap pcap with the Wireshark key log beside it
(``radio.pcap`` and ``radio.pcap.wireshark/`` in the scenario's artifacts), copied into the capture
directory when capture is on.
"""

from __future__ import annotations

import dataclasses
import shutil
from dataclasses import dataclass
from typing import Any

from otaharness.emulators.lorawan_field import LoRaWANField
from otaharness.bdd.support import ota
from otaharness.protocols.lorawan.errors import LoRaWANError
from otaharness.protocols.lorawan.crypto import frm_payload_cipher
from otaharness.protocols.lorawan.frames import DataFrame, decode_phy_payload, reconstruct_fcnt
from otaharness.runtime.lora_capture import LoraCapture
from otaharness.runtime.runtime import slug


@dataclass
class Received:
    at: float  # scenario clock
    fport: int
    payload: bytes
    multicast: bool


@dataclass(frozen=True)
class Heard:
    """A data downlink the radio medium delivered to a device, addressed to it (unicast) or to a
    multicast group it was in at that moment; frames for other addresses are not kept."""
    at: float  # scenario clock, end of the frame's airtime
    multicast: bool
    fport: int | None
    phy_payload: bytes
    command: int | None = None  # multicast: the first octet of the decrypted FRMPayload (a CID)


@dataclass
class LoRaWANWorld:
    field: LoRaWANField
    service: Any  # the "lorawan" service (network server, LNS, application API)
    capture: LoraCapture
    # (dataclasses.field: the attribute "field" shadows the bare name inside the class)
    received: dict[str, list[Received]] = dataclasses.field(default_factory=dict)
    uplinks: dict[str, list[bytes]] = dataclasses.field(default_factory=dict)  # PHYPayloads each device sent
    heard: dict[str, list[Heard]] = dataclasses.field(default_factory=dict)  # downlinks each device received


def lorawan_world(context: Any) -> LoRaWANWorld:
    """The scenario's field, made on first use; closed (and its capture copied) at cleanup."""
    world: LoRaWANWorld | None = getattr(context, "lorawan", None)
    if world is not None:
        return world
    runtime = ota(context)
    service = runtime.run(runtime.service("lorawan"))
    urls = service.endpoints()
    runtime.artifacts.mkdir(parents=True, exist_ok=True)
    capture = LoraCapture(runtime.artifacts / "radio.pcap", runtime.clock)
    lorawan_field = LoRaWANField(runtime.artifacts / "stations", runtime.clock, runtime.rng("radio"),
                                 tc_uri=urls["lns"], cups_uri=urls["cups"], dial=runtime.link,
                                 address_of=runtime.address_of, capture=capture)
    world = context.lorawan = LoRaWANWorld(lorawan_field, service, capture)
    lorawan_field.medium.add_monitor(lambda frame, receptions: world.uplinks.setdefault(frame.sender, []).append(
        bytes(frame.transmission.phy_payload)) if frame.uplink else _note_heard(world, frame, receptions))

    async def close() -> None:
        await lorawan_field.close()
        capture.close()
        capture_dir = runtime.config.capture_dir
        if capture_dir is not None:
            capture_dir.mkdir(parents=True, exist_ok=True)
            name = f"{slug(runtime.name)}-radio.pcap"
            shutil.copyfile(capture.path, capture_dir / name)
            if capture.key_dir.exists():
                shutil.copytree(capture.key_dir, capture_dir / f"{name}.wireshark", dirs_exist_ok=True)

    runtime.add_cleanup(close)
    return world


def _note_heard(world: LoRaWANWorld, frame: Any, receptions: Any) -> None:
    """Each device that received this data downlink, if it was for the device's own address or a
    multicast group the device was in (judged now: a group may be deleted later)."""
    try:
        data = decode_phy_payload(bytes(frame.transmission.phy_payload))
    except LoRaWANError:
        return
    if not isinstance(data, DataFrame):
        return
    for reception in receptions:
        device = world.field.devices.get(reception.receiver)
        if device is None:
            continue
        own = device.session is not None and device.session.dev_addr == data.dev_addr
        group = next((g for g in device.multicast.values() if g.mc_addr == data.dev_addr), None)
        if own or group is not None:
            command = None
            if not own and data.fport and data.frm_payload:  # read with the group's own key
                last = group.last_fcnt
                fcnt = reconstruct_fcnt(data.fcnt16, group.min_fcnt if last is None else last)
                command = frm_payload_cipher(group.keys.app_s_key, data.frm_payload[:1],
                                             dev_addr=data.dev_addr, fcnt=fcnt, uplink=False)[0]
            world.heard.setdefault(reception.receiver, []).append(
                Heard(frame.end, not own, data.fport, bytes(frame.transmission.phy_payload), command))

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

from emulators.lorawan_field import LoRaWANField
from otaharness.bdd.support import ota
from otaharness.runtime.lora_capture import LoraCapture
from otaharness.runtime.runtime import slug


@dataclass
class Received:
    at: float  # scenario clock
    fport: int
    payload: bytes
    multicast: bool


@dataclass
class LoRaWANWorld:
    field: LoRaWANField
    service: Any  # the "lorawan" service (network server, LNS, application API)
    capture: LoraCapture
    # (dataclasses.field: the attribute "field" shadows the bare name inside the class)
    received: dict[str, list[Received]] = dataclasses.field(default_factory=dict)
    uplinks: dict[str, list[bytes]] = dataclasses.field(default_factory=dict)  # PHYPayloads each device sent


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
        bytes(frame.transmission.phy_payload)) if frame.uplink else None)

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

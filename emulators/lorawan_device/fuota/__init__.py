"""FUOTA packages for the emulated LoRaWAN end device (TS003 clock sync, TS004 fragmentation,
TS005 multicast setup, TS006 firmware management), attached through the device's per-FPort hooks.

::

    agent = FuotaAgent(device, verify_key=public_key, firmware_version=0x0100, hw_version=0x10,
                       profile=LORAMAC_NODE, rng=runtime.rng("dev1-fuota"), poll_interval_s=30)
    agent.start()          # clock sync at boot, then answers and polls
    await agent.reboot()   # installs a valid image from the flash slot, then reboots the device
"""

from .agent import LORAMAC_NODE, PROFILES, SPECIFICATION, FuotaAgent, FuotaProfile
from .image import FlashFull, FlashSlot, ImageCheck, build_image, check_image

__all__ = [
    "LORAMAC_NODE", "PROFILES", "SPECIFICATION", "FlashFull", "FlashSlot", "FuotaAgent", "FuotaProfile",
    "ImageCheck", "build_image", "check_image",
]

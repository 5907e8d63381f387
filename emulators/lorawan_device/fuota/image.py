"""A firmware image as the emulated devices take it, and the flash slot it is assembled in.

Image layout (little-endian, our own format — TS006 leaves it to the manufacturer)::

    magic "OTAF" | fw_version (4) | hw_version (4) | body length (4) | body | Ed25519 signature (64)

The signature covers everything before it. TS006-1.0.0 §3.5 UpImageStatus: 1 = corrupt or bad
signature, 2 = authenticated but for other hardware, 3 = valid.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from otaharness.protocols.fuota.firmware_management import UpImageStatus

MAGIC = b"OTAF"
_HEADER = struct.Struct("<4sIII")
SIGNATURE_SIZE = 64


class FlashFull(ValueError):
    """More octets than the flash slot holds."""


def build_image(body: bytes, *, fw_version: int, hw_version: int, signing_key: Ed25519PrivateKey) -> bytes:
    signed = _HEADER.pack(MAGIC, fw_version, hw_version, len(body)) + body
    return signed + signing_key.sign(signed)


@dataclass(frozen=True)
class ImageCheck:
    status: UpImageStatus
    fw_version: int | None = None
    body_size: int | None = None  # octets of firmware the header announces (a valid image)


def check_image(data: bytes | None, *, verify_key: Ed25519PublicKey, hw_version: int) -> ImageCheck:
    """What DevUpgradeImageAns reports for the octets in the flash slot."""
    if data is None:
        return ImageCheck(UpImageStatus.NO_IMAGE)
    if len(data) < _HEADER.size + SIGNATURE_SIZE:
        return ImageCheck(UpImageStatus.CORRUPT_OR_BAD_SIGNATURE)
    magic, fw_version, image_hw, length = _HEADER.unpack_from(data)
    if magic != MAGIC or len(data) != _HEADER.size + length + SIGNATURE_SIZE:
        return ImageCheck(UpImageStatus.CORRUPT_OR_BAD_SIGNATURE)
    try:
        verify_key.verify(data[-SIGNATURE_SIZE:], data[:-SIGNATURE_SIZE])
    except InvalidSignature:
        return ImageCheck(UpImageStatus.CORRUPT_OR_BAD_SIGNATURE)
    if image_hw != hw_version:
        return ImageCheck(UpImageStatus.WRONG_HARDWARE, fw_version)
    return ImageCheck(UpImageStatus.VALID, fw_version, length)


# Slots that hold the same octets share one bytes object: bytes are immutable and a device can
# only erase or rewrite its slot, and every device of a campaign rebuilds the same image.
# The last few images written are remembered, whoever holds them.
_SHARED_IMAGES_LIMIT = 8
_shared_images: dict[bytes, bytes] = {}


def _held_once(data: bytes) -> bytes:
    held = _shared_images.get(data)
    if held is None:
        if len(_shared_images) >= _SHARED_IMAGES_LIMIT:
            del _shared_images[next(iter(_shared_images))]
        _shared_images[data] = held = data
    return held


class FlashSlot:
    """The download slot in flash: survives reboot and power cut; erased, then written once."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.data: bytes | None = None
        self.writes = 0
        self.erases = 0

    def write(self, data: bytes) -> None:
        if len(data) > self.capacity:
            raise FlashFull(f"{len(data)} octets do not fit the {self.capacity}-octet slot")
        self.data = _held_once(bytes(data))
        self.writes += 1

    def erase(self) -> None:
        self.data = None
        self.erases += 1

"""LoRaWAN 1.0.x cryptographic primitives (LoRaWAN 1.0.3 §4.3.3, §4.4, §6.2.5, §6.2.6).

Pure functions over bytes: AES-128 single blocks, AES-CMAC, the B0 block for
data-frame MICs and the A_i keystream for FRMPayload encryption. Frame-level
helpers in :mod:`.frames` call these.
"""

from __future__ import annotations

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.cmac import CMAC

from ._wire import to_le
from .errors import LoRaWANError

KEY_SIZE = 16
MIC_SIZE = 4
BLOCK_SIZE = 16
# The block counter i is one octet of A_i (§4.3.3.1), so at most 255 blocks.
MAX_ENCRYPTED_LENGTH = 255 * BLOCK_SIZE


def check_key(name: str, key: bytes) -> bytes:
    if not isinstance(key, (bytes, bytearray)) or len(key) != KEY_SIZE:
        raise LoRaWANError(f"{name} must be {KEY_SIZE} octets, got {key!r}")
    return bytes(key)


def aes128_encrypt(key: bytes, block: bytes) -> bytes:
    """AES-128 ECB encryption of one or more whole 16-octet blocks."""
    encryptor = Cipher(algorithms.AES(check_key("key", key)), modes.ECB()).encryptor()
    return encryptor.update(_whole_blocks(block)) + encryptor.finalize()


def aes128_decrypt(key: bytes, block: bytes) -> bytes:
    """AES-128 ECB decryption of one or more whole 16-octet blocks."""
    decryptor = Cipher(algorithms.AES(check_key("key", key)), modes.ECB()).decryptor()
    return decryptor.update(_whole_blocks(block)) + decryptor.finalize()


def _whole_blocks(data: bytes) -> bytes:
    if len(data) == 0 or len(data) % BLOCK_SIZE:
        raise LoRaWANError(f"AES-ECB input must be a multiple of 16 octets, got {len(data)}")
    return bytes(data)


# A keyed CMAC context per key, copied for each message: copying is several times cheaper than
# setting up AES and the CMAC subkeys again, and a network or a fleet MICs many frames per key.
_CMAC_CONTEXTS_LIMIT = 8192
_cmac_contexts: dict[bytes, CMAC] = {}


def aes_cmac(key: bytes, message: bytes) -> bytes:
    """Full 16-octet AES-CMAC (RFC 4493)."""
    key = check_key("key", key)
    keyed = _cmac_contexts.get(key)
    if keyed is None:
        if len(_cmac_contexts) >= _CMAC_CONTEXTS_LIMIT:
            _cmac_contexts.clear()
        keyed = _cmac_contexts[key] = CMAC(algorithms.AES(key))
    cmac = keyed.copy()
    cmac.update(bytes(message))
    return cmac.finalize()


def _direction_block(first_octet: int, uplink: bool, dev_addr: int, fcnt: int, last_octet: int) -> bytes:
    """Shared layout of B0 and A_i: first | 0x00*4 | Dir | DevAddr | FCnt32 | 0x00 | last."""
    return (
        bytes([first_octet, 0, 0, 0, 0, 0 if uplink else 1])
        + to_le("DevAddr", dev_addr, 4)
        + to_le("FCnt", fcnt, 4)
        + bytes([0, last_octet])
    )


def data_mic(nwk_s_key: bytes, message: bytes, *, dev_addr: int, fcnt: int, uplink: bool) -> bytes:
    """MIC of a data frame: cmac(NwkSKey, B0 | MHDR..FRMPayload)[0:4] (§4.4)."""
    if len(message) > 255:
        raise LoRaWANError(f"MIC input of {len(message)} octets does not fit B0's length octet")
    b0 = _direction_block(0x49, uplink, dev_addr, fcnt, len(message))
    return aes_cmac(nwk_s_key, b0 + message)[:MIC_SIZE]


def join_mic(key: bytes, message: bytes) -> bytes:
    """MIC of a join-request or join-accept: cmac(AppKey, MHDR | fields)[0:4] (§6.2.5, §6.2.6)."""
    return aes_cmac(key, message)[:MIC_SIZE]


def frm_payload_cipher(key: bytes, payload: bytes, *, dev_addr: int, fcnt: int, uplink: bool) -> bytes:
    """Encrypt or decrypt an FRMPayload: XOR with AES(key, A_i), i = 1.. (§4.3.3.1).

    A_i differ only in their last octet i, so the keystream is AES-CTR started at
    A_1; at most 255 blocks keep the counter inside that octet.
    """
    if len(payload) > MAX_ENCRYPTED_LENGTH:
        raise LoRaWANError(f"FRMPayload of {len(payload)} octets exceeds {MAX_ENCRYPTED_LENGTH}")
    if not payload:
        check_key("key", key)
        return b""  # no keystream to apply (an empty poll uplink): no cipher set up
    a1 = _direction_block(0x01, uplink, dev_addr, fcnt, 1)
    encryptor = Cipher(algorithms.AES(check_key("key", key)), modes.CTR(a1)).encryptor()
    return encryptor.update(bytes(payload)) + encryptor.finalize()

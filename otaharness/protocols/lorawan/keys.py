"""Session key derivation: OTAA (LoRaWAN 1.0.3 §6.2.6) and multicast (TS005).

All derivations are one AES-128-ECB encryption of a 16-octet block built as
``prefix | fields in wire (little-endian) order | zero padding``.
"""

from __future__ import annotations

from dataclasses import dataclass

from ._wire import to_le
from .crypto import BLOCK_SIZE, aes128_decrypt, aes128_encrypt, check_key


@dataclass(frozen=True)
class SessionKeys:
    """NwkSKey (MIC, FPort 0 payloads) and AppSKey (FPort > 0 payloads) of one session."""

    nwk_s_key: bytes
    app_s_key: bytes

    def __post_init__(self) -> None:
        check_key("NwkSKey", self.nwk_s_key)
        check_key("AppSKey", self.app_s_key)


def _derive(key: bytes, prefix: int, fields: bytes) -> bytes:
    return aes128_encrypt(key, (bytes([prefix]) + fields).ljust(BLOCK_SIZE, b"\x00"))


def derive_session_keys(app_key: bytes, *, join_nonce: int, net_id: int, dev_nonce: int) -> SessionKeys:
    """OTAA keys (LoRaWAN 1.0.3 §6.2.6).

    NwkSKey = aes128_encrypt(AppKey, 0x01 | AppNonce | NetID | DevNonce | pad16)
    AppSKey = aes128_encrypt(AppKey, 0x02 | AppNonce | NetID | DevNonce | pad16)
    ``join_nonce`` is the join-accept's AppNonce (renamed JoinNonce in 1.0.4).
    """
    fields = to_le("AppNonce", join_nonce, 3) + to_le("NetID", net_id, 3) + to_le("DevNonce", dev_nonce, 2)
    return SessionKeys(nwk_s_key=_derive(app_key, 0x01, fields), app_s_key=_derive(app_key, 0x02, fields))


# --- Multicast (TS005 Remote Multicast Setup; exact AES inputs per the fact sheet §1.1) ---


def mc_root_key_from_gen_app_key(gen_app_key: bytes) -> bytes:
    """LoRaWAN 1.0.x devices: McRootKey = aes128_encrypt(GenAppKey, 0x00 * 16)."""
    return aes128_encrypt(gen_app_key, bytes(BLOCK_SIZE))


def mc_root_key_from_app_key(app_key: bytes) -> bytes:
    """LoRaWAN 1.1.x devices: McRootKey = aes128_encrypt(AppKey, 0x20 | pad16)."""
    return _derive(app_key, 0x20, b"")


def derive_mc_ke_key(mc_root_key: bytes) -> bytes:
    """McKEKey = aes128_encrypt(McRootKey, 0x00 * 16)."""
    return aes128_encrypt(mc_root_key, bytes(BLOCK_SIZE))


def encrypt_mc_key(mc_ke_key: bytes, mc_key: bytes) -> bytes:
    """Server side: McKey_encrypted = aes128_decrypt(McKEKey, McKey), sent in McGroupSetupReq."""
    return aes128_decrypt(mc_ke_key, check_key("McKey", mc_key))


def decrypt_mc_key(mc_ke_key: bytes, mc_key_encrypted: bytes) -> bytes:
    """Device side: McKey = aes128_encrypt(McKEKey, McKey_encrypted) (encrypt direction only)."""
    return aes128_encrypt(mc_ke_key, check_key("McKey_encrypted", mc_key_encrypted))


def derive_mc_session_keys(mc_key: bytes, mc_addr: int) -> SessionKeys:
    """McNwkSKey/McAppSKey of a multicast group.

    McAppSKey = aes128_encrypt(McKey, 0x01 | McAddr | pad16)
    McNwkSKey = aes128_encrypt(McKey, 0x02 | McAddr | pad16)
    """
    addr = to_le("McAddr", mc_addr, 4)
    return SessionKeys(nwk_s_key=_derive(mc_key, 0x02, addr), app_s_key=_derive(mc_key, 0x01, addr))

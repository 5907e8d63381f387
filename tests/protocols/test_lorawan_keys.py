"""OTAA and multicast key derivation and the raw crypto blocks (LoRaWAN 1.0.x, TS005).

Vectors: fact sheet §1.1 (brocaar keys_test.go values) and lora-packet
__tests__/key_gen_test.ts; RFC 4493 for AES-CMAC.
"""

from __future__ import annotations

import pytest

from otaharness.protocols.lorawan import (
    LoRaWANError,
    SessionKeys,
    decrypt_mc_key,
    derive_mc_ke_key,
    derive_mc_session_keys,
    derive_session_keys,
    encrypt_mc_key,
    mc_root_key_from_app_key,
    mc_root_key_from_gen_app_key,
)
from otaharness.protocols.lorawan.crypto import aes_cmac, data_mic, frm_payload_cipher


def _x_02_to_10(first: int) -> bytes:
    """The sheet's `x 02 03 … 10` keys: first octet x, then 0x02..0x10."""
    return bytes([first]) + bytes(range(2, 17))


GEN_APP_KEY = _x_02_to_10(0x03)
APP_KEY_11 = _x_02_to_10(0x02)
MC_ROOT_KEY = _x_02_to_10(0x04)
MC_KEY = bytes(range(1, 17))
MC_ADDR = 0x01020304
MC_KE_KEY = bytes.fromhex("9083bebf704257883160dbfcde33ad71")


class TestMulticastKeys:
    def test_mc_root_key_from_gen_app_key(self) -> None:
        assert mc_root_key_from_gen_app_key(GEN_APP_KEY).hex() == "55344e82570eaec8bf03b99962d1f445"

    def test_mc_root_key_from_app_key_11(self) -> None:
        assert mc_root_key_from_app_key(APP_KEY_11).hex() == "264fd859583fcc670241ac071cc9f5bb"

    def test_mc_ke_key(self) -> None:
        assert derive_mc_ke_key(MC_ROOT_KEY) == MC_KE_KEY

    def test_mc_session_keys(self) -> None:
        keys = derive_mc_session_keys(MC_KEY, MC_ADDR)
        assert keys.app_s_key.hex() == "95cb4518ee375606735bbacbdce837fa"
        assert keys.nwk_s_key.hex() == "c3f6b388bad6c000b23291ad52c11c7b"

    def test_mc_key_encryption_for_mc_group_setup_req(self) -> None:
        encrypted = encrypt_mc_key(MC_KE_KEY, MC_KEY)
        assert encrypted.hex() == "8fdb64eb7bd3bbd0e4fe56883ddbcc33"
        assert decrypt_mc_key(MC_KE_KEY, encrypted) == MC_KEY

    def test_mc_addr_out_of_range(self) -> None:
        with pytest.raises(LoRaWANError, match="McAddr"):
            derive_mc_session_keys(MC_KEY, 1 << 32)


class TestSessionKeys:
    def test_lora_packet_vector(self) -> None:
        keys = derive_session_keys(bytes.fromhex("98929b92c49edba9676d646d3b612456"),
                                   join_nonce=0x376338, net_id=0xAABBCC, dev_nonce=0xF18E)
        assert keys == SessionKeys(nwk_s_key=bytes.fromhex("4e3d6e6afbcc67af2ba3c8e8ec4acf4b"),
                                   app_s_key=bytes.fromhex("610897aa6f1460623443b527d3ac6a9d"))

    def test_nonce_out_of_range(self) -> None:
        with pytest.raises(LoRaWANError, match="DevNonce"):
            derive_session_keys(bytes(16), join_nonce=0, net_id=0, dev_nonce=0x10000)

    def test_key_of_wrong_size(self) -> None:
        with pytest.raises(LoRaWANError, match="NwkSKey"):
            SessionKeys(nwk_s_key=bytes(15), app_s_key=bytes(16))


class TestCryptoBlocks:
    def test_aes_cmac_rfc4493_example_2(self) -> None:
        key = bytes.fromhex("2b7e151628aed2a6abf7158809cf4f3c")
        message = bytes.fromhex("6bc1bee22e409f96e93d7e117393172a")
        assert aes_cmac(key, message).hex() == "070a16b46b4d4144f79bdd9dd04a287c"

    def test_mic_depends_on_direction_and_upper_fcnt_bits(self) -> None:
        key, message = bytes(16), b"\x40" + bytes(7)
        up = data_mic(key, message, dev_addr=1, fcnt=5, uplink=True)
        assert up != data_mic(key, message, dev_addr=1, fcnt=5, uplink=False)
        assert up != data_mic(key, message, dev_addr=1, fcnt=0x10005, uplink=True)

    def test_keystream_is_its_own_inverse_across_blocks(self) -> None:
        key, plain = bytes(range(16)), bytes(range(40))
        cipher = frm_payload_cipher(key, plain, dev_addr=7, fcnt=0x10000, uplink=False)
        assert cipher != plain
        assert frm_payload_cipher(key, cipher, dev_addr=7, fcnt=0x10000, uplink=False) == plain

    def test_payload_longer_than_255_blocks(self) -> None:
        with pytest.raises(LoRaWANError, match="exceeds"):
            frm_payload_cipher(bytes(16), bytes(255 * 16 + 1), dev_addr=0, fcnt=0, uplink=True)

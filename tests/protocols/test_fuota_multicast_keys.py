"""TS005 multicast key derivation against the fact sheet's vectors (§1.1, brocaar keys_test.go)."""

from __future__ import annotations

from typing import Callable

import pytest

from otaharness.protocols.fuota import multicast_setup as ts005
from otaharness.protocols.lorawan import LoRaWANError
from otaharness.protocols.lorawan import keys as lorawan_keys

GEN_APP_KEY = bytes([0x03]) + bytes(range(2, 17))
APP_KEY = bytes([0x02]) + bytes(range(2, 17))
MC_ROOT_KEY = bytes([0x04]) + bytes(range(2, 17))
MC_KEY = bytes(range(1, 17))
MC_ADDR = 0x01020304


def test_mc_root_key_for_lorawan_10_devices() -> None:
    assert lorawan_keys.mc_root_key_from_gen_app_key(GEN_APP_KEY).hex() == "55344e82570eaec8bf03b99962d1f445"


def test_mc_root_key_for_lorawan_11_devices() -> None:
    assert lorawan_keys.mc_root_key_from_app_key(APP_KEY).hex() == "264fd859583fcc670241ac071cc9f5bb"


def test_mc_ke_key() -> None:
    assert lorawan_keys.derive_mc_ke_key(MC_ROOT_KEY).hex() == "9083bebf704257883160dbfcde33ad71"


def test_session_keys() -> None:
    keys = lorawan_keys.derive_mc_session_keys(MC_KEY, MC_ADDR)
    assert keys.app_s_key.hex() == "95cb4518ee375606735bbacbdce837fa"
    assert keys.nwk_s_key.hex() == "c3f6b388bad6c000b23291ad52c11c7b"


def test_mc_key_encryption_round_trip() -> None:
    ke_key = lorawan_keys.derive_mc_ke_key(MC_ROOT_KEY)
    encrypted = lorawan_keys.encrypt_mc_key(ke_key, MC_KEY)
    assert encrypted.hex() == "8fdb64eb7bd3bbd0e4fe56883ddbcc33"
    assert lorawan_keys.decrypt_mc_key(ke_key, encrypted) == MC_KEY


def test_setup_request_carries_what_the_device_decrypts() -> None:
    ke_key = lorawan_keys.derive_mc_ke_key(MC_ROOT_KEY)
    request = ts005.McGroupSetupReq(
        mc_group_id=0,
        mc_addr=MC_ADDR,
        mc_key_encrypted=lorawan_keys.encrypt_mc_key(ke_key, MC_KEY),
        min_mc_fcount=0,
        max_mc_fcount=0xFFFFFFFF,
    )
    (received,) = ts005.MULTICAST_SETUP.parse_downlink(request.to_bytes())
    mc_key = lorawan_keys.decrypt_mc_key(ke_key, received.mc_key_encrypted)
    assert lorawan_keys.derive_mc_session_keys(mc_key, received.mc_addr).nwk_s_key.hex() == (
        "c3f6b388bad6c000b23291ad52c11c7b"
    )


@pytest.mark.parametrize(
    "call",
    [
        lambda: lorawan_keys.derive_mc_ke_key(bytes(15)),
        lambda: lorawan_keys.encrypt_mc_key(bytes(16), bytes(17)),
        lambda: lorawan_keys.derive_mc_session_keys(MC_KEY, -1),
    ],
)
def test_bad_key_material_raises_the_codec_error(call: Callable[[], object]) -> None:
    with pytest.raises(LoRaWANError):
        call()

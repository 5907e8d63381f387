"""LoRaWAN 1.0.x wire codecs (pure: bytes in, dataclasses out).

- :mod:`.frames`: PHYPayload (MHDR, join-request/accept, data frames, FCnt rebuild)
- :mod:`.crypto`: AES/CMAC primitives, MIC and FRMPayload keystream
- :mod:`.keys`: OTAA session keys and TS005 multicast keys
- :mod:`.mac_commands`: class A/C MAC commands
- :mod:`.region`: regional parameters (EU868)
- :mod:`.airtime`: LoRa time on air
"""

from .airtime import frame_time_on_air_s, lora_time_on_air_s
from .errors import FrameTooShortError, LoRaWANError, UnknownMacCommandError, UnknownMTypeError
from .frames import (
    DataFrame,
    DownlinkFCtrl,
    EncryptedJoinAccept,
    JoinAccept,
    JoinRequest,
    MType,
    PHYPayload,
    UplinkFCtrl,
    build_data_frame,
    build_join_accept,
    build_join_request,
    decode_phy_payload,
    reconstruct_fcnt,
)
from .keys import (
    SessionKeys,
    derive_mc_ke_key,
    derive_mc_session_keys,
    derive_session_keys,
    decrypt_mc_key,
    encrypt_mc_key,
    mc_root_key_from_app_key,
    mc_root_key_from_gen_app_key,
)
from .mac_commands import MacCommand, decode_mac_commands, encode_mac_commands
from .region import EU868, DataRate, Region, SubBand

__all__ = [
    "EU868",
    "DataFrame",
    "DataRate",
    "DownlinkFCtrl",
    "EncryptedJoinAccept",
    "FrameTooShortError",
    "JoinAccept",
    "JoinRequest",
    "LoRaWANError",
    "MType",
    "MacCommand",
    "PHYPayload",
    "Region",
    "SessionKeys",
    "SubBand",
    "UnknownMTypeError",
    "UnknownMacCommandError",
    "UplinkFCtrl",
    "build_data_frame",
    "build_join_accept",
    "build_join_request",
    "decode_mac_commands",
    "decode_phy_payload",
    "decrypt_mc_key",
    "derive_mc_ke_key",
    "derive_mc_session_keys",
    "derive_session_keys",
    "encode_mac_commands",
    "encrypt_mc_key",
    "frame_time_on_air_s",
    "lora_time_on_air_s",
    "mc_root_key_from_app_key",
    "mc_root_key_from_gen_app_key",
    "reconstruct_fcnt",
]

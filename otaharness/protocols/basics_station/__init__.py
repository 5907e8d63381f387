"""Pure codecs of the LoRa Basics Station CUPS flow and the LNS messages it needs.

Byte formats follow lorabasics/basicstation 2.0.6 and /work/shared/protocols/basics-station.md;
nothing here does I/O or reads a clock. Every malformed input raises
:class:`BasicsStationCodecError` (a ``ValueError``).
"""

from .credentials import Credentials, credential_crc, station_auth_header_lines
from .cups import (
    NO_UPDATE,
    UPDATE_INFO_PATH,
    FirmwareSignature,
    UpdateInfoRequest,
    UpdateInfoResponse,
    encode_update_info_http_request,
)
from .errors import BasicsStationCodecError
from .eui import decode_json_eui, format_eui, format_id6, parse_eui, router_eui
from .lns import (
    ROUTER_INFO_PATH,
    RouterConfig,
    RouterInfoRequest,
    RouterInfoResponse,
    VersionMessage,
    check_muxs_uri,
)
from .signature import (
    SigningKey,
    UpdateDecision,
    UpdateOutcome,
    check_firmware_signature,
    key_crc,
    public_key_from_sig_key_file,
    sig_key_file,
    sign_update,
    station_key_crcs,
    station_update_decision,
    verifying_key_index,
)

__all__ = [
    "NO_UPDATE", "ROUTER_INFO_PATH", "UPDATE_INFO_PATH",
    "BasicsStationCodecError", "Credentials", "FirmwareSignature", "RouterConfig", "RouterInfoRequest",
    "RouterInfoResponse", "SigningKey", "UpdateDecision", "UpdateInfoRequest", "UpdateInfoResponse",
    "UpdateOutcome", "VersionMessage",
    "check_firmware_signature", "check_muxs_uri", "credential_crc", "decode_json_eui", "encode_update_info_http_request", "format_eui",
    "format_id6", "key_crc", "parse_eui", "public_key_from_sig_key_file", "router_eui", "sig_key_file",
    "sign_update", "station_auth_header_lines", "station_key_crcs", "station_update_decision", "verifying_key_index",
]

"""Property tests of the LoRaWAN 1.0.x codecs (frames, MAC commands): decoding arbitrary bytes
raises only LoRaWANError, a decoded frame or command list re-encodes to what decodes the same,
and built frames and commands survive encode → decode."""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from otaharness.protocols.lorawan import (
    DataFrame,
    EncryptedJoinAccept,
    JoinAccept,
    JoinRequest,
    LoRaWANError,
    SessionKeys,
    build_join_accept,
    build_join_request,
    decode_mac_commands,
    decode_phy_payload,
    encode_mac_commands,
    reconstruct_fcnt,
)
from otaharness.protocols.lorawan.mac_commands import DOWNLINK_COMMANDS, UPLINK_COMMANDS, MacCommand

EXAMPLES = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
KEY = st.binary(min_size=16, max_size=16)
MHDRS = [mtype << 5 | major for mtype in range(8) for major in (0, 1)]
frames = st.binary(max_size=80) | st.builds(lambda mhdr, rest: bytes([mhdr]) + rest, st.sampled_from(MHDRS),
                                            st.binary(min_size=4, max_size=60))


def only_lorawan_errors(decode: Any, *args: Any, **kwargs: Any) -> Any:
    """``decode(...)``, where the only exception allowed is LoRaWANError (and its subclasses)."""
    try:
        return decode(*args, **kwargs)
    except LoRaWANError:
        return None


@EXAMPLES
@given(data=frames, app_key=KEY, keys=st.builds(SessionKeys, KEY, KEY), last_fcnt=st.integers(0, 0xFFFFFFFF))
def test_frame_decoders_raise_only_lorawan_errors_and_decoded_frames_re_encode(
        data: bytes, app_key: bytes, keys: SessionKeys, last_fcnt: int) -> None:
    for decode in (DataFrame.from_bytes, JoinRequest.from_bytes, JoinAccept.from_bytes):
        only_lorawan_errors(decode, data)
    encrypted = only_lorawan_errors(EncryptedJoinAccept.from_bytes, data)
    if encrypted is not None:
        clear = encrypted.decrypt(app_key)
        assert JoinAccept.from_bytes(clear.to_bytes()) == clear
    frame = only_lorawan_errors(decode_phy_payload, data)
    if frame is None:
        return
    assert decode_phy_payload(frame.to_bytes()) == frame
    if isinstance(frame, DataFrame):
        fcnt = only_lorawan_errors(reconstruct_fcnt, frame.fcnt16, last_fcnt)
        if fcnt is not None:
            only_lorawan_errors(frame.decrypt_payload, keys, fcnt)
            only_lorawan_errors(frame.mic_is_valid, keys.nwk_s_key, fcnt)
        if frame.fport == 0:
            only_lorawan_errors(decode_mac_commands, frame.frm_payload, uplink=frame.uplink)
        only_lorawan_errors(decode_mac_commands, frame.fopts, uplink=frame.uplink)


@EXAMPLES
@given(data=st.binary(max_size=40), uplink=st.booleans())
def test_mac_command_decoder_raises_only_lorawan_errors_and_re_encodes(data: bytes, uplink: bool) -> None:
    commands = only_lorawan_errors(decode_mac_commands, data, uplink=uplink)
    if commands is not None:
        assert decode_mac_commands(encode_mac_commands(commands), uplink=uplink) == commands
        assert len(encode_mac_commands(commands)) == len(data)


@st.composite
def command_lists(draw: st.DrawFn) -> tuple[bool, list[MacCommand]]:
    """Commands of one direction, each made from a random payload (RFU bits then drop off)."""
    uplink = draw(st.booleans())
    table = UPLINK_COMMANDS if uplink else DOWNLINK_COMMANDS
    commands = []
    for command_type in draw(st.lists(st.sampled_from(sorted(table.values(), key=lambda kind: kind.CID)),
                                      max_size=6)):
        payload = draw(st.binary(min_size=command_type.PAYLOAD_LENGTH, max_size=command_type.PAYLOAD_LENGTH))
        command = only_lorawan_errors(command_type.from_payload, payload)
        if command is not None:
            commands.append(command)
    return uplink, commands


@EXAMPLES
@given(case=command_lists())
def test_mac_commands_round_trip(case: tuple[bool, list[MacCommand]]) -> None:
    uplink, commands = case
    wire = encode_mac_commands(commands)
    assert decode_mac_commands(wire, uplink=uplink) == commands
    assert len(wire) == sum(1 + command.PAYLOAD_LENGTH for command in commands)


@EXAMPLES
@given(app_eui=st.integers(0, 2**64 - 1), dev_eui=st.integers(0, 2**64 - 1), dev_nonce=st.integers(0, 0xFFFF),
       app_key=KEY, join_nonce=st.integers(0, 0xFFFFFF), net_id=st.integers(0, 0xFFFFFF),
       dev_addr=st.integers(0, 0xFFFFFFFF), rx1_dr_offset=st.integers(0, 7), rx2_data_rate=st.integers(0, 15),
       rx_delay=st.integers(0, 15), cf_list=st.none() | st.binary(min_size=16, max_size=16))
def test_join_frames_round_trip(app_eui: int, dev_eui: int, dev_nonce: int, app_key: bytes, join_nonce: int,
                                net_id: int, dev_addr: int, rx1_dr_offset: int, rx2_data_rate: int, rx_delay: int,
                                cf_list: bytes | None) -> None:
    request = build_join_request(app_eui=app_eui, dev_eui=dev_eui, dev_nonce=dev_nonce, app_key=app_key)
    assert decode_phy_payload(request.to_bytes()) == request
    assert JoinRequest.from_bytes(request.to_bytes()).mic_is_valid(app_key)
    encrypted = build_join_accept(join_nonce=join_nonce, net_id=net_id, dev_addr=dev_addr, app_key=app_key,
                                  rx1_dr_offset=rx1_dr_offset, rx2_data_rate=rx2_data_rate, rx_delay=rx_delay,
                                  cf_list=cf_list)
    accept = EncryptedJoinAccept.from_bytes(encrypted.to_bytes()).decrypt(app_key)
    assert (accept.join_nonce, accept.net_id, accept.dev_addr, accept.rx1_dr_offset, accept.rx2_data_rate,
            accept.rx_delay, accept.cf_list) == (join_nonce, net_id, dev_addr, rx1_dr_offset, rx2_data_rate,
                                                 rx_delay, cf_list)
    assert accept.mic_is_valid(app_key)

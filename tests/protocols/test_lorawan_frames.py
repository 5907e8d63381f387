"""PHYPayload codec, MIC, FRMPayload encryption and FCnt rebuild (LoRaWAN 1.0.x).

Vectors: the fact sheet /work/shared/protocols/lorawan-fuota.md (§5, §7.1) and the
published test vectors of npm lora-packet (anthonykirby/lora-packet, __tests__/).
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from otaharness.protocols.lorawan import (
    DataFrame,
    DownlinkFCtrl,
    EncryptedJoinAccept,
    FrameTooShortError,
    JoinAccept,
    JoinRequest,
    LoRaWANError,
    MType,
    SessionKeys,
    UnknownMTypeError,
    UplinkFCtrl,
    build_data_frame,
    build_join_accept,
    build_join_request,
    decode_phy_payload,
    reconstruct_fcnt,
)
from otaharness.protocols.lorawan.region import cf_list_from_frequencies

# Fact sheet §5 "Test vector: multicast DataFragment downlink" (keys from §1.1).
MC_KEYS = SessionKeys(nwk_s_key=bytes.fromhex("c3f6b388bad6c000b23291ad52c11c7b"),
                      app_s_key=bytes.fromhex("95cb4518ee375606735bbacbdce837fa"))
MC_FRAME = bytes.fromhex("60" "04030201" "00" "0500" "c9" "c3869c2dced18d" "9090e514")
MC_PLAINTEXT = bytes.fromhex("0805000b090f09")
MC_FCNT = 0x00010005

# lora-packet __tests__/mic_test.ts and decrypt_test.ts.
LP_KEYS = SessionKeys(nwk_s_key=bytes.fromhex("44024241ed4ce9a68c6a8bc055233fd3"),
                      app_s_key=bytes.fromhex("ec925802ae430ca77fd3dd73cb2cc588"))
LP_UPLINK = bytes.fromhex("40F17DBE4900020001954378762B11FF0D")
LP_LONG_UPLINK = bytes.fromhex(
    "40f17dbe490004000155332de41a11adc072553544429ce7787707d1c316e027e7e5e3"
    "34263376affb8aa17ad30075293f28dea8a20af3c5e7")
LP_ACK_DOWNLINK = bytes.fromhex("60f17dbe4920020001f9d65d27")
LP_APP_KEY = bytes.fromhex("98929b92c49edba9676d646d3b612456")
LP_JOIN_REQUEST = bytes.fromhex("0039363463336913AA05693574323831330489C65B1304")
LP_JOIN_ACCEPT_CLEAR = bytes.fromhex("20386337CCBBAAE7CD2C010000D9D0A6E7")
# lora-packet __tests__/join_accept_encrypt.ts: all-zero AppKey and fields.
ZERO_KEY = bytes(16)
ZERO_JOIN_ACCEPT_CLEAR = bytes.fromhex("20000000000000000000000000f86f0a91")
ZERO_JOIN_ACCEPT_WIRE = bytes.fromhex("20e3de108795f776b8037610ef7869b5b3")


class TestDataFrameVectors:
    def test_multicast_fragment_fields(self) -> None:
        frame = decode_phy_payload(MC_FRAME)
        assert isinstance(frame, DataFrame)
        assert frame.mtype is MType.UNCONFIRMED_DATA_DOWN
        assert frame.dev_addr == 0x01020304
        assert frame.fctrl == DownlinkFCtrl()
        assert frame.fcnt16 == 0x0005
        assert (frame.fopts, frame.fport) == (b"", 201)
        assert frame.mic == bytes.fromhex("9090e514")
        assert frame.to_bytes() == MC_FRAME

    def test_multicast_fragment_mic_needs_the_32_bit_fcnt(self) -> None:
        frame = DataFrame.from_bytes(MC_FRAME)
        assert frame.mic_is_valid(MC_KEYS.nwk_s_key, MC_FCNT)
        assert not frame.mic_is_valid(MC_KEYS.nwk_s_key, MC_FCNT & 0xFFFF)
        assert not frame.mic_is_valid(MC_KEYS.app_s_key, MC_FCNT)

    def test_multicast_fragment_decrypts(self) -> None:
        assert DataFrame.from_bytes(MC_FRAME).decrypt_payload(MC_KEYS, MC_FCNT) == MC_PLAINTEXT

    def test_multicast_fragment_builds_byte_for_byte(self) -> None:
        frame = build_data_frame(MType.UNCONFIRMED_DATA_DOWN, dev_addr=0x01020304, fcnt=MC_FCNT, keys=MC_KEYS,
                                 fport=201, payload=MC_PLAINTEXT)
        assert frame.to_bytes() == MC_FRAME

    def test_fcnt_not_matching_transmitted_bits_is_an_error(self) -> None:
        with pytest.raises(LoRaWANError, match="transmitted"):
            DataFrame.from_bytes(MC_FRAME).mic_is_valid(MC_KEYS.nwk_s_key, 0x00010006)

    def test_lora_packet_uplink(self) -> None:
        frame = DataFrame.from_bytes(LP_UPLINK)
        assert frame.mtype is MType.UNCONFIRMED_DATA_UP
        assert frame.dev_addr == 0x49BE7DF1
        assert (frame.fcnt16, frame.fport) == (2, 1)
        assert frame.mic_is_valid(LP_KEYS.nwk_s_key, 2)
        assert frame.decrypt_payload(LP_KEYS, 2) == b"test"

    def test_lora_packet_multi_block_payload(self) -> None:
        frame = DataFrame.from_bytes(LP_LONG_UPLINK)
        assert frame.decrypt_payload(LP_KEYS, frame.fcnt16) == b"The quick brown fox jumps over the lazy dog."

    def test_lora_packet_ack_downlink_with_empty_payload(self) -> None:
        frame = DataFrame.from_bytes(LP_ACK_DOWNLINK)
        assert frame.fctrl == DownlinkFCtrl(ack=True)
        assert (frame.fport, frame.frm_payload) == (1, b"")
        assert frame.mic_is_valid(LP_KEYS.nwk_s_key, 2)

    def test_corrupted_mic_is_reported_false(self) -> None:
        corrupted = LP_UPLINK[:-1] + bytes([LP_UPLINK[-1] ^ 0x01])
        assert DataFrame.from_bytes(corrupted).mic_is_valid(LP_KEYS.nwk_s_key, 2) is False

    def test_sheet_lora_packet_parse_vector(self) -> None:
        frame = DataFrame.from_bytes(bytes.fromhex("40011b0126000300c93df4923551c24ea1a4"))
        assert (frame.mtype, frame.dev_addr, frame.fcnt16, frame.fport) == (
            MType.UNCONFIRMED_DATA_UP, 0x26011B01, 3, 201)
        assert frame.frm_payload == bytes.fromhex("3df4923551")
        assert frame.mic == bytes.fromhex("c24ea1a4")


class TestFHDRLayout:
    def test_uplink_fctrl_bits(self) -> None:
        fctrl = UplinkFCtrl(adr=True, adr_ack_req=True, ack=True, class_b=True)
        assert fctrl.to_octet(fopts_len=3) == 0xF3
        assert UplinkFCtrl.from_octet(0b0100_0000) == UplinkFCtrl(adr_ack_req=True)

    def test_downlink_fctrl_bits_ignore_rfu(self) -> None:
        assert DownlinkFCtrl(adr=True, ack=True, f_pending=True).to_octet(fopts_len=0) == 0xB0
        assert DownlinkFCtrl.from_octet(0b0101_0000) == DownlinkFCtrl(f_pending=True)

    def test_fopts_and_port_less_frame(self) -> None:
        frame = build_data_frame(MType.CONFIRMED_DATA_UP, dev_addr=0x26011B01, fcnt=0x12345, keys=LP_KEYS,
                                 fopts=bytes.fromhex("020d"))
        wire = frame.to_bytes()
        assert wire[0] == 0x80
        assert wire[1:5] == bytes.fromhex("011b0126")
        assert wire[5] == 0x02  # FOptsLen 2
        assert wire[6:8] == bytes.fromhex("4523")  # FCnt 16 LSBs, little-endian
        assert wire[8:10] == bytes.fromhex("020d")
        assert len(wire) == 1 + 7 + 2 + 4  # no FPort, no FRMPayload
        parsed = DataFrame.from_bytes(wire)
        assert (parsed.fport, parsed.fopts) == (None, bytes.fromhex("020d"))
        assert parsed.mic_is_valid(LP_KEYS.nwk_s_key, 0x12345)

    def test_port_zero_payload_uses_nwk_s_key(self) -> None:
        frame = build_data_frame(MType.UNCONFIRMED_DATA_UP, dev_addr=1, fcnt=10, keys=LP_KEYS, fport=0,
                                 payload=b"\x02")
        nwk_only = SessionKeys(nwk_s_key=LP_KEYS.nwk_s_key, app_s_key=bytes(16))
        assert frame.decrypt_payload(nwk_only, 10) == b"\x02"


class TestFrameErrors:
    @pytest.mark.parametrize("length", [0, 1, 4, 11])
    def test_short_frames(self, length: int) -> None:
        with pytest.raises(FrameTooShortError):
            decode_phy_payload(LP_UPLINK[:length] if length >= 1 else b"")

    def test_fopts_len_beyond_frame(self) -> None:
        frame = bytearray(LP_ACK_DOWNLINK)
        frame[5] = 0x2F  # FOptsLen 15, only one octet follows the FHDR
        with pytest.raises(FrameTooShortError, match="FOptsLen 15"):
            decode_phy_payload(bytes(frame))

    @pytest.mark.parametrize("mhdr", [0xC0, 0xE0])
    def test_rfu_and_proprietary_mtypes(self, mhdr: int) -> None:
        with pytest.raises(UnknownMTypeError, match="MType"):
            decode_phy_payload(bytes([mhdr]) + LP_UPLINK[1:])

    def test_unknown_major(self) -> None:
        with pytest.raises(UnknownMTypeError, match="Major 1"):
            decode_phy_payload(bytes([0x41]) + LP_UPLINK[1:])

    def test_errors_are_value_errors(self) -> None:
        with pytest.raises(ValueError):
            decode_phy_payload(b"\x40\x00")

    def test_join_request_of_wrong_length(self) -> None:
        with pytest.raises(LoRaWANError, match="23 octets"):
            decode_phy_payload(LP_JOIN_REQUEST + b"\x00")
        with pytest.raises(FrameTooShortError):
            decode_phy_payload(LP_JOIN_REQUEST[:-1])

    def test_fopts_over_15_octets(self) -> None:
        with pytest.raises(LoRaWANError, match="15"):
            build_data_frame(MType.UNCONFIRMED_DATA_UP, dev_addr=1, fcnt=0, keys=LP_KEYS, fopts=bytes(16))

    def test_fport_zero_with_fopts(self) -> None:
        with pytest.raises(LoRaWANError, match="FPort 0"):
            build_data_frame(MType.UNCONFIRMED_DATA_UP, dev_addr=1, fcnt=0, keys=LP_KEYS, fport=0,
                             payload=b"\x02", fopts=b"\x02")

    def test_payload_without_port(self) -> None:
        with pytest.raises(LoRaWANError, match="without FPort"):
            DataFrame(mtype=MType.UNCONFIRMED_DATA_UP, dev_addr=1, fcnt16=0, fctrl=UplinkFCtrl(), frm_payload=b"x")

    def test_fctrl_of_the_wrong_direction(self) -> None:
        with pytest.raises(LoRaWANError, match="DownlinkFCtrl"):
            DataFrame(mtype=MType.UNCONFIRMED_DATA_DOWN, dev_addr=1, fcnt16=0, fctrl=UplinkFCtrl())

    def test_out_of_range_fields(self) -> None:
        with pytest.raises(LoRaWANError, match="DevAddr"):
            build_data_frame(MType.UNCONFIRMED_DATA_UP, dev_addr=1 << 32, fcnt=0, keys=LP_KEYS)
        with pytest.raises(LoRaWANError, match="FCnt"):
            build_data_frame(MType.UNCONFIRMED_DATA_UP, dev_addr=1, fcnt=1 << 32, keys=LP_KEYS)


class TestJoinFrames:
    def test_lora_packet_join_request(self) -> None:
        request = decode_phy_payload(LP_JOIN_REQUEST)
        assert isinstance(request, JoinRequest)
        assert request.app_eui == 0xAA13693363343639
        assert request.dev_eui == 0x3331383274356905
        assert request.dev_nonce == 0x8904
        assert request.mic_is_valid(LP_APP_KEY)
        assert not request.mic_is_valid(ZERO_KEY)
        assert request.to_bytes() == LP_JOIN_REQUEST

    def test_join_request_builds_byte_for_byte(self) -> None:
        request = build_join_request(app_eui=0xAA13693363343639, dev_eui=0x3331383274356905, dev_nonce=0x8904,
                                     app_key=LP_APP_KEY)
        assert request.to_bytes() == LP_JOIN_REQUEST

    def test_lora_packet_clear_join_accept(self) -> None:
        accept = JoinAccept.from_bytes(LP_JOIN_ACCEPT_CLEAR)
        assert (accept.join_nonce, accept.net_id, accept.dev_addr) == (0x376338, 0xAABBCC, 0x012CCDE7)
        assert (accept.rx1_dr_offset, accept.rx2_data_rate, accept.rx_delay, accept.cf_list) == (0, 0, 0, None)
        assert accept.mic_is_valid(LP_APP_KEY)

    def test_join_accept_encryption_uses_aes_decrypt(self) -> None:
        wire = decode_phy_payload(ZERO_JOIN_ACCEPT_WIRE)
        assert isinstance(wire, EncryptedJoinAccept)
        clear = wire.decrypt(ZERO_KEY)
        assert clear.to_bytes() == ZERO_JOIN_ACCEPT_CLEAR
        assert clear.mic_is_valid(ZERO_KEY)
        assert clear.encrypt(ZERO_KEY).to_bytes() == ZERO_JOIN_ACCEPT_WIRE

    def test_build_join_accept_matches_vector(self) -> None:
        built = build_join_accept(join_nonce=0, net_id=0, dev_addr=0, app_key=ZERO_KEY)
        assert built.to_bytes() == ZERO_JOIN_ACCEPT_WIRE

    def test_join_accept_with_cf_list_and_settings_round_trips(self) -> None:
        cf_list = cf_list_from_frequencies((867_100_000, 867_300_000, 867_500_000, 867_700_000, 867_900_000))
        built = build_join_accept(join_nonce=0x123456, net_id=0x000013, dev_addr=0x26011B01, app_key=LP_APP_KEY,
                                  rx1_dr_offset=1, rx2_data_rate=3, rx_delay=5, cf_list=cf_list)
        assert len(built.to_bytes()) == 33
        clear = EncryptedJoinAccept.from_bytes(built.to_bytes()).decrypt(LP_APP_KEY)
        assert (clear.rx1_dr_offset, clear.rx2_data_rate, clear.rx_delay, clear.cf_list) == (1, 3, 5, cf_list)
        assert clear.to_bytes()[11:13] == bytes([0x13, 0x05])  # DLSettings, RxDelay
        assert clear.mic_is_valid(LP_APP_KEY)
        assert not clear.mic_is_valid(ZERO_KEY)

    def test_join_accept_of_wrong_length(self) -> None:
        with pytest.raises(LoRaWANError, match="17 or 33"):
            decode_phy_payload(ZERO_JOIN_ACCEPT_WIRE + bytes(3))


class TestFCntReconstruction:
    @pytest.mark.parametrize(("fcnt16", "last", "expected"), [
        (0x0000, 0, 0x0000),
        (0x0005, 0x0003, 0x0005),
        (0x0003, 0x0003, 0x0003),  # repeated frame keeps its counter
        (0x0002, 0xFFF0, 0x10002),  # wrap of the 16 transmitted bits
        (0x0005, 0x0001FFFF, 0x00020005),
        (0xFFFF, 0x00010000, 0x0001FFFF),
    ])
    def test_smallest_counter_not_below_last(self, fcnt16: int, last: int, expected: int) -> None:
        assert reconstruct_fcnt(fcnt16, last) == expected

    def test_overflow_of_32_bits(self) -> None:
        with pytest.raises(LoRaWANError, match="overflows"):
            reconstruct_fcnt(0x0000, 0xFFFFFFF0)

    def test_rebuilt_counter_verifies_multicast_vector(self) -> None:
        frame = DataFrame.from_bytes(MC_FRAME)
        assert frame.mic_is_valid(MC_KEYS.nwk_s_key, reconstruct_fcnt(frame.fcnt16, 0x0000FFF0))

    @given(last=st.integers(0, 0xFFFEFFFF), step=st.integers(0, 0xFFFF))
    def test_inverse_of_truncation(self, last: int, step: int) -> None:
        sent = last + step
        assert reconstruct_fcnt(sent & 0xFFFF, last) == sent


@given(
    mtype=st.sampled_from([t for t in MType if t.is_data]),
    dev_addr=st.integers(0, 0xFFFFFFFF),
    fcnt=st.integers(0, 0xFFFFFFFF),
    fport=st.integers(1, 255),
    payload=st.binary(max_size=64),
    fopts=st.binary(max_size=15),
)
def test_build_then_parse_round_trip(mtype: MType, dev_addr: int, fcnt: int, fport: int, payload: bytes,
                                     fopts: bytes) -> None:
    wire = build_data_frame(mtype, dev_addr=dev_addr, fcnt=fcnt, keys=LP_KEYS, fport=fport, payload=payload,
                            fopts=fopts).to_bytes()
    frame = decode_phy_payload(wire)
    assert isinstance(frame, DataFrame)
    assert (frame.mtype, frame.dev_addr, frame.fcnt16, frame.fopts, frame.fport) == (
        mtype, dev_addr, fcnt & 0xFFFF, fopts, fport)
    assert frame.mic_is_valid(LP_KEYS.nwk_s_key, fcnt)
    assert frame.decrypt_payload(LP_KEYS, fcnt) == payload

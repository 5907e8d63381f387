"""Interop with npm lora-packet (pinned in tests/interop/lora_packet/package.json).

Both directions: frames we build are parsed, MIC-verified and decrypted by
lora-packet, and frames lora-packet builds are parsed and verified by us. One
node process (tests/interop/lora_packet/oracle.js) answers JSON lines for the
whole module. Without `npm ci` in that folder the tests skip, unless CI=true.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from otaharness.protocols.lorawan import (
    DataFrame,
    DownlinkFCtrl,
    EncryptedJoinAccept,
    JoinRequest,
    MType,
    SessionKeys,
    UplinkFCtrl,
    build_data_frame,
    build_join_accept,
    build_join_request,
    decode_phy_payload,
    derive_session_keys,
    reconstruct_fcnt,
)
from otaharness.protocols.lorawan.region import cf_list_from_frequencies

pytestmark = pytest.mark.interop

ORACLE_DIR = Path(__file__).resolve().parents[1] / "interop" / "lora_packet"

KEYS = SessionKeys(nwk_s_key=bytes.fromhex("44024241ed4ce9a68c6a8bc055233fd3"),
                   app_s_key=bytes.fromhex("ec925802ae430ca77fd3dd73cb2cc588"))
APP_KEY = bytes.fromhex("98929b92c49edba9676d646d3b612456")

LORA_PACKET_MTYPE = {
    MType.UNCONFIRMED_DATA_UP: "Unconfirmed Data Up",
    MType.UNCONFIRMED_DATA_DOWN: "Unconfirmed Data Down",
    MType.CONFIRMED_DATA_UP: "Confirmed Data Up",
    MType.CONFIRMED_DATA_DOWN: "Confirmed Data Down",
}


class LoraPacketOracle:
    """A running `node oracle.js`: one JSON request line in, one answer line out."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        self._process = process

    def __call__(self, op: str, **request: Any) -> Any:
        assert self._process.stdin is not None and self._process.stdout is not None
        self._process.stdin.write(json.dumps({"op": op, **request}) + "\n")
        self._process.stdin.flush()
        line = self._process.stdout.readline()
        if not line:
            raise RuntimeError(f"lora-packet oracle exited with {self._process.poll()}")
        answer = json.loads(line)
        if not answer["ok"]:
            raise RuntimeError(f"lora-packet {op}: {answer['error']}")
        return answer["result"]


def _unavailable_reason() -> str | None:
    if shutil.which("node") is None:
        return "node is not installed"
    if not (ORACLE_DIR / "node_modules" / "lora-packet").is_dir():
        return f"lora-packet is not installed: run `npm ci` in {ORACLE_DIR}"
    return None


@pytest.fixture(scope="module")
def lora_packet() -> Iterator[LoraPacketOracle]:
    reason = _unavailable_reason()
    if reason is not None:
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    process = subprocess.Popen(["node", "oracle.js"], cwd=ORACLE_DIR, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                               text=True, bufsize=1)
    try:
        yield LoraPacketOracle(process)
    finally:
        assert process.stdin is not None
        process.stdin.close()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        assert process.stdout is not None
        process.stdout.close()


def fcnt_msb(fcnt: int) -> str:
    """lora-packet's FCntMSBytes: the upper 16 FCnt bits, little-endian (fact sheet §7.1)."""
    return (fcnt >> 16).to_bytes(2, "little").hex()


def key_args() -> dict[str, str]:
    return {"nwkSKey": KEYS.nwk_s_key.hex(), "appSKey": KEYS.app_s_key.hex()}


# --- We build, lora-packet parses, verifies and decrypts ---


def check_our_data_frame(lora_packet: LoraPacketOracle, frame: DataFrame, fcnt: int, plaintext: bytes) -> None:
    phy = frame.to_bytes().hex()
    parsed = lora_packet("parse", phy=phy)
    assert parsed["mtype"] == LORA_PACKET_MTYPE[frame.mtype]
    assert parsed["devAddr"] == f"{frame.dev_addr:08x}"
    assert parsed["fcnt"] == fcnt & 0xFFFF
    assert parsed["fopts"] == frame.fopts.hex()
    assert parsed["fport"] == frame.fport
    assert (parsed["adr"], parsed["ack"]) == (frame.fctrl.adr, frame.fctrl.ack)
    assert lora_packet("verify_mic", phy=phy, fcntMsb=fcnt_msb(fcnt), **key_args()) is True
    if frame.fport is not None:
        assert lora_packet("decrypt", phy=phy, fcntMsb=fcnt_msb(fcnt), **key_args()) == plaintext.hex()


def test_uplink_with_fopts_and_flags(lora_packet: LoraPacketOracle) -> None:
    fctrl = UplinkFCtrl(adr=True, adr_ack_req=True, ack=True)
    frame = build_data_frame(MType.CONFIRMED_DATA_UP, dev_addr=0x26011B01, fcnt=42, keys=KEYS, fport=10,
                             payload=b"sensor reading 21.5C", fctrl=fctrl, fopts=bytes.fromhex("0307020d"))
    check_our_data_frame(lora_packet, frame, 42, b"sensor reading 21.5C")
    assert lora_packet("parse", phy=frame.to_bytes().hex())["adrAckReq"] is True


def test_downlink_with_32_bit_fcnt(lora_packet: LoraPacketOracle) -> None:
    fcnt = 0x0003_0010  # above 65535: the MIC only verifies with the upper bits
    fctrl = DownlinkFCtrl(ack=True, f_pending=True)
    frame = build_data_frame(MType.CONFIRMED_DATA_DOWN, dev_addr=0x01020304, fcnt=fcnt, keys=KEYS, fport=201,
                             payload=bytes(range(48)), fctrl=fctrl)
    check_our_data_frame(lora_packet, frame, fcnt, bytes(range(48)))
    phy = frame.to_bytes().hex()
    assert lora_packet("parse", phy=phy)["fPending"] is True
    assert lora_packet("verify_mic", phy=phy, fcntMsb="0000", **key_args()) is False
    assert lora_packet("verify_mic", phy=phy, fcntMsb="0003", **key_args()) is False  # big-endian is wrong


def test_port_zero_mac_commands_use_nwk_s_key(lora_packet: LoraPacketOracle) -> None:
    frame = build_data_frame(MType.UNCONFIRMED_DATA_DOWN, dev_addr=0x01020304, fcnt=7, keys=KEYS, fport=0,
                             payload=bytes.fromhex("035107000106"))
    check_our_data_frame(lora_packet, frame, 7, bytes.fromhex("035107000106"))


def test_port_less_frame(lora_packet: LoraPacketOracle) -> None:
    frame = build_data_frame(MType.UNCONFIRMED_DATA_UP, dev_addr=0x01020304, fcnt=0x10001, keys=KEYS,
                             fopts=bytes.fromhex("02"))
    check_our_data_frame(lora_packet, frame, 0x10001, b"")


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    mtype=st.sampled_from(list(LORA_PACKET_MTYPE)),
    dev_addr=st.integers(0, 0xFFFFFFFF),
    fcnt=st.integers(0, 0xFFFFFFFF),
    fport=st.integers(1, 255),
    payload=st.binary(max_size=222),
)
def test_random_frames_we_build(lora_packet: LoraPacketOracle, mtype: MType, dev_addr: int, fcnt: int, fport: int,
                                payload: bytes) -> None:
    frame = build_data_frame(mtype, dev_addr=dev_addr, fcnt=fcnt, keys=KEYS, fport=fport, payload=payload)
    check_our_data_frame(lora_packet, frame, fcnt, payload)


def test_join_request_we_build(lora_packet: LoraPacketOracle) -> None:
    request = build_join_request(app_eui=0x70B3D57ED0000001, dev_eui=0x0004A30B001C0530, dev_nonce=0xBEEF,
                                 app_key=APP_KEY)
    phy = request.to_bytes().hex()
    parsed = lora_packet("parse", phy=phy)
    assert (parsed["mtype"], parsed["appEUI"], parsed["devEUI"], parsed["devNonce"]) == (
        "Join Request", "70b3d57ed0000001", "0004a30b001c0530", "beef")
    assert lora_packet("verify_mic", phy=phy, appKey=APP_KEY.hex()) is True


def test_join_accept_we_build(lora_packet: LoraPacketOracle) -> None:
    cf_list = cf_list_from_frequencies((867_100_000, 867_300_000, 867_500_000, 867_700_000, 867_900_000))
    accept = build_join_accept(join_nonce=0x00ABCD, net_id=0x000013, dev_addr=0x26011B01, app_key=APP_KEY,
                               rx1_dr_offset=1, rx2_data_rate=3, rx_delay=1, cf_list=cf_list)
    clear_phy = lora_packet("decrypt_join_accept", phy=accept.to_bytes().hex(), appKey=APP_KEY.hex())
    parsed = lora_packet("parse", phy=clear_phy)
    assert (parsed["appNonce"], parsed["netID"], parsed["devAddr"]) == ("00abcd", "000013", "26011b01")
    assert (parsed["rx1DrOffset"], parsed["rx2DataRate"], parsed["rxDelay"]) == (1, 3, 1)
    assert parsed["cfList"] == cf_list.hex()
    assert lora_packet("verify_mic", phy=clear_phy, appKey=APP_KEY.hex()) is True


@pytest.mark.parametrize(("join_nonce", "net_id", "dev_nonce"), [
    (0x000001, 0x000000, 0x0001), (0xABCDEF, 0x600013, 0xF18E), (0xFFFFFF, 0xFFFFFF, 0xFFFF)])
def test_session_keys_agree(lora_packet: LoraPacketOracle, join_nonce: int, net_id: int, dev_nonce: int) -> None:
    theirs = lora_packet("session_keys", appKey=APP_KEY.hex(), appNonce=f"{join_nonce:06x}", netID=f"{net_id:06x}",
                         devNonce=f"{dev_nonce:04x}")
    ours = derive_session_keys(APP_KEY, join_nonce=join_nonce, net_id=net_id, dev_nonce=dev_nonce)
    assert (ours.nwk_s_key.hex(), ours.app_s_key.hex()) == (theirs["nwkSKey"], theirs["appSKey"])


# --- lora-packet builds, we parse, verify and decrypt ---


def their_data_frame(lora_packet: LoraPacketOracle, mtype: MType, *, dev_addr: int, fcnt: int, fport: int | None,
                     payload: bytes, fopts: bytes = b"", fctrl: dict[str, bool] | None = None) -> DataFrame:
    phy = lora_packet("build_data", mtype=LORA_PACKET_MTYPE[mtype], devAddr=f"{dev_addr:08x}", fcnt=fcnt & 0xFFFF,
                      fcntMsb=fcnt_msb(fcnt), fport=fport, payload=payload.hex(), fopts=fopts.hex(),
                      fctrl=fctrl or {}, **key_args())
    frame = decode_phy_payload(bytes.fromhex(phy))
    assert isinstance(frame, DataFrame)
    return frame


def test_their_uplink_above_65535(lora_packet: LoraPacketOracle) -> None:
    fcnt = 70_000  # 0x00011170
    frame = their_data_frame(lora_packet, MType.UNCONFIRMED_DATA_UP, dev_addr=0x26011B01, fcnt=fcnt, fport=5,
                             payload=b"hello from lora-packet", fctrl={"ADR": True})
    assert (frame.dev_addr, frame.fcnt16, frame.fport) == (0x26011B01, fcnt & 0xFFFF, 5)
    assert frame.fctrl == UplinkFCtrl(adr=True)
    rebuilt = reconstruct_fcnt(frame.fcnt16, last_fcnt=65_530)
    assert rebuilt == fcnt
    assert frame.mic_is_valid(KEYS.nwk_s_key, rebuilt)
    assert not frame.mic_is_valid(KEYS.nwk_s_key, fcnt & 0xFFFF)
    assert frame.decrypt_payload(KEYS, rebuilt) == b"hello from lora-packet"


def test_their_downlink_with_fopts(lora_packet: LoraPacketOracle) -> None:
    frame = their_data_frame(lora_packet, MType.CONFIRMED_DATA_DOWN, dev_addr=0x01020304, fcnt=3, fport=201,
                             payload=bytes(range(30)), fopts=bytes.fromhex("0603"), fctrl={"ACK": True})
    assert frame.fctrl == DownlinkFCtrl(ack=True)
    assert frame.fopts == bytes.fromhex("0603")
    assert frame.mic_is_valid(KEYS.nwk_s_key, 3)
    assert frame.decrypt_payload(KEYS, 3) == bytes(range(30))


def test_their_port_zero_frame(lora_packet: LoraPacketOracle) -> None:
    frame = their_data_frame(lora_packet, MType.UNCONFIRMED_DATA_UP, dev_addr=0xA1B2C3D4, fcnt=10, fport=0,
                             payload=b"\x02")
    assert frame.fport == 0
    assert frame.mic_is_valid(KEYS.nwk_s_key, 10)
    assert frame.decrypt_payload(KEYS, 10) == b"\x02"


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    mtype=st.sampled_from(list(LORA_PACKET_MTYPE)),
    dev_addr=st.integers(0, 0xFFFFFFFF),
    fcnt=st.integers(1, 0xFFFFFFFF),  # lora-packet treats FCnt 0 as "not given"; it is 0 either way
    fport=st.integers(1, 255),
    payload=st.binary(min_size=1, max_size=222),
)
def test_random_frames_they_build(lora_packet: LoraPacketOracle, mtype: MType, dev_addr: int, fcnt: int, fport: int,
                                  payload: bytes) -> None:
    frame = their_data_frame(lora_packet, mtype, dev_addr=dev_addr, fcnt=fcnt, fport=fport, payload=payload)
    assert (frame.mtype, frame.dev_addr, frame.fcnt16, frame.fport) == (mtype, dev_addr, fcnt & 0xFFFF, fport)
    assert frame.mic_is_valid(KEYS.nwk_s_key, fcnt)
    assert frame.decrypt_payload(KEYS, fcnt) == payload


def test_their_join_request(lora_packet: LoraPacketOracle) -> None:
    phy = lora_packet("build_join_request", appEUI="70b3d57ed0000001", devEUI="0004a30b001c0530", devNonce="1234",
                      appKey=APP_KEY.hex())
    request = decode_phy_payload(bytes.fromhex(phy))
    assert isinstance(request, JoinRequest)
    assert (request.app_eui, request.dev_eui, request.dev_nonce) == (0x70B3D57ED0000001, 0x0004A30B001C0530, 0x1234)
    assert request.mic_is_valid(APP_KEY)


def test_their_join_accept(lora_packet: LoraPacketOracle) -> None:
    cf_list = cf_list_from_frequencies((867_100_000, 867_300_000))
    phy = lora_packet("build_join_accept", appNonce="123456", netID="000013", devAddr="26011b01", dlSettings=0x25,
                      rxDelay=2, cfList=cf_list.hex(), appKey=APP_KEY.hex())
    encrypted = decode_phy_payload(bytes.fromhex(phy))
    assert isinstance(encrypted, EncryptedJoinAccept)
    accept = encrypted.decrypt(APP_KEY)
    assert (accept.join_nonce, accept.net_id, accept.dev_addr) == (0x123456, 0x000013, 0x26011B01)
    assert (accept.rx1_dr_offset, accept.rx2_data_rate, accept.rx_delay, accept.cf_list) == (2, 5, 2, cf_list)
    assert accept.mic_is_valid(APP_KEY)

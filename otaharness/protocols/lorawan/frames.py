"""LoRaWAN 1.0.x PHYPayload codec (LoRaWAN 1.0.3 §4, §6.2.5, §6.2.6).

``PHYPayload = MHDR(1) | MACPayload | MIC(4)``; a join-accept's MACPayload and
MIC travel encrypted. Dataclasses hold the fields as they are on the wire
(FRMPayload still encrypted, FCnt as its 16 transmitted bits); the crypto
methods take the full 32-bit FCnt, which the receiver rebuilds with
:func:`reconstruct_fcnt`.

A wrong MIC is reported by the ``mic_is_valid`` methods returning False;
malformed frames raise :class:`~.errors.LoRaWANError` subclasses.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass, replace
from enum import IntEnum
from typing import ClassVar

from ._wire import check_uint, need, to_le
from .crypto import MIC_SIZE, aes128_decrypt, aes128_encrypt, data_mic, frm_payload_cipher, join_mic
from .errors import FrameTooShortError, LoRaWANError, UnknownMTypeError
from .keys import SessionKeys

MAX_FOPTS_LENGTH = 15  # FOptsLen is 4 bits (§4.3.1)
LORAWAN_R1 = 0  # MHDR Major (§4.2.2)
FCNT_MODULUS = 1 << 32


class MType(IntEnum):
    """MHDR bits 7:5 (§4.2.1). 0b110 (RFU) and 0b111 (Proprietary) are not handled."""

    JOIN_REQUEST = 0b000
    JOIN_ACCEPT = 0b001
    UNCONFIRMED_DATA_UP = 0b010
    UNCONFIRMED_DATA_DOWN = 0b011
    CONFIRMED_DATA_UP = 0b100
    CONFIRMED_DATA_DOWN = 0b101

    @property
    def is_data(self) -> bool:
        return self not in _JOIN_MTYPES

    @property
    def is_uplink(self) -> bool:
        return self in _UPLINK_MTYPES

    @property
    def mhdr(self) -> int:
        return self << 5 | LORAWAN_R1


# looked up for every frame decoded (a fleet decodes each multicast frame once per device)
_JOIN_MTYPES = frozenset((MType.JOIN_REQUEST, MType.JOIN_ACCEPT))
_UPLINK_MTYPES = frozenset((MType.JOIN_REQUEST, MType.UNCONFIRMED_DATA_UP, MType.CONFIRMED_DATA_UP))


def decode_mhdr(octet: int) -> MType:
    """MHDR → MType; RFU/Proprietary MTypes and Major ≠ LoRaWAN R1 raise UnknownMTypeError."""
    known = _MTYPE_OF_MHDR.get(octet)
    if known is not None:
        return known
    mtype_bits, major = octet >> 5, octet & 0b11
    if major != LORAWAN_R1:
        raise UnknownMTypeError(f"MHDR 0x{octet:02x}: Major {major} is not LoRaWAN R1")
    try:
        return MType(mtype_bits)
    except ValueError:
        kind = "Proprietary" if mtype_bits == 0b111 else "RFU"
        raise UnknownMTypeError(f"MHDR 0x{octet:02x}: MType 0b{mtype_bits:03b} ({kind}) is not supported") from None


# every MHDR octet that decodes (RFU bits 4:2 are ignored), looked up once per frame received
_MTYPE_OF_MHDR = {mtype << 5 | rfu << 2 | LORAWAN_R1: mtype for mtype in MType for rfu in range(8)}


def reconstruct_fcnt(fcnt16: int, last_fcnt: int) -> int:
    """Rebuild a 32-bit FCnt from its 16 transmitted bits (§4.3.1.5).

    Returns the smallest counter ≥ ``last_fcnt`` whose low 16 bits are ``fcnt16``
    (equal to ``last_fcnt`` for a repeated frame). Use 0 before the first frame.
    Gap limits (MAX_FCNT_GAP) and replay rules are the caller's policy.
    """
    if not (type(fcnt16) is int and 0 <= fcnt16 <= 0xFFFF and type(last_fcnt) is int  # the usual case, once
            and 0 <= last_fcnt < FCNT_MODULUS):  # per frame received; else the checks that explain
        check_uint("FCnt (16 bits)", fcnt16, 16)
        check_uint("last FCnt", last_fcnt, 32)
    candidate = (last_fcnt & ~0xFFFF) | fcnt16
    if candidate < last_fcnt:
        candidate += 1 << 16
    if candidate >= FCNT_MODULUS:
        raise LoRaWANError(f"FCnt 0x{fcnt16:04x} after 0x{last_fcnt:08x} overflows 32 bits")
    return candidate


@dataclass(frozen=True)
class UplinkFCtrl:
    """Uplink FCtrl (§4.3.1): bit 7 ADR, 6 ADRACKReq, 5 ACK, 4 ClassB (1.0.2+), 3:0 FOptsLen."""

    adr: bool = False
    adr_ack_req: bool = False
    ack: bool = False
    class_b: bool = False

    def to_octet(self, fopts_len: int) -> int:
        return self.adr << 7 | self.adr_ack_req << 6 | self.ack << 5 | self.class_b << 4 | fopts_len

    @classmethod
    def from_octet(cls, octet: int) -> UplinkFCtrl:
        return cls(adr=bool(octet & 0x80), adr_ack_req=bool(octet & 0x40), ack=bool(octet & 0x20),
                   class_b=bool(octet & 0x10))


@dataclass(frozen=True)
class DownlinkFCtrl:
    """Downlink FCtrl (§4.3.1): bit 7 ADR, 6 RFU, 5 ACK, 4 FPending, 3:0 FOptsLen."""

    adr: bool = False
    ack: bool = False
    f_pending: bool = False

    def to_octet(self, fopts_len: int) -> int:
        return self.adr << 7 | self.ack << 5 | self.f_pending << 4 | fopts_len

    @classmethod
    def from_octet(cls, octet: int) -> DownlinkFCtrl:
        return cls(adr=bool(octet & 0x80), ack=bool(octet & 0x20), f_pending=bool(octet & 0x10))


def _fctrl_type(mtype: MType) -> type[UplinkFCtrl] | type[DownlinkFCtrl]:
    return UplinkFCtrl if mtype.is_uplink else DownlinkFCtrl


# FCtrl values are immutable: one instance per octet and direction, shared by decoded frames
_FCTRL_OF_OCTET = {uplink: tuple((UplinkFCtrl if uplink else DownlinkFCtrl).from_octet(octet) for octet in range(256))
                   for uplink in (True, False)}
_CONFIRMED_MTYPES = frozenset((MType.CONFIRMED_DATA_UP, MType.CONFIRMED_DATA_DOWN))


def _check_mic(mic: bytes) -> None:
    if not isinstance(mic, (bytes, bytearray)) or len(mic) != MIC_SIZE:
        raise LoRaWANError(f"MIC must be {MIC_SIZE} octets, got {mic!r}")


@dataclass(frozen=True)
class DataFrame:
    """Data message (§4.3): MHDR | FHDR | FPort | FRMPayload | MIC, as on the wire.

    FHDR = DevAddr(4, LE) | FCtrl(1) | FCnt(2, LE, 16 LSBs) | FOpts(0..15).
    ``frm_payload`` is the encrypted FRMPayload; ``fport`` is None when absent.
    """

    FHDR_MIN_LENGTH: ClassVar[int] = 7
    MIN_LENGTH: ClassVar[int] = 1 + FHDR_MIN_LENGTH + MIC_SIZE

    mtype: MType
    dev_addr: int
    fcnt16: int
    fctrl: UplinkFCtrl | DownlinkFCtrl
    fopts: bytes = b""
    fport: int | None = None
    frm_payload: bytes = b""
    mic: bytes = bytes(MIC_SIZE)

    def __post_init__(self) -> None:
        if not isinstance(self.mtype, MType) or not self.mtype.is_data:
            raise LoRaWANError(f"{self.mtype!r} is not a data message MType")
        expected_fctrl = _fctrl_type(self.mtype)
        if not isinstance(self.fctrl, expected_fctrl):
            raise LoRaWANError(f"{self.mtype.name} needs {expected_fctrl.__name__}, got {self.fctrl!r}")
        check_uint("DevAddr", self.dev_addr, 32)
        check_uint("FCnt (16 bits)", self.fcnt16, 16)
        if len(self.fopts) > MAX_FOPTS_LENGTH:
            raise LoRaWANError(f"FOpts holds at most {MAX_FOPTS_LENGTH} octets, got {len(self.fopts)}")
        if self.fport is None:
            if self.frm_payload:
                raise LoRaWANError("FRMPayload present without FPort")
        else:
            check_uint("FPort", self.fport, 8)
            if self.fport == 0 and self.fopts:
                # §4.3.1.6, §5: MAC commands go either in FOpts or in an FPort 0 payload, never both.
                raise LoRaWANError("FPort 0 (MAC commands in FRMPayload) with non-empty FOpts")
        _check_mic(self.mic)

    @property
    def uplink(self) -> bool:
        return self.mtype in _UPLINK_MTYPES

    @property
    def confirmed(self) -> bool:
        return self.mtype in _CONFIRMED_MTYPES

    def signed_part(self) -> bytes:
        """MHDR | FHDR | FPort | FRMPayload: the ``msg`` the MIC covers (§4.4)."""
        fhdr = (to_le("DevAddr", self.dev_addr, 4) + bytes([self.fctrl.to_octet(len(self.fopts))])
                + to_le("FCnt", self.fcnt16, 2) + self.fopts)
        port = b"" if self.fport is None else bytes([self.fport])
        return bytes([self.mtype.mhdr]) + fhdr + port + self.frm_payload

    def to_bytes(self) -> bytes:
        return self.signed_part() + self.mic

    @classmethod
    def from_bytes(cls, data: bytes) -> DataFrame:
        data = bytes(data)
        need("data message", data, cls.MIN_LENGTH)
        mtype = decode_mhdr(data[0])
        if mtype in _JOIN_MTYPES:
            raise LoRaWANError(f"{mtype.name} is not a data message")
        return cls._decoded(data, mtype)

    @classmethod
    def _decoded(cls, data: bytes, mtype: MType) -> DataFrame:
        """The frame in ``data`` (bytes of at least MIN_LENGTH octets) whose MHDR is ``mtype``."""
        # Offsets in `data`: the MACPayload starts at 1 and ends where the MIC starts.
        mic_start = len(data) - MIC_SIZE
        fctrl_octet = data[5]
        fopts_end = 1 + cls.FHDR_MIN_LENGTH + (fctrl_octet & 0x0F)
        if mic_start < fopts_end:
            raise FrameTooShortError(f"FOptsLen {fctrl_octet & 0x0F} needs a MACPayload of {fopts_end - 1} octets, "
                                     f"got {mic_start - 1}")
        fport = data[fopts_end] if mic_start > fopts_end else None
        fopts = data[1 + cls.FHDR_MIN_LENGTH:fopts_end]
        if fport == 0 and fopts:
            raise LoRaWANError("FPort 0 (MAC commands in FRMPayload) with non-empty FOpts")
        # Every other __post_init__ check holds by construction (field widths on the wire), and a
        # frame is decoded per device per reception: fill the frozen instance without re-checking.
        frame = object.__new__(cls)
        frame.__dict__.update(
            mtype=mtype,
            dev_addr=int.from_bytes(data[1:5], "little"),
            fcnt16=data[6] | data[7] << 8,
            fctrl=_FCTRL_OF_OCTET[mtype in _UPLINK_MTYPES][fctrl_octet],
            fopts=fopts,
            fport=fport,
            frm_payload=data[fopts_end + 1:mic_start],
            mic=data[mic_start:],
        )
        return frame

    def _full_fcnt(self, fcnt: int) -> int:
        check_uint("FCnt", fcnt, 32)
        if fcnt & 0xFFFF != self.fcnt16:
            raise LoRaWANError(f"FCnt 0x{fcnt:08x} does not end in the transmitted 0x{self.fcnt16:04x}")
        return fcnt

    def compute_mic(self, nwk_s_key: bytes, fcnt: int) -> bytes:
        return data_mic(nwk_s_key, self.signed_part(), dev_addr=self.dev_addr,
                        fcnt=self._full_fcnt(fcnt), uplink=self.uplink)

    def mic_is_valid(self, nwk_s_key: bytes, fcnt: int) -> bool:
        """True if the MIC matches NwkSKey and the full 32-bit ``fcnt``."""
        return hmac.compare_digest(self.compute_mic(nwk_s_key, fcnt), self.mic)

    def decrypt_payload(self, keys: SessionKeys, fcnt: int) -> bytes:
        """Plain FRMPayload: NwkSKey for FPort 0, AppSKey otherwise (§4.3.3)."""
        return frm_payload_cipher(_payload_key(keys, self.fport), self.frm_payload, dev_addr=self.dev_addr,
                                  fcnt=self._full_fcnt(fcnt), uplink=self.uplink)


def _payload_key(keys: SessionKeys, fport: int | None) -> bytes:
    return keys.nwk_s_key if fport == 0 else keys.app_s_key


def build_data_frame(
    mtype: MType,
    *,
    dev_addr: int,
    fcnt: int,
    keys: SessionKeys,
    fport: int | None = None,
    payload: bytes = b"",
    fctrl: UplinkFCtrl | DownlinkFCtrl | None = None,
    fopts: bytes = b"",
) -> DataFrame:
    """A data frame ready for the air: ``payload`` encrypted, MIC over the 32-bit ``fcnt``.

    ``fctrl`` None: all flags clear for the frame's direction.
    """
    check_uint("FCnt", fcnt, 32)
    if fctrl is None:
        fctrl = _fctrl_type(mtype)()
    plain = DataFrame(mtype=mtype, dev_addr=dev_addr, fcnt16=fcnt & 0xFFFF, fctrl=fctrl, fopts=bytes(fopts),
                      fport=fport, frm_payload=bytes(payload))
    # The cipher is an XOR keystream, so "decrypting" the plain payload encrypts it. The encrypted
    # payload has the plain one's length and the MIC four octets, so the fields checked above hold:
    # the signed frame is filled in place before anyone sees it (every uplink and downlink).
    frame = object.__new__(DataFrame)
    frame.__dict__.update(plain.__dict__, frm_payload=plain.decrypt_payload(keys, fcnt))
    frame.__dict__["mic"] = frame.compute_mic(keys.nwk_s_key, fcnt)
    return frame


@dataclass(frozen=True)
class JoinRequest:
    """Join-request (§6.2.5): MHDR | AppEUI(8, LE) | DevEUI(8, LE) | DevNonce(2, LE) | MIC."""

    LENGTH: ClassVar[int] = 1 + 8 + 8 + 2 + MIC_SIZE

    app_eui: int
    dev_eui: int
    dev_nonce: int
    mic: bytes = bytes(MIC_SIZE)

    def __post_init__(self) -> None:
        check_uint("AppEUI", self.app_eui, 64)
        check_uint("DevEUI", self.dev_eui, 64)
        check_uint("DevNonce", self.dev_nonce, 16)
        _check_mic(self.mic)

    def signed_part(self) -> bytes:
        return (bytes([MType.JOIN_REQUEST.mhdr]) + to_le("AppEUI", self.app_eui, 8)
                + to_le("DevEUI", self.dev_eui, 8) + to_le("DevNonce", self.dev_nonce, 2))

    def to_bytes(self) -> bytes:
        return self.signed_part() + self.mic

    @classmethod
    def from_bytes(cls, data: bytes) -> JoinRequest:
        data = bytes(data)
        _check_join_frame(data, MType.JOIN_REQUEST, (cls.LENGTH,))
        return cls(app_eui=int.from_bytes(data[1:9], "little"), dev_eui=int.from_bytes(data[9:17], "little"),
                   dev_nonce=int.from_bytes(data[17:19], "little"), mic=data[19:])

    def mic_is_valid(self, app_key: bytes) -> bool:
        return hmac.compare_digest(join_mic(app_key, self.signed_part()), self.mic)


def build_join_request(*, app_eui: int, dev_eui: int, dev_nonce: int, app_key: bytes) -> JoinRequest:
    unsigned = JoinRequest(app_eui=app_eui, dev_eui=dev_eui, dev_nonce=dev_nonce)
    return replace(unsigned, mic=join_mic(app_key, unsigned.signed_part()))


def _check_join_frame(data: bytes, mtype: MType, lengths: tuple[int, ...]) -> None:
    """Join frames have fixed lengths (§6.2.5, §6.2.6) and their own MType."""
    what = mtype.name.lower().replace("_", "-")
    need(what, data, min(lengths))
    if len(data) not in lengths:
        allowed = " or ".join(str(n) for n in lengths)
        raise LoRaWANError(f"{what} must be {allowed} octets, got {len(data)}")
    if decode_mhdr(data[0]) is not mtype:
        raise LoRaWANError(f"MHDR 0x{data[0]:02x} is not a {what}")


CF_LIST_LENGTH = 16


@dataclass(frozen=True)
class JoinAccept:
    """Join-accept in clear (§6.2.6).

    MHDR | AppNonce(3, LE) | NetID(3, LE) | DevAddr(4, LE) | DLSettings(1) | RxDelay(1) | CFList(16, optional) | MIC.
    DLSettings: bit 7 RFU (OptNeg in 1.1, ignored here), 6:4 RX1DRoffset, 3:0 RX2DataRate.
    RxDelay: bits 3:0 Del, seconds before RX1 (0 means 1 s). CFList bytes are region
    specific (see :func:`.region.cf_list_from_frequencies`).
    """

    LENGTHS: ClassVar[tuple[int, int]] = (1 + 12 + MIC_SIZE, 1 + 12 + CF_LIST_LENGTH + MIC_SIZE)

    join_nonce: int
    net_id: int
    dev_addr: int
    rx1_dr_offset: int = 0
    rx2_data_rate: int = 0
    rx_delay: int = 0
    cf_list: bytes | None = None
    mic: bytes = bytes(MIC_SIZE)

    def __post_init__(self) -> None:
        check_uint("AppNonce", self.join_nonce, 24)
        check_uint("NetID", self.net_id, 24)
        check_uint("DevAddr", self.dev_addr, 32)
        check_uint("RX1DRoffset", self.rx1_dr_offset, 3)
        check_uint("RX2DataRate", self.rx2_data_rate, 4)
        check_uint("RxDelay", self.rx_delay, 4)
        if self.cf_list is not None and len(self.cf_list) != CF_LIST_LENGTH:
            raise LoRaWANError(f"CFList must be {CF_LIST_LENGTH} octets, got {len(self.cf_list)}")
        _check_mic(self.mic)

    def signed_part(self) -> bytes:
        return (bytes([MType.JOIN_ACCEPT.mhdr]) + to_le("AppNonce", self.join_nonce, 3)
                + to_le("NetID", self.net_id, 3) + to_le("DevAddr", self.dev_addr, 4)
                + bytes([self.rx1_dr_offset << 4 | self.rx2_data_rate, self.rx_delay]) + (self.cf_list or b""))

    def to_bytes(self) -> bytes:
        """The clear-text PHYPayload (what the device holds after decryption)."""
        return self.signed_part() + self.mic

    @classmethod
    def from_bytes(cls, data: bytes) -> JoinAccept:
        """Parse a clear-text join-accept PHYPayload."""
        data = bytes(data)
        _check_join_frame(data, MType.JOIN_ACCEPT, cls.LENGTHS)
        dl_settings = data[11]
        return cls(
            join_nonce=int.from_bytes(data[1:4], "little"),
            net_id=int.from_bytes(data[4:7], "little"),
            dev_addr=int.from_bytes(data[7:11], "little"),
            rx1_dr_offset=(dl_settings >> 4) & 0b111,
            rx2_data_rate=dl_settings & 0x0F,
            rx_delay=data[12] & 0x0F,
            cf_list=data[13:-MIC_SIZE] or None,
            mic=data[-MIC_SIZE:],
        )

    def mic_is_valid(self, app_key: bytes) -> bool:
        return hmac.compare_digest(join_mic(app_key, self.signed_part()), self.mic)

    def encrypt(self, app_key: bytes) -> EncryptedJoinAccept:
        """§6.2.6: the network encrypts with AES *decrypt* so the device only needs AES encrypt."""
        return EncryptedJoinAccept(aes128_decrypt(app_key, self.to_bytes()[1:]))


@dataclass(frozen=True)
class EncryptedJoinAccept:
    """Join-accept as transmitted: MHDR | aes128_decrypt(AppKey, MACPayload | MIC)."""

    ciphertext: bytes

    def __post_init__(self) -> None:
        if len(self.ciphertext) + 1 not in JoinAccept.LENGTHS:
            raise LoRaWANError(f"join-accept ciphertext must be 16 or 32 octets, got {len(self.ciphertext)}")

    def to_bytes(self) -> bytes:
        return bytes([MType.JOIN_ACCEPT.mhdr]) + self.ciphertext

    @classmethod
    def from_bytes(cls, data: bytes) -> EncryptedJoinAccept:
        data = bytes(data)
        _check_join_frame(data, MType.JOIN_ACCEPT, JoinAccept.LENGTHS)
        return cls(data[1:])

    def decrypt(self, app_key: bytes) -> JoinAccept:
        """Device side: AES encrypt recovers the clear join-accept (MIC not checked here)."""
        return JoinAccept.from_bytes(bytes([MType.JOIN_ACCEPT.mhdr]) + aes128_encrypt(app_key, self.ciphertext))


def build_join_accept(
    *,
    join_nonce: int,
    net_id: int,
    dev_addr: int,
    app_key: bytes,
    rx1_dr_offset: int = 0,
    rx2_data_rate: int = 0,
    rx_delay: int = 0,
    cf_list: bytes | None = None,
) -> EncryptedJoinAccept:
    """A join-accept ready for the air: MIC with AppKey, then encrypted with AppKey."""
    unsigned = JoinAccept(join_nonce=join_nonce, net_id=net_id, dev_addr=dev_addr, rx1_dr_offset=rx1_dr_offset,
                          rx2_data_rate=rx2_data_rate, rx_delay=rx_delay, cf_list=cf_list)
    return replace(unsigned, mic=join_mic(app_key, unsigned.signed_part())).encrypt(app_key)


PHYPayload = DataFrame | JoinRequest | EncryptedJoinAccept


def decode_phy_payload(data: bytes) -> PHYPayload:
    """Parse any supported PHYPayload by its MHDR. Join-accepts stay encrypted."""
    data = bytes(data)
    need("PHYPayload", data, 1 + MIC_SIZE)
    mtype = decode_mhdr(data[0])
    if mtype is MType.JOIN_REQUEST:
        return JoinRequest.from_bytes(data)
    if mtype is MType.JOIN_ACCEPT:
        return EncryptedJoinAccept.from_bytes(data)
    need("data message", data, DataFrame.MIN_LENGTH)
    return DataFrame._decoded(data, mtype)  # MHDR read once (a fleet decodes every frame it hears)

"""LNS data messages of the Basics Station protocol: radio frames up, transmissions down, time.

Sources (basicstation 2.0.6): ``s2e_parse_lora_frame`` in ``src/lora.c`` (what the station puts
in ``updf``/``jreq``/``propdf``), ``s2e_flushRxjobs`` and ``send_dntxed`` in ``src/s2e.c`` (the
radio tail and ``dntxed``), ``handle_dnmsg``/``handle_dnsched``/``handle_timesync`` in
``src/s2e.c`` (what it accepts), ``onTimesyncLns`` in ``src/timesync.c``; fact sheet §7.

Station → LNS:

* ``updf``: ``MHdr``, ``DevAddr`` (the LE devaddr as a **signed** int32), ``FCtrl``, ``FCnt`` (16
  bits), ``FOpts`` (hex), ``FPort`` (**-1 when absent**), ``FRMPayload`` (hex), ``MIC`` (the LE
  MIC as a **signed** int32); no ``pdu``. Then ``RefTime``, ``DR``, ``Freq`` and ``upinfo``
  ``{rctx, xtime, gpstime, fts, rssi, snr, rxtime}``.
* ``jreq`` (and ``rejoin``): ``MHdr``, ``JoinEui``, ``DevEui`` (``XX-XX-..``; ``JoinEUI``/``DevEUI``
  when ``router_config`` used that spelling), ``DevNonce``, ``MIC`` (signed), then the same tail.
* ``propdf``: ``FRMPayload`` = the whole frame in hex, then the tail.
* ``dntxed``: ``seqno`` and ``diid`` (same value), ``DR``, ``Freq``, ``DevEui``, ``rctx``,
  ``xtime``, ``txtime``, ``gpstime``; sent only for a ``dnmsg`` whose ``DevEui`` is not 0.
* ``timesync``: ``txtime`` (µs, station clock); only with PPS, never with a simulated radio.

LNS → station:

* ``dnmsg``: required ``DevEui``, ``dC`` (0 A, 1 B, 2 C), ``diid`` (or legacy ``seqno``), ``pdu``
  (≤ 255 octets), ``RxDelay`` (0..15, 0 means 1; missing → 1); ``RX1DR``+``RX1Freq`` and
  ``RX2DR``+``RX2Freq`` each both or neither and at least one frequency; optional ``xtime``,
  ``rctx``, ``priority``, ``MuxTime``, ``gpstime``. ``DR``/``Freq`` alias RX1 (a bare ``DR`` sets
  RxDelay 0). Class A goes out at xtime + RxDelay s (RX2 one second later); class C without RX1
  and xtime goes out on RX2 at once.
* ``dnsched``: ``schedule`` of ``{diid, priority, DR, Freq, ontime|gpstime|xtime, pdu, rctx}``;
  no ``dntxed`` comes back (no DevEui).
* ``timesync`` reply: ``txtime`` (echo), ``gpstime`` (µs since the GPS epoch), ``MuxTime``; or a
  push of ``xtime`` + ``gpstime``.

``MuxTime`` (float UTC seconds) may ride on any LNS message; the station answers with ``RefTime``.
Every class here is pure: times come in as arguments. Malformed input raises
:class:`BasicsStationCodecError`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from enum import IntEnum
from typing import Any, ClassVar

from .errors import BasicsStationCodecError
from .eui import decode_json_eui, format_eui, parse_eui
from .validation import json_object, require_field

MIC_SIZE = 4
MAX_PDU_SIZE = 255
MAX_RX_DELAY = 15
DATA_FRAME_MIN_LENGTH = 12  # OFF_df_minlen in src/lora.c: MHDR + FHDR(7) + MIC
JOIN_FRAME_LENGTH = 23  # OFF_jreq_len
_MHDR_FTYPE, _MHDR_RFU_MAJOR = 0xE0, 0x1C | 0x03
_FTYPE_JREQ, _FTYPE_JACC, _FTYPE_REJOIN, _FTYPE_PROP = 0x00, 0x20, 0xC0, 0xE0
_FTYPE_DATA_UP = (0x40, 0x80)
_INT_TYPES = (int,)
_NUMBER_TYPES = (int, float)


# --------------------------------------------------------------------------------------------
# Field helpers


def signed_int32(value: int) -> int:
    """An unsigned 32-bit value as the station prints it: ``(s4_t)`` of the LE field."""
    if not 0 <= value <= 0xFFFFFFFF:
        raise BasicsStationCodecError(f"{value!r} is not an unsigned 32-bit value")
    return value - (1 << 32) if value & 0x80000000 else value


def unsigned_int32(document: dict[str, Any], key: str) -> int:
    """``document[key]`` as the unsigned 32-bit value behind the station's signed int32."""
    value = require_field(document, key, _INT_TYPES)
    if not -(1 << 31) <= value <= 0xFFFFFFFF:
        raise BasicsStationCodecError(f"field {key!r} must be a 32-bit integer, got {value}")
    return value & 0xFFFFFFFF


def _int_in(document: dict[str, Any], key: str, low: int, high: int) -> int:
    value = require_field(document, key, _INT_TYPES)
    if not low <= value <= high:
        raise BasicsStationCodecError(f"field {key!r} must be in {low}..{high}, got {value}")
    return value


def _hex(document: dict[str, Any], key: str, max_size: int | None = None) -> bytes:
    text = require_field(document, key, (str,))
    try:
        data = bytes.fromhex(text)
    except ValueError as error:
        raise BasicsStationCodecError(f"field {key!r} is not a hex string: {text!r}") from error
    if max_size is not None and len(data) > max_size:
        raise BasicsStationCodecError(f"field {key!r} holds {len(data)} octets, at most {max_size}")
    return data


def _optional(document: dict[str, Any], key: str, types: tuple[type, ...]) -> Any:
    return require_field(document, key, types) if key in document else None


def _mic_bytes(mic: bytes) -> bytes:
    if not isinstance(mic, (bytes, bytearray)) or len(mic) != MIC_SIZE:
        raise BasicsStationCodecError(f"MIC must be {MIC_SIZE} octets, got {mic!r}")
    return bytes(mic)


def _check_msgtype(document: dict[str, Any], *expected: str) -> str:
    msgtype = document.get("msgtype")
    if msgtype not in expected:
        raise BasicsStationCodecError(f"expected msgtype {' or '.join(expected)}, got {msgtype!r}")
    return msgtype


# --------------------------------------------------------------------------------------------
# The radio tail of every uplink message


@dataclass(frozen=True)
class UplinkInfo:
    """``upinfo``: ``rctx`` (receiving antenna/radio), ``xtime`` (µs, the concentrator's clock;
    the LNS echoes it in a class A ``dnmsg``), ``gpstime`` (µs, 0 without PPS), ``fts`` (fine
    timestamp, -1 when none), ``rssi`` (dBm, negative), ``snr`` (dB), ``rxtime`` (UTC seconds)."""

    rctx: int
    xtime: int
    gpstime: int = 0
    fts: int = -1
    rssi: float = 0.0
    snr: float = 0.0
    rxtime: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {"rctx": self.rctx, "xtime": self.xtime, "gpstime": self.gpstime, "fts": self.fts,
                "rssi": self.rssi, "snr": self.snr, "rxtime": self.rxtime}

    @classmethod
    def from_dict(cls, document: Any) -> UplinkInfo:
        if not isinstance(document, dict):
            raise BasicsStationCodecError(f"field 'upinfo' must be an object, got {json.dumps(document)}")
        return cls(
            rctx=require_field(document, "rctx", _INT_TYPES),
            xtime=require_field(document, "xtime", _INT_TYPES),
            gpstime=_optional(document, "gpstime", _INT_TYPES) or 0,
            fts=-1 if "fts" not in document else require_field(document, "fts", _INT_TYPES),
            rssi=float(require_field(document, "rssi", _NUMBER_TYPES)),
            snr=float(require_field(document, "snr", _NUMBER_TYPES)),
            rxtime=float(_optional(document, "rxtime", _NUMBER_TYPES) or 0.0),
        )


@dataclass(frozen=True)
class RadioInfo:
    """``RefTime`` (MuxTime + time since, 0.0 before any MuxTime), ``DR``, ``Freq`` (Hz), ``upinfo``."""

    dr: int
    freq: int
    upinfo: UplinkInfo
    ref_time: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {"RefTime": self.ref_time, "DR": self.dr, "Freq": self.freq, "upinfo": self.upinfo.to_dict()}

    @classmethod
    def from_dict(cls, document: dict[str, Any]) -> RadioInfo:
        return cls(
            dr=_int_in(document, "DR", 0, 15),
            freq=_int_in(document, "Freq", 0, 0xFFFFFFFF),
            upinfo=UplinkInfo.from_dict(require_field(document, "upinfo", (dict,))),
            ref_time=float(_optional(document, "RefTime", _NUMBER_TYPES) or 0.0),
        )


def _check_frame_header(frame: bytes) -> int:
    """The frame type, after the station's own sanity checks (``s2e_parse_lora_frame``)."""
    if not frame:
        raise BasicsStationCodecError("not a LoRaWAN frame: empty")
    ftype = frame[0] & _MHDR_FTYPE
    if (len(frame) < DATA_FRAME_MIN_LENGTH and ftype != _FTYPE_PROP) or frame[0] & _MHDR_RFU_MAJOR:
        raise BasicsStationCodecError(f"not a LoRaWAN frame: {frame.hex()}")
    return ftype


# --------------------------------------------------------------------------------------------
# Station → LNS


@dataclass(frozen=True)
class UplinkDataFrame:
    """``updf``: a data uplink split into fields. ``dev_addr`` is unsigned here, signed on the
    wire; ``fport`` None is ``-1`` on the wire; ``mic`` is the 4 octets in frame order."""

    MSGTYPE: ClassVar[str] = "updf"

    mhdr: int
    dev_addr: int
    fctrl: int
    fcnt: int
    fopts: bytes
    fport: int | None
    frm_payload: bytes
    mic: bytes
    radio: RadioInfo

    def __post_init__(self) -> None:
        _mic_bytes(self.mic)
        if len(self.fopts) != self.fctrl & 0x0F:
            raise BasicsStationCodecError(f"FOpts of {len(self.fopts)} octets but FCtrl FOptsLen {self.fctrl & 0x0F}")
        if self.fport is None and self.frm_payload:
            raise BasicsStationCodecError("FRMPayload without FPort")

    def phy_payload(self) -> bytes:
        """The frame as it was on the air."""
        port = b"" if self.fport is None else bytes([self.fport])
        return (bytes([self.mhdr]) + self.dev_addr.to_bytes(4, "little") + bytes([self.fctrl])
                + self.fcnt.to_bytes(2, "little") + self.fopts + port + self.frm_payload + self.mic)

    @classmethod
    def from_phy_payload(cls, frame: bytes, radio: RadioInfo) -> UplinkDataFrame:
        """Split a data uplink the way the station does (it checks lengths, never the MIC)."""
        frame = bytes(frame)
        ftype = _check_frame_header(frame)
        if ftype not in _FTYPE_DATA_UP:
            raise BasicsStationCodecError(f"MHDR 0x{frame[0]:02x} is not a data uplink")
        port_offset = 8 + (frame[5] & 0x0F)
        if port_offset > len(frame) - MIC_SIZE:
            raise BasicsStationCodecError(f"FOptsLen {frame[5] & 0x0F} does not fit a {len(frame)}-octet frame")
        has_port = port_offset < len(frame) - MIC_SIZE
        return cls(mhdr=frame[0], dev_addr=int.from_bytes(frame[1:5], "little"), fctrl=frame[5],
                   fcnt=int.from_bytes(frame[6:8], "little"), fopts=frame[8:port_offset],
                   fport=frame[port_offset] if has_port else None,
                   frm_payload=frame[port_offset + 1:-MIC_SIZE] if has_port else b"",
                   mic=frame[-MIC_SIZE:], radio=radio)

    def to_dict(self) -> dict[str, Any]:
        return {
            "msgtype": self.MSGTYPE, "MHdr": self.mhdr, "DevAddr": signed_int32(self.dev_addr), "FCtrl": self.fctrl,
            "FCnt": self.fcnt, "FOpts": self.fopts.hex(), "FPort": -1 if self.fport is None else self.fport,
            "FRMPayload": self.frm_payload.hex(), "MIC": signed_int32(int.from_bytes(self.mic, "little")),
            **self.radio.to_dict(),
        }

    @classmethod
    def from_dict(cls, document: dict[str, Any]) -> UplinkDataFrame:
        _check_msgtype(document, cls.MSGTYPE)
        fport = _int_in(document, "FPort", -1, 255)
        return cls(
            mhdr=_int_in(document, "MHdr", 0, 255),
            dev_addr=unsigned_int32(document, "DevAddr"),
            fctrl=_int_in(document, "FCtrl", 0, 255),
            fcnt=_int_in(document, "FCnt", 0, 0xFFFF),
            fopts=_hex(document, "FOpts", 15),
            fport=None if fport == -1 else fport,
            frm_payload=_hex(document, "FRMPayload"),
            mic=unsigned_int32(document, "MIC").to_bytes(MIC_SIZE, "little"),
            radio=RadioInfo.from_dict(document),
        )


EUI_KEYS = {"JoinEui": ("JoinEui", "DevEui"), "JoinEUI": ("JoinEUI", "DevEUI")}


@dataclass(frozen=True)
class JoinRequestMessage:
    """``jreq`` (or ``rejoin``): the join-request fields; ``join_eui_key`` is the spelling the
    station uses (``JoinEUI`` switches ``DevEui`` to ``DevEUI`` as well)."""

    MSGTYPES: ClassVar[tuple[str, str]] = ("jreq", "rejoin")

    mhdr: int
    join_eui: int
    dev_eui: int
    dev_nonce: int
    mic: bytes
    radio: RadioInfo
    msgtype: str = "jreq"
    join_eui_key: str = "JoinEui"

    def __post_init__(self) -> None:
        _mic_bytes(self.mic)
        if self.msgtype not in self.MSGTYPES:
            raise BasicsStationCodecError(f"join message type must be jreq or rejoin, got {self.msgtype!r}")
        if self.join_eui_key not in EUI_KEYS:
            raise BasicsStationCodecError(f"join EUI key must be JoinEui or JoinEUI, got {self.join_eui_key!r}")

    def phy_payload(self) -> bytes:
        return (bytes([self.mhdr]) + self.join_eui.to_bytes(8, "little") + self.dev_eui.to_bytes(8, "little")
                + self.dev_nonce.to_bytes(2, "little") + self.mic)

    @classmethod
    def from_phy_payload(cls, frame: bytes, radio: RadioInfo, join_eui_key: str = "JoinEui") -> JoinRequestMessage:
        frame = bytes(frame)
        ftype = _check_frame_header(frame)
        if ftype not in (_FTYPE_JREQ, _FTYPE_REJOIN):
            raise BasicsStationCodecError(f"MHDR 0x{frame[0]:02x} is not a join-request")
        if len(frame) != JOIN_FRAME_LENGTH:
            raise BasicsStationCodecError(f"a join-request has {JOIN_FRAME_LENGTH} octets, got {len(frame)}")
        return cls(mhdr=frame[0], join_eui=int.from_bytes(frame[1:9], "little"),
                   dev_eui=int.from_bytes(frame[9:17], "little"), dev_nonce=int.from_bytes(frame[17:19], "little"),
                   mic=frame[19:], radio=radio, msgtype="jreq" if ftype == _FTYPE_JREQ else "rejoin",
                   join_eui_key=join_eui_key)

    def to_dict(self) -> dict[str, Any]:
        join_key, dev_key = EUI_KEYS[self.join_eui_key]
        return {"msgtype": self.msgtype, "MHdr": self.mhdr, join_key: format_eui(self.join_eui),
                dev_key: format_eui(self.dev_eui), "DevNonce": self.dev_nonce,
                "MIC": signed_int32(int.from_bytes(self.mic, "little")), **self.radio.to_dict()}

    @classmethod
    def from_dict(cls, document: dict[str, Any]) -> JoinRequestMessage:
        msgtype = _check_msgtype(document, *cls.MSGTYPES)
        join_eui_key = "JoinEUI" if "JoinEUI" in document else "JoinEui"
        join_key, dev_key = EUI_KEYS[join_eui_key]
        return cls(
            mhdr=_int_in(document, "MHdr", 0, 255),
            join_eui=parse_eui(require_field(document, join_key, (str,))),
            dev_eui=parse_eui(require_field(document, dev_key, (str,))),
            dev_nonce=_int_in(document, "DevNonce", 0, 0xFFFF),
            mic=unsigned_int32(document, "MIC").to_bytes(MIC_SIZE, "little"),
            radio=RadioInfo.from_dict(document), msgtype=msgtype, join_eui_key=join_eui_key,
        )


@dataclass(frozen=True)
class ProprietaryFrame:
    """``propdf``: a proprietary frame, whole, in ``FRMPayload``."""

    MSGTYPE: ClassVar[str] = "propdf"

    frame: bytes
    radio: RadioInfo

    def phy_payload(self) -> bytes:
        return self.frame

    def to_dict(self) -> dict[str, Any]:
        return {"msgtype": self.MSGTYPE, "FRMPayload": self.frame.hex(), **self.radio.to_dict()}

    @classmethod
    def from_dict(cls, document: dict[str, Any]) -> ProprietaryFrame:
        _check_msgtype(document, cls.MSGTYPE)
        return cls(frame=_hex(document, "FRMPayload"), radio=RadioInfo.from_dict(document))


@dataclass(frozen=True)
class DownlinkTransmitted:
    """``dntxed``: the station sent the ``dnmsg`` with this ``diid``. ``rctx`` is the antenna
    used, ``txtime`` the station's clock in seconds, ``xtime``/``gpstime`` in µs."""

    MSGTYPE: ClassVar[str] = "dntxed"

    diid: int
    dr: int
    freq: int
    dev_eui: int
    rctx: int = 0
    xtime: int = 0
    txtime: float = 0.0
    gpstime: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {"msgtype": self.MSGTYPE, "seqno": self.diid, "diid": self.diid, "DR": self.dr, "Freq": self.freq,
                "DevEui": format_eui(self.dev_eui), "rctx": self.rctx, "xtime": self.xtime, "txtime": self.txtime,
                "gpstime": self.gpstime}

    @classmethod
    def from_dict(cls, document: dict[str, Any]) -> DownlinkTransmitted:
        _check_msgtype(document, cls.MSGTYPE)
        id_key = "diid" if "diid" in document else "seqno"
        dev_key = "DevEUI" if "DevEUI" in document else "DevEui"
        return cls(
            diid=require_field(document, id_key, _INT_TYPES),
            dr=_int_in(document, "DR", 0, 15),
            freq=_int_in(document, "Freq", 0, 0xFFFFFFFF),
            dev_eui=parse_eui(require_field(document, dev_key, (str,))),
            rctx=_optional(document, "rctx", _INT_TYPES) or 0,
            xtime=_optional(document, "xtime", _INT_TYPES) or 0,
            txtime=float(_optional(document, "txtime", _NUMBER_TYPES) or 0.0),
            gpstime=_optional(document, "gpstime", _INT_TYPES) or 0,
        )


@dataclass(frozen=True)
class TimesyncRequest:
    """``timesync`` from the station: ``txtime`` in µs of its monotonic clock."""

    MSGTYPE: ClassVar[str] = "timesync"

    txtime: int

    def to_dict(self) -> dict[str, Any]:
        return {"msgtype": self.MSGTYPE, "txtime": self.txtime}

    @classmethod
    def from_dict(cls, document: dict[str, Any]) -> TimesyncRequest:
        _check_msgtype(document, cls.MSGTYPE)
        return cls(txtime=require_field(document, "txtime", _INT_TYPES))


# --------------------------------------------------------------------------------------------
# LNS → station


class DeviceClass(IntEnum):
    """``dC`` of a ``dnmsg``."""

    A = 0
    B = 1
    C = 2


@dataclass(frozen=True)
class DownlinkMessage:
    """``dnmsg``. ``dev_eui`` 0 is accepted by the station but then no ``dntxed`` comes back."""

    MSGTYPE: ClassVar[str] = "dnmsg"

    dev_eui: int
    device_class: DeviceClass
    diid: int
    pdu: bytes
    rx_delay: int = 1
    rx1_dr: int | None = None
    rx1_freq: int | None = None
    rx2_dr: int | None = None
    rx2_freq: int | None = None
    xtime: int | None = None
    rctx: int | None = None
    priority: int | None = None
    mux_time: float | None = None
    gpstime: int | None = None

    def __post_init__(self) -> None:
        if len(self.pdu) > MAX_PDU_SIZE:
            raise BasicsStationCodecError(f"dnmsg pdu of {len(self.pdu)} octets, at most {MAX_PDU_SIZE}")
        if not 0 <= self.rx_delay <= MAX_RX_DELAY:
            raise BasicsStationCodecError(f"RxDelay must be 0..{MAX_RX_DELAY}, got {self.rx_delay}")
        for window, dr, freq in (("RX1", self.rx1_dr, self.rx1_freq), ("RX2", self.rx2_dr, self.rx2_freq)):
            if (dr is None) != (freq is None):
                raise BasicsStationCodecError(f"dnmsg needs both {window}DR and {window}Freq or neither")
        if self.rx1_freq is None and self.rx2_freq is None:
            raise BasicsStationCodecError("dnmsg with neither RX1 nor RX2 frequency: the station ignores it")
        if self.priority is not None and not 0 <= self.priority <= 255:
            raise BasicsStationCodecError(f"priority must be 0..255, got {self.priority}")

    @property
    def expects_dntxed(self) -> bool:
        return self.dev_eui != 0

    def to_dict(self) -> dict[str, Any]:
        document: dict[str, Any] = {"msgtype": self.MSGTYPE, "DevEui": format_eui(self.dev_eui),
                                    "dC": int(self.device_class), "diid": self.diid, "pdu": self.pdu.hex(),
                                    "RxDelay": self.rx_delay}
        optional = (("RX1DR", self.rx1_dr), ("RX1Freq", self.rx1_freq), ("RX2DR", self.rx2_dr),
                    ("RX2Freq", self.rx2_freq), ("xtime", self.xtime), ("rctx", self.rctx),
                    ("priority", self.priority), ("MuxTime", self.mux_time), ("gpstime", self.gpstime))
        document.update((key, value) for key, value in optional if value is not None)
        return document

    @classmethod
    def from_dict(cls, document: dict[str, Any]) -> DownlinkMessage:
        """As ``handle_dnmsg`` reads it, including the ``DR``/``Freq``/``seqno``/``DevEUI`` aliases."""
        _check_msgtype(document, cls.MSGTYPE)
        dev_key = "DevEUI" if "DevEUI" in document else "DevEui"
        id_key = "diid" if "diid" in document else "seqno"
        rx_delay = _int_in(document, "RxDelay", 0, MAX_RX_DELAY) if "RxDelay" in document else 1
        rx1_dr = _optional(document, "RX1DR", _INT_TYPES)
        if "DR" in document:
            rx1_dr, rx_delay = require_field(document, "DR", _INT_TYPES), 0
        rx1_freq = _optional(document, "RX1Freq", _INT_TYPES)
        if "Freq" in document:
            rx1_freq = require_field(document, "Freq", _INT_TYPES)
        mux_time = _optional(document, "MuxTime", _NUMBER_TYPES)
        return cls(
            dev_eui=decode_json_eui(require_field(document, dev_key, (int, str))),
            device_class=DeviceClass(_int_in(document, "dC", 0, 2)),
            diid=require_field(document, id_key, _INT_TYPES),
            pdu=_hex(document, "pdu", MAX_PDU_SIZE),
            rx_delay=rx_delay,
            rx1_dr=rx1_dr, rx1_freq=rx1_freq,
            rx2_dr=_optional(document, "RX2DR", _INT_TYPES), rx2_freq=_optional(document, "RX2Freq", _INT_TYPES),
            xtime=_optional(document, "xtime", _INT_TYPES), rctx=_optional(document, "rctx", _INT_TYPES),
            priority=_optional(document, "priority", _INT_TYPES),
            mux_time=None if mux_time is None else float(mux_time),
            gpstime=_optional(document, "gpstime", _INT_TYPES),
        )


SCHEDULE_TIME_KEYS = ("ontime", "gpstime", "xtime")


@dataclass(frozen=True)
class ScheduledFrame:
    """One entry of a ``dnsched`` schedule; exactly one of ``ontime`` (GPS s), ``gpstime`` (GPS
    µs), ``xtime`` says when."""

    diid: int
    dr: int
    freq: int
    pdu: bytes
    ontime: int | None = None
    gpstime: int | None = None
    xtime: int | None = None
    priority: int | None = None
    rctx: int | None = None

    def __post_init__(self) -> None:
        times = [key for key in SCHEDULE_TIME_KEYS if getattr(self, key) is not None]
        if len(times) != 1:
            raise BasicsStationCodecError(f"a dnsched entry needs exactly one of {SCHEDULE_TIME_KEYS}, got {times}")
        if len(self.pdu) > MAX_PDU_SIZE:
            raise BasicsStationCodecError(f"dnsched pdu of {len(self.pdu)} octets, at most {MAX_PDU_SIZE}")

    def to_dict(self) -> dict[str, Any]:
        document: dict[str, Any] = {"diid": self.diid, "DR": self.dr, "Freq": self.freq, "pdu": self.pdu.hex()}
        optional = (("ontime", self.ontime), ("gpstime", self.gpstime), ("xtime", self.xtime),
                    ("priority", self.priority), ("rctx", self.rctx))
        document.update((key, value) for key, value in optional if value is not None)
        return document

    @classmethod
    def from_dict(cls, document: Any) -> ScheduledFrame:
        if not isinstance(document, dict):
            raise BasicsStationCodecError("a dnsched schedule entry must be an object")
        return cls(diid=require_field(document, "diid", _INT_TYPES), dr=_int_in(document, "DR", 0, 15),
                   freq=_int_in(document, "Freq", 0, 0xFFFFFFFF), pdu=_hex(document, "pdu", MAX_PDU_SIZE),
                   ontime=_optional(document, "ontime", _INT_TYPES), gpstime=_optional(document, "gpstime", _INT_TYPES),
                   xtime=_optional(document, "xtime", _INT_TYPES), priority=_optional(document, "priority", _INT_TYPES),
                   rctx=_optional(document, "rctx", _INT_TYPES))


@dataclass(frozen=True)
class DownlinkSchedule:
    """``dnsched``: frames at absolute times; the station sends no ``dntxed`` for them."""

    MSGTYPE: ClassVar[str] = "dnsched"

    schedule: tuple[ScheduledFrame, ...]
    mux_time: float | None = None

    def to_dict(self) -> dict[str, Any]:
        document: dict[str, Any] = {"msgtype": self.MSGTYPE, "schedule": [entry.to_dict() for entry in self.schedule]}
        if self.mux_time is not None:
            document["MuxTime"] = self.mux_time
        return document

    @classmethod
    def from_dict(cls, document: dict[str, Any]) -> DownlinkSchedule:
        _check_msgtype(document, cls.MSGTYPE)
        mux_time = _optional(document, "MuxTime", _NUMBER_TYPES)
        entries = require_field(document, "schedule", (list,))
        return cls(schedule=tuple(ScheduledFrame.from_dict(entry) for entry in entries),
                   mux_time=None if mux_time is None else float(mux_time))


@dataclass(frozen=True)
class TimesyncReply:
    """``timesync`` from the LNS: the echo of a request's ``txtime`` with ``gpstime`` (µs since
    the GPS epoch), or a push of ``xtime`` + ``gpstime``; ``MuxTime`` optional."""

    MSGTYPE: ClassVar[str] = "timesync"

    gpstime: int
    txtime: int | None = None
    xtime: int | None = None
    mux_time: float | None = None

    def to_dict(self) -> dict[str, Any]:
        document: dict[str, Any] = {"msgtype": self.MSGTYPE}
        optional = (("txtime", self.txtime), ("xtime", self.xtime), ("gpstime", self.gpstime),
                    ("MuxTime", self.mux_time))
        document.update((key, value) for key, value in optional if value is not None)
        return document

    @classmethod
    def from_dict(cls, document: dict[str, Any]) -> TimesyncReply:
        _check_msgtype(document, cls.MSGTYPE)
        mux_time = _optional(document, "MuxTime", _NUMBER_TYPES)
        return cls(gpstime=require_field(document, "gpstime", _INT_TYPES),
                   txtime=_optional(document, "txtime", _INT_TYPES), xtime=_optional(document, "xtime", _INT_TYPES),
                   mux_time=None if mux_time is None else float(mux_time))


# --------------------------------------------------------------------------------------------
# Dispatch

UplinkMessage = UplinkDataFrame | JoinRequestMessage | ProprietaryFrame
StationDataMessage = UplinkMessage | DownlinkTransmitted | TimesyncRequest

_STATION_MESSAGES: dict[str, Any] = {
    "updf": UplinkDataFrame, "jreq": JoinRequestMessage, "rejoin": JoinRequestMessage,
    "propdf": ProprietaryFrame, "dntxed": DownlinkTransmitted, "timesync": TimesyncRequest,
}


def decode_station_message(message: str | bytes | dict[str, Any]) -> StationDataMessage:
    """A data message from the station (``updf``, ``jreq``/``rejoin``, ``propdf``, ``dntxed``,
    ``timesync``) as JSON text or an already parsed object."""
    document = message if isinstance(message, dict) else json_object(message, "station message")
    msgtype = document.get("msgtype")
    kind = _STATION_MESSAGES.get(msgtype) if isinstance(msgtype, str) else None
    if kind is None:
        raise BasicsStationCodecError(f"not a station data message: msgtype {document.get('msgtype')!r}")
    return kind.from_dict(document)


def uplink_from_phy_payload(frame: bytes, radio: RadioInfo, join_eui_key: str = "JoinEui") -> UplinkMessage:
    """The message the station builds for a received frame (``s2e_parse_lora_frame``).

    Downlink frame types (which the station reports as ``dndf``/``jacc`` only in device mode)
    are refused here.
    """
    frame = bytes(frame)
    ftype = _check_frame_header(frame)
    if ftype == _FTYPE_PROP:
        return ProprietaryFrame(frame, radio)
    if ftype in (_FTYPE_JREQ, _FTYPE_REJOIN):
        return JoinRequestMessage.from_phy_payload(frame, radio, join_eui_key)
    if ftype in _FTYPE_DATA_UP:
        return UplinkDataFrame.from_phy_payload(frame, radio)
    raise BasicsStationCodecError(f"MHDR 0x{frame[0]:02x} is a downlink frame type")


__all__ = [
    "DeviceClass", "DownlinkMessage", "DownlinkSchedule", "DownlinkTransmitted", "JoinRequestMessage",
    "ProprietaryFrame", "RadioInfo", "ScheduledFrame", "TimesyncReply", "TimesyncRequest", "UplinkDataFrame",
    "UplinkInfo", "UplinkMessage", "decode_station_message", "signed_int32", "uplink_from_phy_payload",
]

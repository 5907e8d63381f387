"""LNS messages the CUPS upgrade flow needs: discovery, ``version``, ``router_config``.

Sources (basicstation 2.0.6): ``tc_info_request`` and ``tc_muxs_connection`` in ``src/tc.c``,
``handle_router_config`` in ``src/s2e.c``.

* Discovery: websocket to ``/router-info`` on the host:port of ``tc.uri``; the station sends
  ``{"router":"<ID6>"}`` and expects one object with ``router``, ``muxs``, ``uri`` (all strings),
  or ``error``. ``uri`` must be ``ws``/``wss`` with a port *and* a path, shorter than 128
  characters; a missing ``uri`` or any ``error`` is a rejection (the station then asks CUPS).
* ``version``: the station's first message on the muxs connection.
* ``router_config``: must contain ``hwspec`` and one of the radio-conf keys, or the station closes
  the connection.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from .errors import BasicsStationCodecError
from .eui import format_id6, router_eui
from .station_json import encode_station_json
from .validation import json_object, require_field

ROUTER_INFO_PATH = "/router-info"
MUXS_PROTOCOL_VERSION = 2
MAX_MUXS_URI_LENGTH = 127  # tc_info_request: len + 1 must not exceed MAX_URI_LEN (128)
MAX_HWSPEC_LENGTH = 31  # MAX_HWSPEC_SIZE 32 with the NUL
RADIO_CONF_KEYS = ("sx1301_conf", "SX1301_conf", "sx1302_conf", "SX1302_conf", "radio_conf")
DR_COUNT = 16
MAX_UPCHANNEL_DR = 7  # upchannel DRs must lie in 0..7


def check_muxs_uri(uri: str) -> str:
    """Raise unless the station would accept ``uri`` as the muxs URI of a discovery reply."""
    scheme, _, rest = uri.partition("://")
    if scheme.lower() not in ("ws", "wss") or not rest:
        raise BasicsStationCodecError(f"muxs URI must be ws://.. or wss://..: {uri!r}")
    if len(uri) > MAX_MUXS_URI_LENGTH:
        raise BasicsStationCodecError(f"muxs URI too long ({len(uri)} > {MAX_MUXS_URI_LENGTH}): {uri!r}")
    try:
        parts = urlsplit(uri)
        hostname = parts.hostname
    except ValueError as error:  # e.g. "ws://[::1:80/x": an unclosed IPv6 bracket
        raise BasicsStationCodecError(f"muxs URI is malformed ({error}): {uri!r}") from error
    try:
        port = parts.port
    except ValueError as error:
        raise BasicsStationCodecError(f"muxs URI has a bad port: {uri!r}") from error
    if not hostname or port is None or not parts.path:
        raise BasicsStationCodecError(f"muxs URI needs a host, a port and a path: {uri!r}")
    return uri


# --------------------------------------------------------------------------------------------
# Discovery


@dataclass(frozen=True)
class RouterInfoRequest:
    """``{"router":"<ID6>"}`` on ``/router-info``."""

    router: int

    def to_json(self) -> str:
        return encode_station_json({"router": format_id6(self.router)})

    @classmethod
    def decode(cls, text: bytes | str) -> RouterInfoRequest:
        """Server side: ``router`` may be ID6, an EUI string, or a number."""
        document = json_object(text, "router-info request")
        return cls(router_eui(require_field(document, "router", (str, int))))


@dataclass(frozen=True)
class RouterInfoResponse:
    """The discovery reply. ``router`` and ``muxs`` are free text for the station (only logged);
    by convention ID6. Exactly one of ``uri`` (accepted) and ``error`` (rejected) is normally set.
    """

    router: str
    muxs: str | None = None
    uri: str | None = None
    error: str | None = None

    @classmethod
    def accept(cls, router: int, muxs: int, uri: str) -> RouterInfoResponse:
        return cls(router=format_id6(router), muxs=format_id6(muxs), uri=check_muxs_uri(uri))

    @classmethod
    def reject(cls, router: int, error: str) -> RouterInfoResponse:
        return cls(router=format_id6(router), error=error)

    @property
    def accepted(self) -> bool:
        """As the station judges it: a ``uri`` and no ``error``."""
        return self.uri is not None and self.error is None

    def to_json(self) -> str:
        if self.uri is not None:
            check_muxs_uri(self.uri)
        fields = {"router": self.router, "muxs": self.muxs, "uri": self.uri, "error": self.error}
        # The station fails on a null in any of these (uj_str wants a string), so omit them.
        return json.dumps({key: value for key, value in fields.items() if value is not None}, separators=(",", ":"))

    @classmethod
    def decode(cls, text: bytes | str) -> RouterInfoResponse:
        """Station side: known fields must be strings, unknown fields are ignored, a present
        ``uri`` must pass ``check_muxs_uri``."""
        document = json_object(text, "router-info response")
        values = {key: require_field(document, key, (str,)) for key in ("router", "muxs", "uri", "error") if key in document}
        if "uri" in values:
            check_muxs_uri(values["uri"])
        return cls(router=values.get("router", ""), muxs=values.get("muxs"), uri=values.get("uri"), error=values.get("error"))


# --------------------------------------------------------------------------------------------
# version


@dataclass(frozen=True)
class VersionMessage:
    """``version``. ``station`` is ``CFG_version`` only (no build date, unlike the CUPS request);
    ``firmware`` and ``package`` both carry ``version.txt`` (null when missing); ``features`` is
    space-separated (e.g. ``"rmtsh"``, ``"gps"``, ``"prod"``)."""

    station: str
    firmware: str | None
    package: str | None
    model: str
    features: str
    protocol: int = MUXS_PROTOCOL_VERSION

    def to_json(self) -> str:
        return encode_station_json({
            "msgtype": "version",
            "station": self.station,
            "firmware": self.firmware,
            "package": self.package,
            "model": self.model,
            "protocol": self.protocol,
            "features": self.features,
        })

    @classmethod
    def decode(cls, text: bytes | str) -> VersionMessage:
        return cls.from_dict(json_object(text, "version message"))

    @classmethod
    def from_dict(cls, document: dict[str, Any]) -> VersionMessage:
        """An already parsed ``version`` message (the LNS reads each frame once)."""
        if document.get("msgtype") != "version":
            raise BasicsStationCodecError(f"expected msgtype 'version', got {document.get('msgtype')!r}")
        return cls(
            station=require_field(document, "station", (str,)),
            firmware=require_field(document, "firmware", (str, type(None))),
            package=require_field(document, "package", (str, type(None))),
            model=require_field(document, "model", (str,)),
            features=require_field(document, "features", (str,)),
            protocol=require_field(document, "protocol", (int,)),
        )

    @property
    def feature_set(self) -> frozenset[str]:
        return frozenset(self.features.split())


# --------------------------------------------------------------------------------------------
# router_config


def _int_triples(value: Any, key: str) -> tuple[tuple[int, int, int], ...]:
    if not isinstance(value, list):
        raise BasicsStationCodecError(f"router_config {key!r} must be an array of [a, b, c] arrays")
    triples = []
    for index, entry in enumerate(value):
        if (not isinstance(entry, list) or len(entry) != 3
                or any(isinstance(item, bool) or not isinstance(item, int) for item in entry)):
            raise BasicsStationCodecError(f"router_config {key}[{index}] must be three integers, got {entry!r}")
        triples.append((entry[0], entry[1], entry[2]))
    return tuple(triples)


@dataclass(frozen=True)
class RouterConfig:
    """``router_config``: the channel plan and radio setup the LNS pushes after ``version``.

    ``drs`` are ``(sf, bw_khz, dnonly)`` per DR (sf < 0 undefined, sf 0 FSK); ``upchannels`` are
    ``(freq_hz, min_dr, max_dr)``; ``radio_conf`` is passed through opaque under
    ``radio_conf_key``. ``mux_time`` (UTC seconds) is set by the caller, never read from a clock.
    """

    region: str
    hwspec: str
    freq_range: tuple[int, int]
    drs: tuple[tuple[int, int, int], ...]
    upchannels: tuple[tuple[int, int, int], ...]
    radio_conf: Any
    radio_conf_key: str = "sx1301_conf"
    max_eirp: float | None = None
    net_ids: tuple[int, ...] | None = None
    join_eui_ranges: tuple[tuple[int, int], ...] | None = None
    join_eui_key: str = "JoinEui"  # "JoinEUI" makes the station name jreq fields JoinEUI/DevEUI
    mux_time: float | None = None

    def __post_init__(self) -> None:
        if not self.hwspec or len(self.hwspec) > MAX_HWSPEC_LENGTH:
            raise BasicsStationCodecError(f"router_config 'hwspec' must be 1..{MAX_HWSPEC_LENGTH} characters")
        if self.join_eui_key not in ("JoinEui", "JoinEUI"):
            raise BasicsStationCodecError(f"join EUI key must be 'JoinEui' or 'JoinEUI', got {self.join_eui_key!r}")
        if self.radio_conf_key not in RADIO_CONF_KEYS:
            raise BasicsStationCodecError(f"radio conf key must be one of {RADIO_CONF_KEYS}, got {self.radio_conf_key!r}")
        if len(self.drs) > DR_COUNT:
            raise BasicsStationCodecError(f"router_config 'DRs' has {len(self.drs)} entries, at most {DR_COUNT}")
        for freq, min_dr, max_dr in self.upchannels:
            if not (0 <= min_dr <= MAX_UPCHANNEL_DR and 0 <= max_dr <= MAX_UPCHANNEL_DR):
                raise BasicsStationCodecError(
                    f"upchannel {freq} Hz: DRs must lie in 0..{MAX_UPCHANNEL_DR}, got {min_dr}..{max_dr}"
                )

    def to_dict(self) -> dict[str, Any]:
        document: dict[str, Any] = {
            "msgtype": "router_config",
            "region": self.region,
            "hwspec": self.hwspec,
            "freq_range": list(self.freq_range),
            "DRs": [list(dr) for dr in self.drs],
            "upchannels": [list(channel) for channel in self.upchannels],
            "NetID": None if self.net_ids is None else list(self.net_ids),
            self.join_eui_key: None if self.join_eui_ranges is None else [list(r) for r in self.join_eui_ranges],
            self.radio_conf_key: self.radio_conf,
        }
        if self.max_eirp is not None:
            document["max_eirp"] = self.max_eirp
        if self.mux_time is not None:
            document["MuxTime"] = self.mux_time
        return document

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), separators=(",", ":"))

    @classmethod
    def from_dict(cls, document: dict[str, Any]) -> RouterConfig:
        """Validate like ``handle_router_config``; unknown keys are ignored as by the station."""
        if document.get("msgtype", "router_config") != "router_config":
            raise BasicsStationCodecError(f"expected msgtype 'router_config', got {document.get('msgtype')!r}")
        if "hwspec" not in document:
            raise BasicsStationCodecError("router_config without 'hwspec': the station closes the connection")
        radio_keys = [key for key in RADIO_CONF_KEYS if key in document]
        if not radio_keys:
            raise BasicsStationCodecError(
                f"router_config without a radio conf ({', '.join(RADIO_CONF_KEYS)}): the station closes the connection"
            )
        freq_range = require_field(document, "freq_range", (list,))
        if len(freq_range) != 2 or any(isinstance(f, bool) or not isinstance(f, int) for f in freq_range):
            raise BasicsStationCodecError(f"router_config 'freq_range' must be [min_hz, max_hz], got {freq_range!r}")
        net_ids = document.get("NetID")
        join_key = "JoinEUI" if "JoinEUI" in document else "JoinEui"
        join_ranges = document.get(join_key)
        max_eirp = document.get("max_eirp")
        mux_time = document.get("MuxTime")
        for key, value in (("max_eirp", max_eirp), ("MuxTime", mux_time)):
            if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))):
                raise BasicsStationCodecError(f"router_config {key!r} must be a number, got {value!r}")
        return cls(
            region=require_field(document, "region", (str,)),
            hwspec=require_field(document, "hwspec", (str,)),
            freq_range=(freq_range[0], freq_range[1]),
            drs=_int_triples(require_field(document, "DRs", (list,)), "DRs"),
            upchannels=_int_triples(require_field(document, "upchannels", (list,)), "upchannels"),
            radio_conf=document[radio_keys[0]],
            radio_conf_key=radio_keys[0],
            max_eirp=None if max_eirp is None else float(max_eirp),
            net_ids=None if net_ids is None else tuple(_uint_list(net_ids, "NetID")),
            join_eui_ranges=None if join_ranges is None else _join_eui_ranges(join_ranges, join_key),
            join_eui_key=join_key,
            mux_time=None if mux_time is None else float(mux_time),
        )

    @classmethod
    def decode(cls, text: bytes | str) -> RouterConfig:
        return cls.from_dict(json_object(text, "router_config"))


def _uint_list(value: Any, key: str) -> list[int]:
    if not isinstance(value, list) or any(isinstance(v, bool) or not isinstance(v, int) or v < 0 for v in value):
        raise BasicsStationCodecError(f"router_config {key!r} must be null or an array of unsigned ints")
    return value


def _join_eui_ranges(value: Any, key: str) -> tuple[tuple[int, int], ...]:
    def is_range(entry: Any) -> bool:
        return (isinstance(entry, list) and len(entry) == 2
                and all(isinstance(v, int) and not isinstance(v, bool) for v in entry))

    if not isinstance(value, list) or not all(is_range(entry) for entry in value):
        raise BasicsStationCodecError(f"router_config {key!r} must be null or an array of [first, last] EUIs")
    return tuple((entry[0], entry[1]) for entry in value)

"""CUPS ``POST /update-info``: the station's JSON request and the binary reply (basicstation 2.0.6).

Request: ``cups_update_info()`` in ``src/cups.c``. Reply: the same function and ``sizelen()``;
segment layout as in the fact sheet §3.1 (all length prefixes little-endian):

==  ===========  =======================================================================
#   prefix       content (length 0 = "no change" / "absent")
==  ===========  =======================================================================
1   1 byte       cupsUri (ASCII)
2   1 byte       tcUri
3   2 bytes      cupsCred blob (see ``credentials``)
4   2 bytes      tcCred blob
5   4 bytes      signature: 4-byte key CRC (LE) + DER ECDSA signature; prefix = len(sig) + 4,
                 and must be 8..132 (the station keeps at most 128 signature bytes)
6   4 bytes      update (the file the station runs); a length >= 2**31 is a protocol error
==  ===========  =======================================================================

The reply to "nothing to do" is 14 zero bytes (``NO_UPDATE``).

HTTP framing rule for whoever serves this body: the response **must carry Content-Length and must
not be chunked**. The station's HTTP client (``src/net.c``) has no chunked decoding and treats a
body without Content-Length as empty, i.e. malformed; any status other than 200 counts as
"rejected". Both URI segments must also arrive in the first read (8 KB ``CUPS_BUFSZ``), which
any unchunked body written in one go satisfies.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

from .errors import BasicsStationCodecError
from .eui import format_id6, router_eui
from .station_json import encode_station_json
from .validation import check_crc32, crc_field, crc_list, json_object, require_field

UPDATE_INFO_PATH = "/update-info"
NO_UPDATE = bytes(14)
# Longest URI the station can use: sys_uri() drops a file whose length + 1 exceeds MAX_URI_LEN (128).
STATION_MAX_URI_LENGTH = 127
KEY_CRC_LENGTH = 4
MAX_SIGNATURE_LENGTH = 128  # cups_sig_t.signature[128]
MIN_SIGNATURE_LENGTH = 4  # the segment must be >= 8 bytes including the key CRC
SIGNATURE_SEGMENT_LENGTHS = range(MIN_SIGNATURE_LENGTH + KEY_CRC_LENGTH, MAX_SIGNATURE_LENGTH + KEY_CRC_LENGTH + 1)
MAX_UPDATE_LENGTH = (1 << 31) - 1  # the station reads the 4-byte length as signed


# --------------------------------------------------------------------------------------------
# Request


@dataclass(frozen=True)
class UpdateInfoRequest:
    """The body of ``POST /update-info``; fields in the order the station writes them.

    ``router`` is the station EUI as an int (sent as ID6). ``None`` for a URI or ``package`` is
    sent as JSON ``null`` (file missing). ``keys`` are the CRC32s of ``sig-0.key``,
    ``sig-1.key``, … (see ``signature.station_key_crcs``), ``[]`` when there is no ``sig-0.key``.
    ``station`` is ``"<version>(<platform>/<variant>) <build date>"``; ``model`` the platform.
    """

    router: int
    cups_uri: str | None
    tc_uri: str | None
    cups_cred_crc: int
    tc_cred_crc: int
    station: str
    model: str
    package: str | None
    keys: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        format_id6(self.router)  # validates the EUI range
        for name in ("cups_cred_crc", "tc_cred_crc"):
            check_crc32(getattr(self, name), name)
        for crc in self.keys:
            check_crc32(crc, "keys[]")
        object.__setattr__(self, "keys", tuple(self.keys))

    def to_json(self) -> str:
        """The body exactly as the station sends it (compact, fixed key order, no ``os`` key)."""
        return encode_station_json({
            "router": format_id6(self.router),
            "cupsUri": self.cups_uri,
            "tcUri": self.tc_uri,
            "cupsCredCrc": self.cups_cred_crc,
            "tcCredCrc": self.tc_cred_crc,
            "station": self.station,
            "model": self.model,
            "package": self.package,
            "keys": list(self.keys),
        })

    def encode(self) -> bytes:
        return self.to_json().encode("utf-8")

    @classmethod
    def decode(cls, body: bytes | str) -> UpdateInfoRequest:
        """Parse and validate a request body (server side). Unknown keys are ignored."""
        document = json_object(body, "CUPS request")
        return cls(
            router=router_eui(require_field(document, "router", (str, int))),
            cups_uri=require_field(document, "cupsUri", (str, type(None))),
            tc_uri=require_field(document, "tcUri", (str, type(None))),
            cups_cred_crc=crc_field(document, "cupsCredCrc"),
            tc_cred_crc=crc_field(document, "tcCredCrc"),
            station=require_field(document, "station", (str,)),
            model=require_field(document, "model", (str,)),
            package=require_field(document, "package", (str, type(None))),
            keys=tuple(crc_list(require_field(document, "keys", (list,)))),
        )


def encode_update_info_http_request(host_port: str, body: bytes, auth_token: str = "") -> bytes:
    """The whole HTTP request as the station writes it (``cups_update_info``, ``src/net.c``).

    ``Content-Length`` is a 5-character field right-aligned with spaces (the station writes
    ``00000`` and overwrites it: ``http_setContentLength``). ``auth_token`` is the normalised
    token header block (each line ending in CRLF), sent only over TLS.
    """
    if len(body) > 99999:
        raise BasicsStationCodecError(f"CUPS request body of {len(body)} bytes does not fit the 5-digit Content-Length")
    if auth_token and not auth_token.endswith("\r\n"):
        raise BasicsStationCodecError("auth token header lines must end with CRLF")
    head = (
        f"POST {UPDATE_INFO_PATH} HTTP/1.1\r\n"
        f"Host: {host_port}\r\n"
        "Content-Type: application/json\r\n"
        f"Content-Length: {len(body):>5}\r\n"
        f"{auth_token}\r\n"
    )
    return head.encode("ascii") + body


# --------------------------------------------------------------------------------------------
# Response


@dataclass(frozen=True)
class FirmwareSignature:
    """Segment 5: the CRC of the key that signed (informational for the station) + DER signature."""

    key_crc: int
    der: bytes

    def __post_init__(self) -> None:
        check_crc32(self.key_crc, "signature key CRC")
        if not MIN_SIGNATURE_LENGTH <= len(self.der) <= MAX_SIGNATURE_LENGTH:
            raise BasicsStationCodecError(
                f"signature must be {MIN_SIGNATURE_LENGTH}..{MAX_SIGNATURE_LENGTH} bytes, got {len(self.der)}"
            )

    def encode_segment(self) -> bytes:
        return struct.pack("<I", self.key_crc) + self.der


@dataclass(frozen=True)
class UpdateInfoResponse:
    """The binary reply. Empty/``None`` fields are sent as zero-length segments ("no change").

    URIs up to 255 bytes fit the segment, but the station drops a stored URI longer than
    ``STATION_MAX_URI_LENGTH`` the next time it reads it, so only a fault scenario sends one.
    """

    cups_uri: str | None = None
    tc_uri: str | None = None
    cups_credentials: bytes = b""
    tc_credentials: bytes = b""
    signature: FirmwareSignature | None = None
    update: bytes = b""

    def __post_init__(self) -> None:
        for name, limit in (("cups_credentials", 0xFFFF), ("tc_credentials", 0xFFFF), ("update", MAX_UPDATE_LENGTH)):
            if len(getattr(self, name)) > limit:
                raise BasicsStationCodecError(f"{name} is {len(getattr(self, name))} bytes, at most {limit} fit")

    @property
    def is_no_update(self) -> bool:
        return self.encode() == NO_UPDATE

    def encode(self) -> bytes:
        """The reply body. Serve it with an explicit Content-Length, never chunked (module doc)."""
        signature = self.signature.encode_segment() if self.signature else b""
        return b"".join((
            _uri_segment(self.cups_uri, "cups_uri"),
            _uri_segment(self.tc_uri, "tc_uri"),
            struct.pack("<H", len(self.cups_credentials)), self.cups_credentials,
            struct.pack("<H", len(self.tc_credentials)), self.tc_credentials,
            struct.pack("<I", len(signature)), signature,
            struct.pack("<I", len(self.update)), self.update,
        ))

    @classmethod
    def decode(cls, body: bytes) -> UpdateInfoResponse:
        """Parse a reply strictly: truncation, bad lengths and trailing bytes raise.

        (The station itself stops reading after the update segment; a trailing byte is still
        reported here because a correct CUPS server never sends one.)
        """
        reader = _SegmentReader(bytes(body))
        cups_uri = reader.uri("cupsUri")
        tc_uri = reader.uri("tcUri")
        cups_credentials = reader.segment("cupsCred", 2)
        tc_credentials = reader.segment("tcCred", 2)
        signature_segment = reader.segment("signature", 4, SIGNATURE_SEGMENT_LENGTHS)
        update = reader.segment("update", 4)
        reader.expect_end()
        signature = None
        if signature_segment:
            signature = FirmwareSignature(
                key_crc=int.from_bytes(signature_segment[:KEY_CRC_LENGTH], "little"),
                der=signature_segment[KEY_CRC_LENGTH:],
            )
        return cls(cups_uri, tc_uri, cups_credentials, tc_credentials, signature, update)


@dataclass
class _SegmentReader:
    data: bytes
    offset: int = field(default=0)

    def _take(self, count: int, what: str) -> bytes:
        remaining = len(self.data) - self.offset
        if count > remaining:
            raise BasicsStationCodecError(
                f"CUPS reply truncated in {what}: need {count} bytes at offset {self.offset}, {remaining} left"
            )
        chunk = self.data[self.offset:self.offset + count]
        self.offset += count
        return chunk

    def segment(self, name: str, prefix_size: int, allowed_lengths: range | None = None) -> bytes:
        # Lengths are checked as soon as the prefix is read, before the content, as cups.c does.
        length = int.from_bytes(self._take(prefix_size, f"{name} length"), "little")
        if prefix_size == 4 and length > MAX_UPDATE_LENGTH:
            raise BasicsStationCodecError(f"{name} segment length 0x{length:08x} not allowed (must be < 2 GB)")
        if length and allowed_lengths is not None and length not in allowed_lengths:
            raise BasicsStationCodecError(
                f"{name} segment length must be {allowed_lengths.start}..{allowed_lengths.stop - 1} bytes, got {length}"
            )
        return self._take(length, f"{name} segment ({length} bytes)")

    def uri(self, name: str) -> str | None:
        raw = self.segment(name, 1)
        if not raw:
            return None
        try:
            return raw.decode("ascii")
        except UnicodeDecodeError as error:
            raise BasicsStationCodecError(f"{name} segment is not ASCII: {raw!r}") from error

    def expect_end(self) -> None:
        extra = len(self.data) - self.offset
        if extra:
            raise BasicsStationCodecError(f"CUPS reply overlong: {extra} bytes after the update segment")


def _uri_segment(uri: str | None, name: str) -> bytes:
    if not uri:
        return b"\x00"
    try:
        raw = uri.encode("ascii")
    except UnicodeEncodeError as error:
        raise BasicsStationCodecError(f"{name} must be ASCII: {uri!r}") from error
    if len(raw) > 255:
        raise BasicsStationCodecError(f"{name} is {len(raw)} bytes; a URI segment holds at most 255")
    return bytes((len(raw),)) + raw

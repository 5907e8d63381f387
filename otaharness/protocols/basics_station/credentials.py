"""Credential blobs in CUPS replies and the credential CRCs in CUPS requests (basicstation 2.0.6).

Blob (``sys_credComplete``, ``src/sys.c``), one after another without length prefixes:

=====  ==========================================================================================
part   content
=====  ==========================================================================================
trust  DER SEQUENCE (first byte 0x30): the CA certificate
cert   DER SEQUENCE, or 4 zero bytes for "no client certificate" (only the first byte is tested)
key    DER SEQUENCE; or a first byte 0x00 for "no key"; any other first byte starts an *auth
       token* (HTTP header lines such as ``Authorization: Bearer xyz\\r\\n``) that runs to the
       end of the blob
=====  ==========================================================================================

The station stores the three parts as ``{cups,tc}.{trust,crt,key}`` (an absent part as an empty
file) and reports ``crc32(trust || crt-or-4x00 || key-or-4x00)`` over those files, an empty or
missing file counting as 4 zero bytes (``sys_crcCred``). With no files at all that is the CRC of
12 zero bytes, 0x7BD5C66F.

``Credentials.encode`` writes "no key" as 4 zero bytes rather than the single 0x00 the station
also accepts, so that ``zlib.crc32(blob)`` always equals the CRC the station reports after
storing the blob; with a single 0x00 the two differ and a CUPS server comparing CRCs would resend
the same blob forever.

Station quirk modelled by ``decode``: a DER length in long form is always read as two bytes
(``0x82 hi lo``), so an element using ``0x81 len`` (content of 128..255 bytes) is mis-measured;
``encode`` refuses such elements instead of producing a blob the station cuts wrongly.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

from .errors import BasicsStationCodecError

ASN1_SEQUENCE = 0x30
NO_CERTIFICATE = bytes(4)
NO_KEY = bytes(4)
_MISSING_FILE = bytes(4)  # what sys_crcCred feeds into the CRC for a missing or empty file


def credential_crc(trust: bytes | None, certificate: bytes | None, key: bytes | None) -> int:
    """``sys_crcCred``: CRC32 over the stored trust, cert and key files (missing/empty = 4×00)."""
    crc = 0
    for content in (trust, certificate, key):
        crc = zlib.crc32(content or _MISSING_FILE, crc)
    return crc


def station_der_length(data: bytes, offset: int, part: str) -> int:
    """Length of the DER element at ``offset`` as ``asn1_seqlen`` computes it (header included)."""
    if offset + 2 > len(data):
        raise BasicsStationCodecError(f"{part}: DER header truncated at offset {offset}")
    if data[offset + 1] & 0x80:
        if offset + 4 > len(data):
            raise BasicsStationCodecError(f"{part}: DER long-form length truncated at offset {offset}")
        return ((data[offset + 2] << 8) | data[offset + 3]) + 4
    return data[offset + 1] + 2


def _check_der_element(element: bytes, part: str) -> None:
    if not element or element[0] != ASN1_SEQUENCE:
        raise BasicsStationCodecError(f"{part} must be a DER SEQUENCE (first byte 0x30)")
    if element[1:2] and element[1] & 0x80 and element[1] != 0x82:
        raise BasicsStationCodecError(
            f"{part} uses DER length form 0x{element[1]:02x}; the station only reads 0x82 hi lo"
        )
    measured = station_der_length(element, 0, part)
    if measured != len(element):
        raise BasicsStationCodecError(
            f"{part} is {len(element)} bytes but its DER header says {measured}"
        )


@dataclass(frozen=True)
class Credentials:
    """One credential set: trust, optional client certificate, and a key *or* an auth token."""

    trust: bytes
    certificate: bytes | None = None
    key: bytes | None = None
    auth_token: bytes | None = None

    def __post_init__(self) -> None:
        if self.key is not None and self.auth_token is not None:
            raise BasicsStationCodecError("credentials carry either a private key or an auth token, not both")
        if self.auth_token is not None and (not self.auth_token or self.auth_token[0] in (0x00, ASN1_SEQUENCE)):
            raise BasicsStationCodecError(
                "an auth token must be non-empty and must not start with 0x00 or 0x30 (read as no-key / DER key)"
            )

    def encode(self) -> bytes:
        """The blob for a CUPS reply segment (DER parts checked against the station's parser)."""
        _check_der_element(self.trust, "trust")
        if self.certificate is not None:
            _check_der_element(self.certificate, "certificate")
        if self.key is not None:
            _check_der_element(self.key, "key")
        return self.trust + (self.certificate or NO_CERTIFICATE) + (self.key or self.auth_token or NO_KEY)

    @classmethod
    def decode(cls, blob: bytes) -> Credentials:
        """Split a blob as ``sys_credComplete`` does; raise where the station logs a parse failure.

        Bytes after a DER key or after the 0x00 "no key" marker are ignored, as by the station.
        """
        data = bytes(blob)
        if not data or data[0] != ASN1_SEQUENCE:
            raise BasicsStationCodecError("credential blob must start with the trust DER SEQUENCE (0x30)")
        trust_length = station_der_length(data, 0, "trust")
        cert_offset = trust_length
        # The station reads one byte past the data as its NUL terminator, i.e. 0x00.
        if cert_offset >= len(data) or data[cert_offset] == 0x00:
            cert_length, key_offset = 0, cert_offset + len(NO_CERTIFICATE)
        elif data[cert_offset] != ASN1_SEQUENCE:
            raise BasicsStationCodecError(
                f"credential blob: expected DER SEQUENCE or 4×00 for the certificate at offset {cert_offset},"
                f" got 0x{data[cert_offset]:02x}"
            )
        else:
            cert_length = station_der_length(data, cert_offset, "certificate")
            key_offset = cert_offset + cert_length
        if key_offset > len(data):
            raise BasicsStationCodecError(
                f"credential blob: expecting more data (key offset {key_offset}, blob length {len(data)})"
            )
        key_first = data[key_offset] if key_offset < len(data) else 0x00
        key: bytes | None = None
        token: bytes | None = None
        key_length = 0
        if key_first == ASN1_SEQUENCE:
            key_length = station_der_length(data, key_offset, "key")
        elif key_first != 0x00:
            key_length = len(data) - key_offset
        if trust_length + cert_length + key_length > len(data) or key_offset + key_length > len(data):
            raise BasicsStationCodecError(
                f"credential blob lengths do not align: trust {trust_length} + certificate {cert_length}"
                f" + key {key_length} > blob {len(data)}"
            )
        key_bytes = data[key_offset:key_offset + key_length]
        if key_first == ASN1_SEQUENCE:
            key = key_bytes
        elif key_length:
            token = key_bytes
        return cls(
            trust=data[:trust_length],
            certificate=data[cert_offset:cert_offset + cert_length] or None,
            key=key,
            auth_token=token,
        )

    def stored_files(self) -> tuple[bytes, bytes, bytes]:
        """Contents of the ``.trust``, ``.crt``, ``.key`` files the station writes (absent = empty)."""
        return self.trust, self.certificate or b"", self.key or self.auth_token or b""

    def station_crc(self) -> int:
        """The ``cupsCredCrc``/``tcCredCrc`` the station reports once it has stored these."""
        return credential_crc(*self.stored_files())


def station_auth_header_lines(key_file: bytes) -> bytes | None:
    """The HTTP header lines a station sends from a token ``.key`` file (``validateAuthToken``,
    ``src/net.c``), or None where the station refuses the file ("malformed auth token").

    The file is read as a C string (up to the first NUL). Trailing empty lines are dropped; every
    line must be a field name of ``A-Z a-z 0-9 - _`` followed by ``": "``; a bare LF becomes
    CRLF (the last line ends with CRLF too; the empty line ending the header follows)."""
    text = key_file.split(b"\x00", 1)[0]
    while text.endswith(b"\n"):
        text = text[:-2] if text.endswith(b"\r\n") else text[:-1]
    if not text:
        return b""
    lines = []
    for line in text.split(b"\n"):
        line = line.removesuffix(b"\r")
        name, separator, _ = line.partition(b":")
        if not name or not separator or not line[len(name) + 1:].startswith(b" ") or not all(
                chr(byte).isascii() and (chr(byte).isalnum() or byte in b"-_") for byte in name):
            return None
        lines.append(line + b"\r\n")
    return b"".join(lines)

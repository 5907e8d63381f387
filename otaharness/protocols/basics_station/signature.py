"""Firmware signature keys, signing, and the station's verification (basicstation 2.0.6).

* Key file ``sig-N.key``: the raw 64-byte P-256 public point X‖Y (big-endian, no 0x04 prefix,
  no DER), i.e. the last 64 bytes of the DER SubjectPublicKeyInfo (``cups_verifySig``).
* Key CRC (the ``keys`` list of the CUPS request, and the first 4 bytes of the signature
  segment): ``zlib.crc32`` over the whole file (``sys_crcSigkey``).
* Signature: DER ECDSA over SHA-512 of exactly the update bytes (``openssl dgst -sha512 -sign``).
* Verification (``cups_verifySig``): the station tries ``sig-0.key``, ``sig-1.key``, … in order
  until one verifies, skipping files that are not exactly 64 bytes. **The key CRC sent in the
  signature segment is not used to pick the key** (only logged); a valid signature with a wrong
  CRC is accepted [observed in the fact sheet §4]. Servers are the ones that look at CRCs.
* Decision (``cups_ondone``), only when the reply carried a non-empty update:

  ==================  =================  ==============================================
  signature segment   key files          outcome
  ==================  =================  ==============================================
  present             some key verifies  run the update
  present             none verifies      abort ("No key could verify signature")
  absent              ``sig-0.key``      abort ("Keyfile present, but no signature")
  absent              no ``sig-0.key``   run unsigned ("No Key. No Sig. UPDATE.")
  ==================  =================  ==============================================
"""

from __future__ import annotations

import enum
import zlib
from collections.abc import Sequence
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from .cups import FirmwareSignature, UpdateInfoResponse
from .errors import BasicsStationCodecError

SIG_KEY_FILE_LENGTH = 64
_CURVE = ec.SECP256R1()
_SIGNATURE_ALGORITHM = ec.ECDSA(hashes.SHA512())


def sig_key_file(public_key: ec.EllipticCurvePublicKey) -> bytes:
    """The 64-byte ``sig-N.key`` content for a P-256 public key."""
    if not isinstance(public_key.curve, ec.SECP256R1):
        raise BasicsStationCodecError(f"signature keys must be P-256, got {public_key.curve.name}")
    point = public_key.public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
    return point[1:]  # drop the 0x04 "uncompressed" marker


def public_key_from_sig_key_file(content: bytes) -> ec.EllipticCurvePublicKey:
    """Read a ``sig-N.key``; raise if it is not 64 bytes or not a point on P-256."""
    if len(content) != SIG_KEY_FILE_LENGTH:
        raise BasicsStationCodecError(f"sig key file must be {SIG_KEY_FILE_LENGTH} bytes (X‖Y), got {len(content)}")
    try:
        return ec.EllipticCurvePublicKey.from_encoded_point(_CURVE, b"\x04" + bytes(content))
    except ValueError as error:
        raise BasicsStationCodecError(f"sig key file is not a valid P-256 point: {error}") from error


def key_crc(content: bytes) -> int:
    """CRC32 of a whole key file, as in the request's ``keys`` and the signature segment."""
    return zlib.crc32(content)


def station_key_crcs(key_files: Sequence[bytes | None]) -> list[int]:
    """The request's ``keys``: CRCs of ``sig-0.key``, ``sig-1.key``, … (``cups_update_info``).

    ``key_files[n]`` is the content of ``sig-n.key`` or ``None`` if missing. The station stops at
    the first missing file *or at the first CRC of 0* (its loop tests ``crc > 0``; an empty file
    has CRC 0), whatever follows.
    """
    crcs = []
    for content in key_files:
        crc = 0 if content is None else key_crc(content)
        if crc == 0:
            break
        crcs.append(crc)
    return crcs


# A DER ECDSA P-256 signature: SEQUENCE { INTEGER r, INTEGER s }, each 1..33 content bytes.
MIN_P256_SIGNATURE_DER = 8
MAX_P256_SIGNATURE_DER = 72
_P256_ORDER = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551


def check_firmware_signature(der: bytes, key_checksum: int | None) -> None:
    """Refuse (BasicsStationCodecError) a firmware signature no station can verify: not a strict
    DER ECDSA-P256 signature (8..72 bytes, r and s in 1..n-1), or given without the CRC of the
    key that signed it (the CUPS reply's signature segment starts with that CRC)."""
    from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

    if key_checksum is None:
        raise BasicsStationCodecError("a signature needs the checksum (CRC32) of the key that made it")
    if not MIN_P256_SIGNATURE_DER <= len(der) <= MAX_P256_SIGNATURE_DER:
        raise BasicsStationCodecError(
            f"signature of {len(der)} bytes: a DER ECDSA P-256 signature has "
            f"{MIN_P256_SIGNATURE_DER}..{MAX_P256_SIGNATURE_DER}")
    try:
        r, s = decode_dss_signature(bytes(der))
    except ValueError as error:
        raise BasicsStationCodecError(f"signature is not DER ECDSA (SEQUENCE of two INTEGERs): {error}") from error
    if not (0 < r < _P256_ORDER and 0 < s < _P256_ORDER):
        raise BasicsStationCodecError("signature values r and s must lie in 1..n-1 of P-256")


def sign_update(private_key: ec.EllipticCurvePrivateKey, update: bytes) -> bytes:
    """DER ECDSA-P256 signature over SHA-512 of ``update`` (accepted by the real station)."""
    return private_key.sign(update, _SIGNATURE_ALGORITHM)


@dataclass(frozen=True)
class SigningKey:
    """A P-256 private key together with its ``sig-N.key`` form and CRC."""

    private_key: ec.EllipticCurvePrivateKey

    @classmethod
    def generate(cls) -> SigningKey:
        return cls(ec.generate_private_key(_CURVE))

    @classmethod
    def from_pem(cls, pem: bytes) -> SigningKey:
        key = serialization.load_pem_private_key(pem, password=None)
        if not isinstance(key, ec.EllipticCurvePrivateKey) or not isinstance(key.curve, ec.SECP256R1):
            raise BasicsStationCodecError("signing key PEM must hold a P-256 EC private key")
        return cls(key)

    def to_pem(self) -> bytes:
        return self.private_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )

    @property
    def key_file(self) -> bytes:
        return sig_key_file(self.private_key.public_key())

    @property
    def crc(self) -> int:
        return key_crc(self.key_file)

    def sign(self, update: bytes) -> FirmwareSignature:
        """The signature segment for ``update``, labelled with this key's CRC."""
        return FirmwareSignature(key_crc=self.crc, der=sign_update(self.private_key, update))


def verifying_key_index(update: bytes, signature_der: bytes, key_files: Sequence[bytes]) -> int | None:
    """Index of the first key file that verifies the signature, as ``cups_verifySig``; else None.

    ``key_files`` are the contents of ``sig-0.key``, ``sig-1.key``, … up to the first missing
    one. Every file is tried in order (no CRC matching); a file that is not 64 bytes or not a
    valid point simply does not verify.
    """
    for index, content in enumerate(key_files):
        if len(content) != SIG_KEY_FILE_LENGTH:
            continue
        try:
            public_key_from_sig_key_file(content).verify(signature_der, update, _SIGNATURE_ALGORITHM)
        except (BasicsStationCodecError, InvalidSignature):
            continue
        return index
    return None


class UpdateOutcome(enum.Enum):
    RUN_VERIFIED = "run: a key verified the signature"
    RUN_UNSIGNED = "run: no sig-0.key and no signature"
    ABORT_NOT_VERIFIED = "abort: no key could verify the signature"
    ABORT_SIGNATURE_MISSING = "abort: key file present but no signature"


@dataclass(frozen=True)
class UpdateDecision:
    outcome: UpdateOutcome
    key_index: int | None = None  # which sig-N.key verified, for RUN_VERIFIED

    @property
    def runs_update(self) -> bool:
        return self.outcome in (UpdateOutcome.RUN_VERIFIED, UpdateOutcome.RUN_UNSIGNED)


def station_update_decision(response: UpdateInfoResponse, key_files: Sequence[bytes]) -> UpdateDecision | None:
    """What the station does with a CUPS reply's update (module table); None if there is none."""
    if not response.update:
        return None
    if response.signature is not None:
        index = verifying_key_index(response.update, response.signature.der, key_files)
        if index is None:
            return UpdateDecision(UpdateOutcome.ABORT_NOT_VERIFIED)
        return UpdateDecision(UpdateOutcome.RUN_VERIFIED, index)
    if key_files:  # sys_sigKey(0) exists, whatever its size
        return UpdateDecision(UpdateOutcome.ABORT_SIGNATURE_MISSING)
    return UpdateDecision(UpdateOutcome.RUN_UNSIGNED)

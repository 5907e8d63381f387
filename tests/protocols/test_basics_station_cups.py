"""CUPS request/reply, credential blobs and CRCs, firmware signatures (basicstation 2.0.6)."""

from __future__ import annotations

import datetime as dt
import json
import struct
import zlib

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from hypothesis import given
from hypothesis import strategies as st

from otaharness.protocols.basics_station import (
    NO_UPDATE,
    BasicsStationCodecError,
    Credentials,
    FirmwareSignature,
    SigningKey,
    UpdateInfoRequest,
    UpdateInfoResponse,
    UpdateOutcome,
    credential_crc,
    encode_update_info_http_request,
    key_crc,
    public_key_from_sig_key_file,
    sig_key_file,
    station_key_crcs,
    station_update_decision,
    verifying_key_index,
)

# Fact sheet §1 [observed]: the body the real station 2.0.6 POSTed.
OBSERVED_REQUEST_BODY = (
    b'{"router":"::1","cupsUri":"http://127.0.0.1:16040","tcUri":"ws://127.0.0.1:16038",'
    b'"cupsCredCrc":2077607535,"tcCredCrc":2077607535,'
    b'"station":"2.0.6(linux/testsim) 2026-11-22 14:11:37","model":"linux","package":"v0-test",'
    b'"keys":[488546068]}'
)
OBSERVED_REQUEST = UpdateInfoRequest(
    router=1,
    cups_uri="http://127.0.0.1:16040",
    tc_uri="ws://127.0.0.1:16038",
    cups_cred_crc=2077607535,
    tc_cred_crc=2077607535,
    station="2.0.6(linux/testsim) 2026-11-22 14:11:37",
    model="linux",
    package="v0-test",
    keys=(488546068,),
)


# --------------------------------------------------------------------------------------------
# Request


def test_request_encodes_byte_for_byte_like_the_real_station() -> None:
    assert OBSERVED_REQUEST.encode() == OBSERVED_REQUEST_BODY


def test_request_decodes_the_observed_body() -> None:
    assert UpdateInfoRequest.decode(OBSERVED_REQUEST_BODY) == OBSERVED_REQUEST


def test_request_without_files_sends_nulls_and_empty_keys() -> None:
    request = UpdateInfoRequest(0xAABB, None, None, 0x7BD5C66F, 0x7BD5C66F, "s", "linux", None)
    body = request.to_json()
    assert body == (
        '{"router":"::aabb","cupsUri":null,"tcUri":null,"cupsCredCrc":2077607535,'
        '"tcCredCrc":2077607535,"station":"s","model":"linux","package":null,"keys":[]}'
    )
    assert UpdateInfoRequest.decode(body) == request


def test_request_strings_escape_like_uj_encStr() -> None:
    request = UpdateInfoRequest(1, None, None, 0, 0, 'a"b\\c\n\x1f', "linux", "vé")
    body = request.to_json()
    assert '"station":"a\\"b\\\\c\\n\\u001F"' in body  # uppercase hex as addHex2
    assert '"package":"vé"' in body  # non-ASCII raw, not \u00e9
    assert UpdateInfoRequest.decode(body.encode()) == request


@pytest.mark.parametrize(("mutate", "message"), [
    (lambda d: d.pop("router"), "missing field 'router'"),
    (lambda d: d.pop("keys"), "missing field 'keys'"),
    (lambda d: d.update(cupsUri=5), "field 'cupsUri' must be string or null, got 5"),
    (lambda d: d.update(cupsCredCrc="2077607535"), "field 'cupsCredCrc' must be integer"),
    (lambda d: d.update(tcCredCrc=-1), "'tcCredCrc' must be an unsigned 32-bit int"),
    (lambda d: d.update(tcCredCrc=1 << 32), "'tcCredCrc' must be an unsigned 32-bit int"),
    (lambda d: d.update(station=None), "field 'station' must be string, got null"),
    (lambda d: d.update(package=True), "field 'package' must be string or null, got true"),
    (lambda d: d.update(keys=["1"]), "'keys' element must be an unsigned 32-bit int"),
    (lambda d: d.update(keys={}), "field 'keys' must be array"),
    (lambda d: d.update(router="12:::34"), "malformed ID6"),
])
def test_request_decode_rejects_missing_and_mistyped_fields(mutate, message: str) -> None:
    document = json.loads(OBSERVED_REQUEST_BODY)
    mutate(document)
    with pytest.raises(BasicsStationCodecError, match=message.replace("(", "\\(")):
        UpdateInfoRequest.decode(json.dumps(document))


@pytest.mark.parametrize("body", [b"", b"[1]", b"{", b"\xff"])
def test_request_decode_rejects_non_objects(body: bytes) -> None:
    with pytest.raises(BasicsStationCodecError, match="CUPS request"):
        UpdateInfoRequest.decode(body)


def test_http_request_framing_pads_content_length_to_five_characters() -> None:
    raw = encode_update_info_http_request("127.0.0.1:16040", OBSERVED_REQUEST_BODY)
    head, _, body = raw.partition(b"\r\n\r\n")
    assert body == OBSERVED_REQUEST_BODY
    assert head.split(b"\r\n") == [
        b"POST /update-info HTTP/1.1",
        b"Host: 127.0.0.1:16040",
        b"Content-Type: application/json",
        b"Content-Length:   238",  # fact sheet §1: 5-character field, spaces in front
    ]
    with_token = encode_update_info_http_request("h:1", b"{}", "Authorization: Bearer x\r\n")
    assert with_token.endswith(b"Content-Length:     2\r\nAuthorization: Bearer x\r\n\r\n{}")


# --------------------------------------------------------------------------------------------
# Response


def test_no_update_reply_is_fourteen_zero_bytes() -> None:
    assert NO_UPDATE == bytes(14)
    assert UpdateInfoResponse().encode() == NO_UPDATE
    decoded = UpdateInfoResponse.decode(NO_UPDATE)
    assert decoded == UpdateInfoResponse()
    assert decoded.is_no_update


def test_signed_update_layout_matches_fact_sheet() -> None:
    signature = FirmwareSignature(key_crc=488546068, der=b"\x30" + bytes(70))
    update = b"#!/bin/sh\necho v1 > version.txt\n"
    body = UpdateInfoResponse(signature=signature, update=update).encode()
    assert body[:6] == bytes(6)  # two URI lengths, two 2-byte cred lengths
    assert struct.unpack_from("<I", body, 6)[0] == 75  # "[Segment] FW Signature (75 bytes)"
    assert body[10:14] == bytes.fromhex("149f1e1d")  # key CRC 488546068, little-endian
    assert body[14:85] == signature.der
    assert struct.unpack_from("<I", body, 85)[0] == len(update)
    assert body[89:] == update
    assert UpdateInfoResponse.decode(body) == UpdateInfoResponse(signature=signature, update=update)


def test_uri_and_credential_segments_round_trip() -> None:
    response = UpdateInfoResponse(
        cups_uri="https://cups.example:443",
        tc_uri="wss://lns.example:5001",
        cups_credentials=b"\x30\x03abc" + bytes(8),
        tc_credentials=b"\x30\x02xy" + bytes(4) + b"Authorization: Bearer t\r\n",
    )
    body = response.encode()
    assert body[0] == len("https://cups.example:443")
    assert UpdateInfoResponse.decode(body) == response


@given(
    cups_uri=st.none() | st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1, max_size=255),
    tc_uri=st.none() | st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1, max_size=255),
    cups_credentials=st.binary(max_size=300),
    tc_credentials=st.binary(max_size=300),
    signature=st.none() | st.builds(FirmwareSignature, st.integers(0, 0xFFFFFFFF), st.binary(min_size=4, max_size=128)),
    update=st.binary(max_size=500),
)
def test_response_round_trip(cups_uri, tc_uri, cups_credentials, tc_credentials, signature, update) -> None:
    response = UpdateInfoResponse(cups_uri, tc_uri, cups_credentials, tc_credentials, signature, update)
    body = response.encode()
    assert UpdateInfoResponse.decode(body) == response
    # Every proper prefix is truncated somewhere, and every extra byte is overlong.
    for cut in {0, 1, len(body) // 2, len(body) - 1}:
        with pytest.raises(BasicsStationCodecError, match="truncated"):
            UpdateInfoResponse.decode(body[:cut])
    with pytest.raises(BasicsStationCodecError, match="overlong: 1 bytes after the update"):
        UpdateInfoResponse.decode(body + b"\x00")


@pytest.mark.parametrize(("body", "message"), [
    (b"", "truncated in cupsUri length"),
    (b"\x05abc", "truncated in cupsUri segment \\(5 bytes\\)"),
    (bytes(2), "truncated in cupsCred length"),
    (bytes(6) + b"\x08\x00\x00\x00" + bytes(7), "truncated in signature segment \\(8 bytes\\)"),
    (bytes(6) + b"\x07\x00\x00\x00", "signature segment length must be 8..132 bytes, got 7"),
    (bytes(6) + struct.pack("<I", 133) + bytes(133) + bytes(4), "must be 8..132 bytes, got 133"),
    (bytes(10) + b"\x00\x00\x00\x80", "update segment length 0x80000000 not allowed"),
    (bytes(14) + b"\x00", "overlong: 1 bytes after the update segment"),
    (bytes(10) + b"\x03\x00\x00\x00ab", "truncated in update segment \\(3 bytes\\): need 3 bytes at offset 14, 2 left"),
    (b"\x02\xff\xfe" + bytes(13), "cupsUri segment is not ASCII"),
])
def test_response_decode_errors_are_clear(body: bytes, message: str) -> None:
    with pytest.raises(BasicsStationCodecError, match=message):
        UpdateInfoResponse.decode(body)


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"cups_uri": "x" * 256}, "cups_uri is 256 bytes"),
    ({"tc_uri": "wss://é"}, "tc_uri must be ASCII"),
    ({"tc_credentials": bytes(0x10000)}, "tc_credentials is 65536 bytes, at most 65535"),
])
def test_response_encode_refuses_what_does_not_fit(kwargs: dict, message: str) -> None:
    with pytest.raises(BasicsStationCodecError, match=message):
        UpdateInfoResponse(**kwargs).encode()


@pytest.mark.parametrize(("key_crc_value", "der", "message"), [
    (1 << 32, b"\x30" * 8, "key CRC must be an unsigned 32-bit int"),
    (0, b"abc", "signature must be 4..128 bytes, got 3"),
    (0, bytes(129), "signature must be 4..128 bytes, got 129"),
])
def test_signature_segment_limits(key_crc_value: int, der: bytes, message: str) -> None:
    with pytest.raises(BasicsStationCodecError, match=message):
        FirmwareSignature(key_crc_value, der)


# --------------------------------------------------------------------------------------------
# Credentials


def _der_certificate(common_name: str) -> bytes:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    start = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)
    certificate = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(1).not_valid_before(start).not_valid_after(start + dt.timedelta(days=365))
        .sign(key, hashes.SHA256())
    )
    return certificate.public_bytes(serialization.Encoding.DER)


@pytest.fixture(scope="module")
def trust() -> bytes:
    return _der_certificate("otaharness test CA")


@pytest.fixture(scope="module")
def client_certificate() -> bytes:
    return _der_certificate("station")


@pytest.fixture(scope="module")
def sec1_key() -> bytes:
    # SEC1 EC key: 121 bytes, short-form DER length, which the station measures correctly.
    return ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption()
    )


def test_empty_credentials_crc_is_fact_sheet_value() -> None:
    assert credential_crc(None, None, None) == 0x7BD5C66F == 2077607535
    assert credential_crc(b"", b"", b"") == 0x7BD5C66F  # empty files count like missing ones
    assert zlib.crc32(bytes(12)) == 0x7BD5C66F


def test_credential_crc_chains_the_three_files(trust: bytes) -> None:
    assert credential_crc(trust, None, b"token") == zlib.crc32(trust + bytes(4) + b"token")
    assert credential_crc(trust, None, None) != credential_crc(None, trust, None)


def test_blob_with_token_matches_observed_form(trust: bytes) -> None:
    # Fact sheet §3.2 [observed]: DER trust + 4×00 + token; the station stored trust, an empty
    # .crt and the token as .key, and reported tcCredCrc == crc32(blob).
    token = b"Authorization: Bearer xyz\r\n"
    credentials = Credentials(trust=trust, auth_token=token)
    blob = credentials.encode()
    assert blob == trust + bytes(4) + token
    decoded = Credentials.decode(blob)
    assert decoded == credentials
    assert decoded.stored_files() == (trust, b"", token)
    assert decoded.station_crc() == zlib.crc32(blob)


def test_blob_with_certificate_and_key_round_trips(trust: bytes, client_certificate: bytes, sec1_key: bytes) -> None:
    credentials = Credentials(trust=trust, certificate=client_certificate, key=sec1_key)
    blob = credentials.encode()
    assert blob == trust + client_certificate + sec1_key
    assert Credentials.decode(blob) == credentials
    assert credentials.station_crc() == zlib.crc32(blob)


def test_no_key_is_written_as_four_zero_bytes_so_crcs_agree(trust: bytes) -> None:
    blob = Credentials(trust=trust).encode()
    assert blob == trust + bytes(8)
    assert Credentials.decode(blob).station_crc() == zlib.crc32(blob)
    # The single-0x00 form is accepted by the station, but then its CRC differs from the blob's.
    short_blob = trust + bytes(4) + b"\x00"
    assert Credentials.decode(short_blob) == Credentials(trust=trust)
    assert Credentials.decode(short_blob).station_crc() != zlib.crc32(short_blob)


def test_encode_refuses_der_lengths_the_station_misreads(trust: bytes) -> None:
    pkcs8_key = ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    assert pkcs8_key[1] == 0x81  # 138 bytes: one-byte long form
    with pytest.raises(BasicsStationCodecError, match="key uses DER length form 0x81"):
        Credentials(trust=trust, key=pkcs8_key).encode()


@pytest.mark.parametrize(("make_blob", "message"), [
    (lambda trust: b"", "must start with the trust DER SEQUENCE"),
    (lambda trust: b"-----BEGIN CERTIFICATE-----", "must start with the trust DER SEQUENCE"),
    (lambda trust: trust, "expecting more data"),
    (lambda trust: trust + b"\x31\x00", "expected DER SEQUENCE or 4×00 for the certificate"),
    (lambda trust: trust + bytes(4) + b"\x30\x10abc", "lengths do not align"),
    (lambda trust: trust[:40], "expecting more data"),
    (lambda trust: b"\x30\x82", "long-form length truncated"),
])
def test_credential_blob_decode_errors(trust: bytes, make_blob, message: str) -> None:
    with pytest.raises(BasicsStationCodecError, match=message):
        Credentials.decode(make_blob(trust))


def test_credentials_refuse_key_and_token_together(trust: bytes, sec1_key: bytes) -> None:
    with pytest.raises(BasicsStationCodecError, match="either a private key or an auth token"):
        Credentials(trust=trust, key=sec1_key, auth_token=b"X: y\r\n")
    with pytest.raises(BasicsStationCodecError, match="must not start with 0x00 or 0x30"):
        Credentials(trust=trust, auth_token=b"0\r\n")


# --------------------------------------------------------------------------------------------
# Signature keys and verification


@pytest.fixture(scope="module")
def signing_key() -> SigningKey:
    return SigningKey.generate()


@pytest.fixture(scope="module")
def other_key() -> SigningKey:
    return SigningKey.generate()


UPDATE = b"#!/bin/sh\necho v1 > version.txt\nrm -f /tmp/update.bin\n"


def test_sig_key_file_is_raw_x_y_of_the_der_public_key(signing_key: SigningKey) -> None:
    public_key = signing_key.private_key.public_key()
    der = public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    numbers = public_key.public_numbers()
    content = sig_key_file(public_key)
    assert len(content) == 64
    assert content == der[-64:]  # the openssl recipe of the fact sheet
    assert content == numbers.x.to_bytes(32, "big") + numbers.y.to_bytes(32, "big")
    assert public_key_from_sig_key_file(content).public_numbers() == numbers
    assert signing_key.crc == key_crc(content) == zlib.crc32(content)


def test_signature_is_der_ecdsa_over_sha512(signing_key: SigningKey) -> None:
    signature = signing_key.sign(UPDATE)
    assert signature.key_crc == signing_key.crc
    assert signature.der[0] == 0x30
    # Independent check with cryptography's own verifier and the SHA-512 prehash.
    from cryptography.hazmat.primitives.asymmetric import utils
    digest = hashes.Hash(hashes.SHA512())
    digest.update(UPDATE)
    signing_key.private_key.public_key().verify(
        signature.der, digest.finalize(), ec.ECDSA(utils.Prehashed(hashes.SHA512()))
    )


def test_pem_round_trip(signing_key: SigningKey) -> None:
    assert SigningKey.from_pem(signing_key.to_pem()).key_file == signing_key.key_file


def test_verification_tries_every_key_in_order(signing_key: SigningKey, other_key: SigningKey) -> None:
    der = signing_key.sign(UPDATE).der
    assert verifying_key_index(UPDATE, der, [signing_key.key_file]) == 0
    assert verifying_key_index(UPDATE, der, [other_key.key_file, signing_key.key_file]) == 1
    # Files that are not 64 bytes are skipped, as are 64 bytes that are not a point.
    assert verifying_key_index(UPDATE, der, [b"short", bytes(64), signing_key.key_file]) == 2


def test_signature_from_another_key_fails(signing_key: SigningKey, other_key: SigningKey) -> None:
    der = other_key.sign(UPDATE).der
    assert verifying_key_index(UPDATE, der, [signing_key.key_file]) is None
    assert verifying_key_index(UPDATE + b"x", signing_key.sign(UPDATE).der, [signing_key.key_file]) is None


def test_station_ignores_the_key_crc_in_the_signature_segment(signing_key: SigningKey) -> None:
    # Fact sheet §4 [observed]: correct signature with key CRC 0xDEADBEEF -> "ECDSA key#0 -> VERIFIED".
    reply = UpdateInfoResponse(signature=FirmwareSignature(0xDEADBEEF, signing_key.sign(UPDATE).der), update=UPDATE)
    decision = station_update_decision(UpdateInfoResponse.decode(reply.encode()), [signing_key.key_file])
    assert decision is not None
    assert decision.outcome is UpdateOutcome.RUN_VERIFIED and decision.key_index == 0
    assert decision.runs_update


@pytest.mark.parametrize(("signed_by", "key_files", "outcome"), [
    ("own", ["own"], UpdateOutcome.RUN_VERIFIED),
    ("other", ["own"], UpdateOutcome.ABORT_NOT_VERIFIED),
    ("own", [], UpdateOutcome.ABORT_NOT_VERIFIED),
    (None, ["own"], UpdateOutcome.ABORT_SIGNATURE_MISSING),
    (None, ["empty"], UpdateOutcome.ABORT_SIGNATURE_MISSING),
    (None, [], UpdateOutcome.RUN_UNSIGNED),
])
def test_station_decision_table(signing_key, other_key, signed_by, key_files, outcome) -> None:
    keys = {"own": signing_key, "other": other_key}
    files = [b"" if name == "empty" else keys[name].key_file for name in key_files]
    signature = keys[signed_by].sign(UPDATE) if signed_by else None
    decision = station_update_decision(UpdateInfoResponse(signature=signature, update=UPDATE), files)
    assert decision is not None and decision.outcome is outcome
    assert decision.runs_update == (outcome in (UpdateOutcome.RUN_VERIFIED, UpdateOutcome.RUN_UNSIGNED))


def test_no_decision_without_an_update(signing_key: SigningKey) -> None:
    assert station_update_decision(UpdateInfoResponse(), [signing_key.key_file]) is None


def test_request_keys_stop_at_first_missing_or_zero_crc(signing_key: SigningKey, other_key: SigningKey) -> None:
    assert station_key_crcs([]) == []
    assert station_key_crcs([signing_key.key_file, other_key.key_file]) == [signing_key.crc, other_key.crc]
    assert station_key_crcs([signing_key.key_file, None, other_key.key_file]) == [signing_key.crc]
    assert station_key_crcs([b"", signing_key.key_file]) == []  # empty file: CRC 0 ends the list


@pytest.mark.parametrize(("content", "message"), [
    (bytes(63), "must be 64 bytes"),
    (b"\x04" + bytes(64), "must be 64 bytes"),
    (bytes(64), "not a valid P-256 point"),
])
def test_sig_key_file_errors(content: bytes, message: str) -> None:
    with pytest.raises(BasicsStationCodecError, match=message):
        public_key_from_sig_key_file(content)


def test_sig_key_must_be_p256() -> None:
    with pytest.raises(BasicsStationCodecError, match="P-256"):
        sig_key_file(ec.generate_private_key(ec.SECP384R1()).public_key())

"""The one redactor: by shape (headers, PEM keys, secret-named fields) and by value (the secrets a
scenario issued), for text, bytes, log records and kept files; the three places that had their
own rules use it."""

import logging
import sqlite3

from otaharness.protocols.http_digest import (
    DigestClient,
    DigestVerifier,
    basic_authorization,
    parse_auth_params,
    redacted,
)
from otaharness.runtime import redaction
from otaharness.runtime.pki import Pki
from otaharness.runtime.redaction import (
    MARK,
    RedactingFilter,
    SecretSet,
    authorization_for_log,
    redact,
    redact_bytes,
    remember,
    scrub_file,
)
from otaharness.servers.http_service import new_token


def _digest_header() -> str:
    client = DigestClient("cpe", "pw")
    client.accept_challenge(DigestVerifier("realm").challenge())
    return client.authorization("POST", "/")


def test_authorization_values_by_shape():
    token = new_token()
    assert token not in redact(f"GET / HTTP/1.1\r\nAuthorization: Bearer {token}\r\r\n")
    assert token not in redact(f"sent bearer {token} along")
    basic = basic_authorization("cpe", "pw")
    assert basic.split()[1] not in authorization_for_log(basic)
    header = _digest_header()
    response = parse_auth_params(header[len("Digest "):])["response"]
    shown = authorization_for_log(header)
    # a Digest response keeps 4 hex digits (lines stay distinguishable), the rest is gone
    assert response not in shown and f'response="{response[:4]}{MARK}' in shown
    assert 'username="cpe"' in shown  # the rest of the header stays readable
    assert redacted is authorization_for_log  # http_digest's name for it is the same function


def test_private_keys_and_secret_named_fields_by_shape():
    pki = Pki()
    try:
        text = pki.device_ca.issue("t1").key_pem
    finally:
        pki.close()
    body = [line for line in text.splitlines() if not line.startswith("-----")]
    shown = redact(f"key: {text}")
    assert all(line not in shown for line in body) and "PRIVATE KEY-----" in shown
    document = ('{"cupsCred": "AAECAw==", "tcCred": "BAUG", "client_secret": "9f8e7d6c", '
                '"name": "gw1"}')
    assert redact(document) == (f'{{"cupsCred": "{MARK}", "tcCred": "{MARK}", '
                                f'"client_secret": "{MARK}", "name": "gw1"}}')
    soap = ("<Name>Device.ManagementServer.ConnectionRequestPassword</Name>"
            '<Value xsi:type="xsd:string">hunter22</Value>')
    assert "hunter22" not in redact(soap)
    assert redact("/token?access_token=abcdef123456&x=1") == f"/token?access_token={MARK}&x=1"
    # words that only look like credentials stay
    assert redact("a Basics Station, the basic station, the Digest scheme") == \
        "a Basics Station, the basic station, the Digest scheme"


def test_issued_secrets_by_value_in_text_and_bytes():
    secrets = SecretSet()
    hex_secret, password = "ab" * 24, "hunter2"
    secrets.add(hex_secret)
    secrets.add(password)
    assert redact(f"secret={hex_secret}; pw {password}!", secrets) == f"secret={MARK}; pw {MARK}!"
    assert redact(f"x{hex_secret}y", secrets) == f"x{MARK}y"  # glued to other characters too
    masked = secrets.scrub_bytes(b"\x00" + hex_secret.encode() + b"\x01")
    assert masked == b"\x00" + b"*" * 48 + b"\x01"  # same length: a binary file keeps its layout
    assert redact_bytes(b'{"tokens": {"admin": "' + hex_secret.encode() + b'"}}', [hex_secret]) == \
        b'{"tokens": {"admin": "<redacted>"}}'


def test_tokens_made_during_a_recorded_scenario_are_remembered():
    secrets = SecretSet()
    redaction.activate(secrets)
    try:
        token = new_token()  # every API token comes from here
        assert remember("hunter2") == "hunter2"
    finally:
        redaction.deactivate(secrets)
    assert token in secrets.tokens and "hunter2" in secrets.others
    assert remember("not kept") == "not kept" and "not kept" not in secrets.others


def test_log_records_are_redacted_before_any_handler():
    token = new_token()
    record = logging.LogRecord("aiohttp.server", logging.ERROR, __file__, 1,
                               "bad line %r", (f"Authorization: Bearer {token}\r",), None)
    assert RedactingFilter().filter(record)
    assert token not in record.getMessage() and MARK in record.getMessage()


def test_kept_files_are_scrubbed_in_place_sqlite_still_readable(tmp_path):
    token = new_token()
    secrets = SecretSet()
    secrets.add(token)
    database = tmp_path / "store.sqlite3"
    with sqlite3.connect(database) as db:
        db.execute("create table t (token text)")
        db.execute("insert into t values (?)", (token,))
    db.close()
    log = tmp_path / "server.log"
    log.write_text(f"issued {token}\nAuthorization: Bearer {token}\n")
    assert scrub_file(database, secrets) and scrub_file(log, secrets)
    assert token.encode() not in database.read_bytes() and token not in log.read_text()
    with sqlite3.connect(database) as db:
        assert db.execute("select token from t").fetchone()[0] == "*" * len(token)
    db.close()
    assert not scrub_file(log, secrets)  # nothing left to mask


def test_der_private_keys_in_binary_files_are_masked(tmp_path):
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    key = ec.generate_private_key(ec.SECP256R1())
    scalar = key.private_numbers().private_value.to_bytes(32, "big")
    for fmt in (serialization.PrivateFormat.TraditionalOpenSSL, serialization.PrivateFormat.PKCS8):
        path = tmp_path / "tc.key"
        path.write_bytes(key.private_bytes(serialization.Encoding.DER, fmt,
                                           serialization.NoEncryption()))
        assert scrub_file(path, None)
        assert scalar not in path.read_bytes() and len(path.read_bytes()) > 100


def test_a_fleets_thousands_of_secrets_are_found_in_one_pass_also_glued():
    secrets = SecretSet()
    tokens = [new_token() for _ in range(2000)]
    for token in tokens:
        secrets.add(token)
    text = f"a {tokens[5]} b cookie={tokens[7]}x {tokens[-1]}"
    assert redact(text, secrets) == f"a {MARK} b cookie={MARK}x {MARK}"
    data = b"\x00" + tokens[9].encode() + b"Z\x01"
    assert secrets.scrub_bytes(data) == b"\x00" + b"*" * len(tokens[9]) + b"Z\x01"

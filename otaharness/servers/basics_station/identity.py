"""Station credentials as a Basics Station stores them: trust, client certificate and key, or token.

:func:`issue_credentials` makes a station's credential set from the scenario PKI: ``trust`` is
the DER certificate of the CA our servers' certificates chain to; with ``auth="certificate"`` a
client certificate (DER, subject CN = the station EUI in 16 hex digits, issued by the station CA)
and its P-256 key in SEC1 DER (121 bytes, so its DER length is in the short form the station's
credential parser reads correctly; a PKCS#8 key would use the ``0x81`` form it mis-measures);
with ``auth="token"`` an ``Authorization: Bearer <token>`` header line (the token from the CSPRNG,
its digest registered for the station). The parts are what the station's ``cups.trust`` /
``cups.crt`` / ``cups.key`` (and ``tc.*``) files hold, byte for byte, and what a CUPS credential
blob carries (:class:`Credentials`).
"""

from __future__ import annotations

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from otaharness.protocols.basics_station import (
    Credentials,
    format_eui,
    station_auth_header_lines,
)
from otaharness.runtime.pki import CertificateAuthority, Issued, Pki
from otaharness.servers.basics_station.auth import token_digest
from otaharness.servers.basics_station.registry import StationRegistry
from otaharness.servers.http_service import new_token

AUTH_MODES = ("certificate", "token")


def der(certificate: x509.Certificate) -> bytes:
    return certificate.public_bytes(serialization.Encoding.DER)


def sec1_der_key(key_pem: str) -> bytes:
    key = serialization.load_pem_private_key(key_pem.encode(), password=None)
    return key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.TraditionalOpenSSL,
                             serialization.NoEncryption())


def certificate_credentials(trust: x509.Certificate, issued: Issued) -> Credentials:
    return Credentials(trust=der(trust), certificate=der(issued.certificate), key=sec1_der_key(issued.key_pem))


def station_certificate(ca: CertificateAuthority, eui: int, *, expired: bool = False) -> Issued:
    """A client certificate bound to station ``eui`` (its CN), issued by ``ca``."""
    issue = ca.issue_expired if expired else ca.issue
    return issue(format_eui(eui, ""), client=True)


def token_header(token: str) -> bytes:
    return f"Authorization: Bearer {token}\r\n".encode("ascii")


def bearer_tokens(credentials: Credentials) -> list[str]:
    """The bearer tokens in a credential set's token (header lines), as the station sends them."""
    lines = station_auth_header_lines(credentials.auth_token or b"") or b""
    tokens = []
    for line in lines.decode("latin-1").split("\r\n"):
        name, _, value = line.partition(": ")
        scheme, _, token = value.strip().partition(" ")
        if name.lower() == "authorization" and scheme.lower() == "bearer" and token.strip():
            tokens.append(token.strip())
    return tokens


def issue_credentials(pki: Pki, registry: StationRegistry, eui: int, auth: str) -> Credentials:
    """A new credential set for station ``eui`` (a token is registered for it at once)."""
    if auth == "certificate":
        return certificate_credentials(pki.server_ca.certificate, station_certificate(pki.device_ca, eui))
    if auth == "token":
        token = new_token()
        registry.add_token(eui, token_digest(token))
        return Credentials(trust=der(pki.server_ca.certificate), auth_token=token_header(token))
    raise ValueError(f"auth must be one of {', '.join(AUTH_MODES)}, not {auth!r}")


def register_blob_tokens(registry: StationRegistry, eui: int, blob: bytes) -> None:
    """Accept the bearer tokens a twin's credential blob hands the station (CUPS will send it)."""
    if not blob:
        return
    for token in bearer_tokens(Credentials.decode(blob)):
        registry.add_token(eui, token_digest(token))

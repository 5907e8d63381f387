"""The station's TLS client, as basicstation 2.0.6 sets it up (``conn_setup_tls``, ``src/net.c``;
``src/tls.c``) on mbedTLS 2.28.

For a ``https://`` / ``wss://`` URI the station reads the credential set it is using
(:func:`station_tls`):

=================================  ==========================================================
files (an empty file is absent)    what the station does
=================================  ==========================================================
no ``.trust``                      gives up: "URI requires TLS but no trust configured"
``.trust`` only (or no ``.key``)   server authentication only
``.trust`` + ``.key``, no ``.crt``  the key file holds HTTP header lines (a token), sent with
                                   every request; malformed lines: gives up
``.trust`` + ``.crt`` + ``.key``   a TLS client certificate
=================================  ==========================================================

Files may be PEM or DER (mbedTLS parses both). The server certificate must chain to the trust
and be valid now, and (``TLS_SNI``, on by default) name the URI's host: mbedTLS 2.28 compares
the host text with the certificate's subject alternative names as text — an ``iPAddress`` entry
never matches, so ``https://127.0.0.1`` needs ``DNS:127.0.0.1`` — or, without that extension,
with its common name; ``*.`` wildcards cover one label (:func:`mbedtls_names_match`). mbedTLS 2.28
speaks TLS 1.2 only, and so does this client.
"""

from __future__ import annotations

import ssl
import tempfile
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import NameOID

from otaharness.emulators.basics_station.home import CredentialSet, StationHome
from otaharness.protocols.basics_station import station_auth_header_lines


class TlsSetupError(Exception):
    """The station cannot set up TLS with this credential set (it logs and fails the session)."""


def _casefold_equal(left: str, right: str) -> bool:
    return len(left) == len(right) and left.lower() == right.lower()


def _name_matches(pattern: str, host: str) -> bool:
    """``x509_crt_check_cn``: equal ignoring case, or ``*.rest`` matching host's first-dot tail."""
    if _casefold_equal(pattern, host):
        return True
    if len(pattern) > 2 and pattern.startswith("*."):
        dot = host.find(".")
        return dot > 0 and _casefold_equal(host[dot:], pattern[1:])
    return False


def mbedtls_names_match(certificate: x509.Certificate, host: str) -> bool:
    """``x509_crt_verify_name`` of mbedTLS 2.28: SAN entries compared as text (IP entries never
    match a host text), the common names only when the certificate has no SAN extension."""
    try:
        alternative_names = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return any(_name_matches(str(attribute.value), host)
                   for attribute in certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME))
    texts = [*alternative_names.get_values_for_type(x509.DNSName),
             *alternative_names.get_values_for_type(x509.RFC822Name),
             *alternative_names.get_values_for_type(x509.UniformResourceIdentifier)]
    return any(_name_matches(text, host) for text in texts)


class MbedTlsHostCheck(ssl.SSLObject):
    """An SSLObject that, once the handshake is through, checks the server's name the mbedTLS
    way; a mismatch fails the handshake before any application byte (a token) is sent."""

    def do_handshake(self) -> None:
        super().do_handshake()
        host = self.server_hostname
        der = self.getpeercert(binary_form=True)
        if host and der and not mbedtls_names_match(x509.load_der_x509_certificate(der), host):
            raise ssl.SSLCertVerificationError(
                f"server certificate does not name {host!r} (mbedTLS 2.28 ignores iPAddress names)")


def _certificate_bytes(content: bytes) -> bytes:
    """DER of a PEM or DER certificate file (raises ValueError)."""
    if content[:1] == b"-":
        return x509.load_pem_x509_certificate(content).public_bytes(serialization.Encoding.DER)
    return x509.load_der_x509_certificate(content).public_bytes(serialization.Encoding.DER)


def _trust_data(content: bytes) -> bytes | str:
    if content[:1] == b"-":
        return content.decode("ascii")
    return _certificate_bytes(content)


def _load_client_certificate(context: ssl.SSLContext, certificate: bytes, key: bytes) -> None:
    """Python's ssl takes PEM files only: convert in a private folder removed right after."""
    loaded_certificate = (x509.load_pem_x509_certificate(certificate) if certificate[:1] == b"-"
                          else x509.load_der_x509_certificate(certificate))
    loaded_key = (serialization.load_pem_private_key(key, None) if key[:1] == b"-"
                  else serialization.load_der_private_key(key, None))
    with tempfile.TemporaryDirectory(prefix="station-tls-") as folder:
        cert_file, key_file = Path(folder) / "client.crt", Path(folder) / "client.key"
        cert_file.write_bytes(loaded_certificate.public_bytes(serialization.Encoding.PEM))
        key_file.touch(0o600)
        key_file.write_bytes(loaded_key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                      serialization.NoEncryption()))
        context.load_cert_chain(cert_file, key_file)


def station_tls(home: StationHome, category: str, credential_set: CredentialSet,
                keylog: str | None = None) -> tuple[ssl.SSLContext, bytes]:
    """The TLS context and the token header lines (b"" without token) of a credential set."""
    label = f"{category}{'' if credential_set == CredentialSet.REG else '-' + credential_set.name.lower()}"
    trust, certificate, key = home.credential_files(category, credential_set)
    if not trust:
        raise TlsSetupError(f"{label} URI requires TLS but no trust configured")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.minimum_version = context.maximum_version = ssl.TLSVersion.TLSv1_2
    context.check_hostname = False  # checked the mbedTLS way by MbedTlsHostCheck
    context.verify_mode = ssl.CERT_REQUIRED
    context.sslobject_class = MbedTlsHostCheck
    if keylog is not None:
        context.keylog_filename = keylog
    try:
        context.load_verify_locations(cadata=_trust_data(trust))
    except (ValueError, ssl.SSLError) as error:
        raise TlsSetupError(f"{label} trust certificates rejected by MBedTLS: {error}") from error
    headers = b""
    if key and not certificate:
        lines = station_auth_header_lines(key)
        if lines is None:
            raise TlsSetupError(f"{label} contains malformed auth token - expecting: {{header: value{{\\r\\n|\\n}}}}*")
        headers = lines
    elif key and certificate:
        try:
            _load_client_certificate(context, certificate, key)
        except (ValueError, TypeError, ssl.SSLError) as error:
            raise TlsSetupError(f"{label} key/cert rejected by MBedTLS: {error}") from error
    return context, headers

"""The scenario's PKI: certificate authorities, server and device certificates, TLS contexts and
the TLS key log — one per scenario and one per ``serve`` run, used by every flow.

Three authorities, each with an ECDSA P-256 key (AWS IoT accepts P-256 device keys; P-256
handshakes cost a fraction of RSA-2048's, which matters for fleets):

* ``server_ca`` stands in for Amazon Root CA 1: it signs the certificates our servers present
  (MQTT gateway, HTTPS endpoints) with SANs for 127.0.0.1, localhost and every host name a flow
  serves (``*.s3.amazonaws.com``, ``*.iot.us-east-1.amazonaws.com``, ...). Its PEM file is the
  ``ca`` a client trusts.
* ``device_ca`` stands in for the CA behind AWS IoT's ``CreateKeysAndCertificate``: device
  certificates issued by the account.
* ``rogue_ca`` is unrelated to both, for the negative cases (a server or device certificate that
  chains to nothing the peer trusts).

Every key comes from the operating system's CSPRNG (``cryptography`` asks OpenSSL), never from
the scenario seed: a server a real device talks to must not hand out keys another run can guess,
and nothing about a replay depends on key bytes (TLS handshakes are randomised anyway).

Validity is on the *real* clock, because the TLS library checks it against the real clock while
scenarios run on a virtual one (time-machine moves Python's clocks, not OpenSSL's): expired or
not-yet-valid certificates are issued that way, never expired by virtual time passing.

Private keys live only in the PKI's private folder (mode 0700, a temp folder removed at close),
never in logs, reports or artifacts. ``serve --state-dir DIR`` keeps the two CAs (certificates
and keys) in ``DIR/pki`` (0700, keys 0600) and loads them at the next start, so what they issued
(station and device certificates kept in the state) still verifies after a restart. The key log (NSS ``SSLKEYLOGFILE`` format, written by
Python's ``ssl`` for every context made here) holds per-session secrets, not private keys; it is
what lets Wireshark decrypt a scenario's capture.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import ipaddress
import os
import shutil
import ssl
import tempfile
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

LOCAL_NAMES = ("127.0.0.1", "localhost")
DEFAULT_LIFETIME = dt.timedelta(days=365)
# Issued "already expired" / "not yet valid": far enough from now that clock skew cannot matter.
EXPIRED_BY = dt.timedelta(days=2)


def real_now() -> dt.datetime:
    """The real UTC time, also inside a scenario whose Python clocks follow the virtual clock."""
    from time_machine import escape_hatch

    if escape_hatch.is_travelling():
        return escape_hatch.datetime.datetime.now(dt.timezone.utc)
    return dt.datetime.now(dt.timezone.utc)


def certificate_id(certificate: x509.Certificate | bytes | str) -> str:
    """AWS IoT's certificate id: the SHA-256 of the certificate's DER bytes, in hex."""
    if isinstance(certificate, str):
        certificate = x509.load_pem_x509_certificate(certificate.encode())
    der = certificate if isinstance(certificate, bytes) else certificate.public_bytes(
        serialization.Encoding.DER)
    return hashlib.sha256(der).hexdigest()


def _pem(certificate: x509.Certificate) -> str:
    return certificate.public_bytes(serialization.Encoding.PEM).decode()


def _key_pem(key: ec.EllipticCurvePrivateKey) -> str:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption()).decode()


def _subject_alternative_names(names: Iterable[str]) -> x509.SubjectAlternativeName:
    entries: list[x509.GeneralName] = []
    for name in dict.fromkeys(names):
        try:
            entries.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            pass
        # An address also as a DNS name: mbedTLS 2.x clients (LoRa Basics Station) ignore
        # iPAddress entries and match the host text against dNSName entries only.
        entries.append(x509.DNSName(name))
    return x509.SubjectAlternativeName(entries)


@dataclass(frozen=True)
class Issued:
    """A certificate with its private key (PEM text). ``repr`` leaves the key out."""

    certificate: x509.Certificate
    key_pem: str

    @property
    def certificate_pem(self) -> str:
        return _pem(self.certificate)

    @property
    def certificate_id(self) -> str:
        return certificate_id(self.certificate)

    def __repr__(self) -> str:
        return f"<Issued {self.certificate.subject.rfc4514_string()} id={self.certificate_id[:12]}>"


class CertificateAuthority:
    """A self-signed CA that issues server and client certificates."""

    def __init__(self, common_name: str, *, not_before: dt.datetime | None = None,
                 not_after: dt.datetime | None = None) -> None:
        self.common_name = common_name
        self._key = ec.generate_private_key(ec.SECP256R1())
        now = real_now()
        name = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "otaharness"),
                          x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
        self.certificate = (
            x509.CertificateBuilder()
            .subject_name(name).issuer_name(name)
            .public_key(self._key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(not_before or now - dt.timedelta(days=1))
            .not_valid_after(not_after or now + dt.timedelta(days=3650))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                         content_commitment=False, key_encipherment=False,
                                         data_encipherment=False, key_agreement=False,
                                         encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(self._key.public_key()),
                           critical=False)
            .sign(self._key, hashes.SHA256())
        )

    @classmethod
    def load(cls, certificate_file: Path, key_file: Path) -> CertificateAuthority:
        """An authority stored by :meth:`store`."""
        authority = cls.__new__(cls)
        authority.certificate = x509.load_pem_x509_certificate(certificate_file.read_bytes())
        key = serialization.load_pem_private_key(key_file.read_bytes(), password=None)
        if not isinstance(key, ec.EllipticCurvePrivateKey) or (
                key.public_key() != authority.certificate.public_key()):
            raise ValueError(f"{key_file} is not the key of {certificate_file}")
        authority._key = key
        names = authority.certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
        authority.common_name = str(names[0].value) if names else ""
        return authority

    def store(self, certificate_file: Path, key_file: Path) -> None:
        """Key (0600) then certificate, each written whole (a kill mid-write leaves the old file
        or none): a certificate on disk always has its key beside it."""
        _replace_whole(key_file, _key_pem(self._key), 0o600)
        _replace_whole(certificate_file, self.certificate_pem, 0o644)

    @property
    def certificate_pem(self) -> str:
        return _pem(self.certificate)

    def __repr__(self) -> str:
        return f"<CertificateAuthority {self.common_name!r}>"

    def issue(self, common_name: str, *, names: Iterable[str] = (), server: bool = False,
              client: bool = True, not_before: dt.datetime | None = None,
              not_after: dt.datetime | None = None,
              public_key: ec.EllipticCurvePublicKey | None = None) -> Issued:
        """A leaf certificate with a fresh key (or for ``public_key``, a CSR's, with no key)."""
        key = None if public_key is not None else ec.generate_private_key(ec.SECP256R1())
        subject_key = public_key if public_key is not None else key.public_key()  # type: ignore[union-attr]
        now = real_now()
        usages = ([ExtendedKeyUsageOID.SERVER_AUTH] if server else []) + (
            [ExtendedKeyUsageOID.CLIENT_AUTH] if client else [])
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
            .issuer_name(self.certificate.subject)
            .public_key(subject_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(not_before or now - dt.timedelta(hours=1))
            .not_valid_after(not_after or now + DEFAULT_LIFETIME)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
                self._key.public_key()), critical=False)
        )
        names = list(names)
        if names:
            builder = builder.add_extension(_subject_alternative_names(names), critical=False)
        certificate = builder.sign(self._key, hashes.SHA256())
        return Issued(certificate, _key_pem(key) if key is not None else "")

    def issue_expired(self, common_name: str, **kwargs) -> Issued:
        now = real_now()
        return self.issue(common_name, not_before=now - DEFAULT_LIFETIME,
                          not_after=now - EXPIRED_BY, **kwargs)

    def issue_not_yet_valid(self, common_name: str, **kwargs) -> Issued:
        now = real_now()
        return self.issue(common_name, not_before=now + EXPIRED_BY,
                          not_after=now + DEFAULT_LIFETIME, **kwargs)


def _replace_whole(path: Path, text: str, mode: int) -> None:
    temporary = path.with_name(f".{path.name}.new")
    with os.fdopen(os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode), "w") as file:
        file.write(text)
        file.flush()
        os.fsync(file.fileno())
    os.replace(temporary, path)


class Pki:
    """The CAs, issued certificates as files, and TLS contexts of one scenario or serve run.

    ``directory`` (default: a new private temp folder) holds the PEM files; :meth:`close` removes
    it when the PKI made it. ``keylog`` is where every context made here logs session secrets
    (None: no key log). ``authorities``: a folder where the server and device CAs are kept
    across runs (loaded when stored there, else made and stored); None: new ones each time."""

    def __init__(self, directory: Path | None = None, *, keylog: Path | None = None,
                 authorities: Path | None = None) -> None:
        self._owns_directory = directory is None
        self.directory = Path(directory or tempfile.mkdtemp(prefix="otaharness-pki-"))
        self.directory.mkdir(parents=True, exist_ok=True)
        os.chmod(self.directory, 0o700)
        self.keylog = keylog
        self._lock = threading.Lock()
        self._files: dict[str, Path] = {}
        self._server_identities: dict[tuple[str, ...], tuple[Path, Path]] = {}
        self.server_ca = _authority(
            "otaharness Root CA 1 (stands in for Amazon Root CA 1)", authorities, "server-ca")
        self.device_ca = _authority("otaharness AWS IoT device CA", authorities, "device-ca")
        self._rogue_ca: CertificateAuthority | None = None

    def __repr__(self) -> str:
        return f"<Pki {self.directory}>"

    @property
    def rogue_ca(self) -> CertificateAuthority:
        """An authority nobody trusts (made on first use)."""
        if self._rogue_ca is None:
            self._rogue_ca = CertificateAuthority("otaharness unrelated CA")
        return self._rogue_ca

    # -- files -------------------------------------------------------------------------------------
    def write(self, name: str, text: str, *, secret: bool = False) -> Path:
        """Write ``text`` to the PKI folder as ``name`` (0600 for secrets) and return the path."""
        path = self.directory / name
        with self._lock:
            flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC
            with os.fdopen(os.open(path, flags, 0o600 if secret else 0o644), "w") as file:
                file.write(text)
            self._files[name] = path
        return path

    @property
    def ca_file(self) -> Path:
        """The PEM file of the CA our servers' certificates chain to: what clients trust."""
        return self.write("server-ca.pem", self.server_ca.certificate_pem)

    def write_identity(self, name: str, issued: Issued) -> tuple[Path, Path]:
        """The certificate and key of ``issued`` as files ``<name>.crt`` and ``<name>.key``."""
        return (self.write(f"{name}.crt", issued.certificate_pem),
                self.write(f"{name}.key", issued.key_pem, secret=True))

    def server_identity(self, names: Iterable[str]) -> tuple[Path, Path]:
        """Certificate and key files for a server answering to ``names`` (plus 127.0.0.1 and
        localhost), issued once per set of names."""
        all_names = tuple(dict.fromkeys([*names, *LOCAL_NAMES]))
        found = self._server_identities.get(all_names)
        if found is None:
            issued = self.server_ca.issue(all_names[0], names=all_names, server=True, client=False)
            found = self.write_identity(f"server-{len(self._server_identities) + 1}", issued)
            self._server_identities[all_names] = found
        return found

    # -- TLS contexts ------------------------------------------------------------------------------
    def server_context(self, names: Iterable[str], *, client_cas: Iterable[str] | None = None,
                       require_client_certificate: bool = False) -> ssl.SSLContext:
        """A server context presenting a certificate for ``names``; with ``client_cas`` (PEM
        texts), client certificates chaining to them are verified (required or optional)."""
        tune_asyncio_tls()
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        certificate, key = self.server_identity(names)
        context.load_cert_chain(certificate, key)
        cas = list(client_cas or [])
        if cas:
            context.load_verify_locations(cadata="\n".join(cas))
            context.verify_mode = ssl.CERT_REQUIRED if require_client_certificate else ssl.CERT_OPTIONAL
        self._log_keys(context)
        return context

    def client_context(self, *, ca_file: Path | None = None, certificate: Path | None = None,
                       key: Path | None = None) -> ssl.SSLContext:
        """A client context trusting ``ca_file`` (default: our server CA), with a client
        certificate when given; host names are checked."""
        return client_context(ca_file or self.ca_file, certificate, key, keylog=self.keylog)

    def _log_keys(self, context: ssl.SSLContext) -> None:
        if self.keylog is not None:
            context.keylog_filename = str(self.keylog)

    def close(self) -> None:
        if self._owns_directory:
            shutil.rmtree(self.directory, ignore_errors=True)


def _authority(common_name: str, folder: Path | None, stem: str) -> CertificateAuthority:
    """A new authority, or with ``folder`` the one stored there as ``<stem>.crt``/``.key``."""
    if folder is None:
        return CertificateAuthority(common_name)
    folder.mkdir(parents=True, exist_ok=True)
    os.chmod(folder, 0o700)
    certificate_file, key_file = folder / f"{stem}.crt", folder / f"{stem}.key"
    if certificate_file.exists():  # stored key first, so its key is there too
        return CertificateAuthority.load(certificate_file, key_file)
    authority = CertificateAuthority(common_name)
    authority.store(certificate_file, key_file)
    return authority


class ClientTrust:
    """The client-certificate trust of a server context, growing as CAs (or single device
    certificates, accepted as partial chains) are registered; each PEM is loaded once."""

    def __init__(self, context: ssl.SSLContext) -> None:
        self.context = context
        context.verify_flags |= ssl.VERIFY_X509_PARTIAL_CHAIN
        self._loaded: set[str] = set()

    def add(self, pems: Iterable[str]) -> None:
        new = [pem for pem in pems if pem not in self._loaded]
        if new:
            self.context.load_verify_locations(cadata="\n".join(new))
            self._loaded.update(new)


def client_context(ca_file: Path | str | None, certificate: Path | str | None = None,
                   key: Path | str | None = None, *, keylog: Path | str | None = None
                   ) -> ssl.SSLContext:
    """A device's TLS context: verifies the server against ``ca_file`` (None: the system's trust
    store, as for a real AWS endpoint) and the host name; presents ``certificate``/``key``."""
    tune_asyncio_tls()
    context = ssl.create_default_context(cafile=str(ca_file) if ca_file else None)
    if certificate is not None:
        context.load_cert_chain(str(certificate), str(key) if key is not None else None)
    if keylog is not None:
        context.keylog_filename = str(keylog)
    return context


def tls_failure_reason(error: OSError) -> str:
    """The TLS library's own words for a failed handshake: 'certificate verify failed: certificate
    has expired', 'tlsv13 alert certificate required', 'sslv3 alert certificate revoked', ... —
    one wording for every device kind (MQTT, HTTPS) and what the feature files check."""
    if isinstance(error, ssl.SSLCertVerificationError):
        return f"certificate verify failed: {error.verify_message}"
    if isinstance(error, ssl.SSLError) and error.reason:
        return error.reason.lower().replace("_", " ")
    return str(error) or type(error).__name__


# asyncio reads TLS through a buffer of this many bytes per connection (CPython's default is
# 256 KiB, zero-filled, so resident: a fleet of thousands of TLS connections paid 0.25 MiB each).
# A TLS record carries at most 16 KiB of data (RFC 8446 §5.1), so 32 KiB reads lose nothing.
TLS_READ_BUFFER = 32 * 1024


def tune_asyncio_tls() -> None:
    """Process-wide settings for asyncio's TLS (both installed once): the read buffer above, and
    the handshake alert flush of :func:`send_handshake_alerts`."""
    from asyncio import sslproto

    sslproto.SSLProtocol.max_size = min(sslproto.SSLProtocol.max_size, TLS_READ_BUFFER)
    send_handshake_alerts()


def send_handshake_alerts() -> None:
    """Make asyncio's TLS servers send the alert a failed handshake produces.

    CPython's asyncio (sslproto ``SSLProtocol._do_handshake``, 3.11) drops the connection when
    the handshake fails without writing the alert OpenSSL has queued, so a client refused for an
    expired or unknown certificate sees only the connection close; real TLS servers (AWS IoT's
    among them) send the alert (``certificate expired``, ``unknown ca``, ...). Installed once,
    process-wide; it changes nothing but that flush."""
    from asyncio import sslproto

    if getattr(sslproto.SSLProtocol._do_handshake, "sends_alerts", False):
        return

    def do_handshake(self) -> None:
        try:
            self._sslobj.do_handshake()
        except (ssl.SSLWantReadError, ssl.SSLWantWriteError):
            self._process_outgoing()
        except ssl.SSLError as error:
            self._process_outgoing()  # the alert, then the failure as before
            self._on_handshake_complete(error)
        else:
            self._on_handshake_complete(None)

    do_handshake.sends_alerts = True  # type: ignore[attr-defined]
    sslproto.SSLProtocol._do_handshake = do_handshake

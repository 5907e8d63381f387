"""Who is on a station connection: its TLS client certificate or its token, bound to one EUI.

A LoRa Basics Station (2.0.6, ``conn_setup_tls`` in ``src/net.c``) authenticates to CUPS and the
LNS with the files of its credential set: ``*.trust`` alone (server authentication only),
``*.trust`` + ``*.crt`` + ``*.key`` (a TLS client certificate), or ``*.trust`` + a ``*.key`` holding
HTTP header lines (a token, e.g. ``Authorization: Bearer …``), which it sends with every HTTP
request and websocket upgrade. Tokens travel only over TLS.

Here a station is identified by

* a client certificate that chains to the station CA (the TLS layer verifies chain and validity:
  a certificate of another CA or an expired one never completes the handshake) whose subject
  common name is the station EUI (any EUI text :func:`parse_eui` reads: ``0016C001FF10A235``,
  ``00-16-…``, ID6), as ChirpStack's Basics Station backend binds it; or
* an ``Authorization: Bearer <token>`` header with a token issued for that station (by
  ``POST /admin/stations/{eui}/credentials``, or carried in the credential blobs of its twin);
  the registry keeps only the tokens' SHA-256 digests.

A certificate, when presented, decides (a station never sends both). The identity must be the
station the request is about (``router`` of a CUPS request or of discovery, the EUI of the data
path): station A's credentials never reach station B's update or router path.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass

from aiohttp import web
from cryptography import x509
from cryptography.x509.oid import NameOID

from otaharness.protocols.basics_station import (
    BasicsStationCodecError,
    format_eui,
    parse_eui,
)
from otaharness.servers.basics_station.registry import StationRegistry
from otaharness.servers.http_service import presented_bearer_token

log = logging.getLogger(__name__)


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogateescape")).hexdigest()


@dataclass(frozen=True)
class StationIdentity:
    eui: int
    by: str  # "certificate" or "token"
    which: str = ""  # the certificate's serial number (hex), or the first 16 hex digits of the token's digest

    @property
    def detail(self) -> str:
        """E.g. ``certificate 3f0a…`` / ``token 9c1d…``: which credential, never the secret."""
        return f"{self.by} {self.which}"


@dataclass(frozen=True)
class Refusal:
    status: int  # 401: no usable credential; 403: the credential of another station
    reason: str


def peer_certificate(request: web.Request) -> x509.Certificate | None:
    """The verified client certificate of the request's TLS connection, if one was presented."""
    transport = request.transport
    ssl_object = transport.get_extra_info("ssl_object") if transport is not None else None
    der = ssl_object.getpeercert(binary_form=True) if ssl_object is not None else None
    return x509.load_der_x509_certificate(der) if der else None


def certificate_eui(certificate: x509.Certificate) -> int | None:
    names = certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    if len(names) != 1:
        return None
    try:
        return parse_eui(str(names[0].value))
    except BasicsStationCodecError:
        return None


class StationAuthenticator:
    """Identifies station requests; with ``required`` False (plain HTTP/WS) everyone passes."""

    def __init__(self, registry: StationRegistry, *, required: bool) -> None:
        self.registry = registry
        self.required = required

    def identify(self, request: web.Request) -> StationIdentity | Refusal:
        certificate = peer_certificate(request)
        if certificate is not None:
            eui = certificate_eui(certificate)
            if eui is None:
                return Refusal(403, "the client certificate's common name is not a station EUI")
            return StationIdentity(eui, "certificate", f"{certificate.serial_number:x}")
        token = presented_bearer_token(request)
        if token is None:
            return Refusal(401, "station authentication required: a client certificate or an "
                                "Authorization: Bearer token")
        digest = token_digest(token)
        owner = self.registry.token_owner(digest)
        if owner is None:
            return Refusal(401, "the station token is not valid")
        return StationIdentity(owner, "token", digest[:16])

    def identity_name(self, request: web.Request) -> str:
        """Which credential an accepted request came with (:attr:`StationIdentity.detail`; ""
        without TLS)."""
        identity = self.identify(request) if self.required else None
        return identity.detail if isinstance(identity, StationIdentity) else ""

    def check(self, request: web.Request, eui: int | None = None) -> Refusal | None:
        """None when the request may act for station ``eui`` (None: for some station, checked
        again once the EUI is known); else why not."""
        if not self.required:
            return None
        identity = self.identify(request)
        if isinstance(identity, Refusal):
            return identity
        if eui is not None and identity.eui != eui:
            return Refusal(403, f"the {identity.by} is for station {format_eui(identity.eui)}, "
                                f"not {format_eui(eui)}")
        return None

    def refuse(self, refusal: Refusal, what: str) -> web.Response:
        log.warning("%s refused (%d): %s", what, refusal.status, refusal.reason)
        headers = {"WWW-Authenticate": 'Bearer realm="basics-station"'} if refusal.status == 401 else None
        return web.Response(status=refusal.status, text=refusal.reason + "\n", headers=headers)

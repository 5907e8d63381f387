"""Who a TLS client is, as AWS IoT decides it: the certificate it presented, registered and ACTIVE
in the account, and the things attached to it. A CA set INACTIVE does not stop the certificates
already registered under it (AWS keeps them working until each is revoked; docs/aws-iot-identity.md).

Read from moto's IoT backend (certificates, CA certificates, thing principals), so that the
control plane calls a user makes (`create_keys_and_certificate`, `register_certificate`,
`update_certificate`, `attach_thing_principal`, ...) are what the gateways enforce. The
certificate id is AWS's: SHA-256 of the certificate's DER bytes.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass

from moto.iot.models import IoTBackend

ACTIVE = "ACTIVE"


class IdentityRefused(Exception):
    """The certificate does not identify an AWS IoT principal allowed to connect now."""


@dataclass(frozen=True)
class Principal:
    certificate_id: str
    certificate_arn: str | None  # None for a plain listener's stand-in principal
    service: bool = False  # may use every topic (identity not enforced)

    def describe(self) -> str:
        return "no identity (plain MQTT)" if self.service else f"certificate {self.certificate_id[:12]}"


class Identities:
    def __init__(self, iot_backend: Callable[[], IoTBackend]) -> None:
        self._backend = iot_backend

    def authenticate(self, der: bytes | None) -> Principal:
        if not der:
            raise IdentityRefused("no client certificate")
        return self._principal(hashlib.sha256(der).hexdigest())

    def authenticate_again(self, principal: Principal) -> Principal:
        """The same check for a connection already open (after a status change)."""
        return self._principal(principal.certificate_id)

    def _principal(self, certificate_id: str) -> Principal:
        backend = self._backend()
        record = backend.certificates.get(certificate_id)
        if record is None:
            raise IdentityRefused(f"certificate {certificate_id[:12]} is not registered")
        if record.status != ACTIVE:
            raise IdentityRefused(f"certificate {certificate_id[:12]} is {record.status}")
        return Principal(certificate_id, record.arn)

    def thing_of(self, principal: Principal, client_id: str) -> str | None:
        """The thing this connection is (``iot:Connection.Thing.ThingName``): the client id, when
        a thing of that name is attached to the certificate; else None."""
        if principal.certificate_arn is None:
            return None
        return client_id if (principal.certificate_arn, client_id) in self._backend().principal_things else None

    def trust_anchors(self) -> list[str]:
        """PEM texts a TLS server must accept client chains to: every CA registered in the
        account, and every device certificate registered without its CA (AWS's multi-account
        registration; accepted as a partial chain). Statuses are checked after the handshake."""
        backend = self._backend()
        anchors = [ca.certificate_pem for ca in list(backend.ca_certificates.values())]
        anchors += [record.certificate_pem for record in list(backend.certificates.values())
                    if getattr(record, "registered_without_ca", False)]
        return anchors

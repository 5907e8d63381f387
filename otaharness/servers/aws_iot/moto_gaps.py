"""Every place where otaharness changes moto's behaviour (moto pinned at 5.2.5).

moto keeps things, jobs, documents, thing groups and shadows; where its IoT backend differs from
AWS on the FOTA flow's path (shared/protocols/aws-iot-jobs.md §1.4, "Design consequences" 9), the
methods below replace or wrap moto's, each naming the gap it closes. Two more answer as moto does
at a cost that does not grow with the fleet (`describe_thing`, `_get_principal`). Job executions are delegated
to `JobsService`, so the control plane and both data planes see one state. `apply()` installs the
patches (class attributes: they survive moto's reset), `remove()` restores moto. One is S3's: a
bucket POST without its `key` field is moto's 500, S3's 400.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from moto.core.exceptions import JsonRESTError
from moto.iot.exceptions import (
    InvalidRequestException,
    InvalidStateTransitionException,
    IoTClientError,
    ResourceAlreadyExistsException,
    ResourceNotFoundException,
)
from moto.iot.models import FakeCertificate, FakeJob, FakeThing, IoTBackend
from moto.iotdata.exceptions import ConflictException
from moto.iotdata.models import FakeShadow, IoTDataPlaneBackend
from moto.s3.exceptions import InvalidArgumentError
from moto.s3.responses import S3Response
from moto.utilities.utils import get_partition

from otaharness.protocols.aws_iot_jobs import JobsRejection, RejectedCode
from otaharness.runtime.pki import CertificateAuthority, certificate_id
from otaharness.servers.aws_iot.jobs import JobsService

_service: JobsService | None = None
_device_ca: CertificateAuthority | None = None
_on_identity_change: Callable[[bool], None] | None = None
# update-certificate's newStatus values (AWS IoT API reference, UpdateCertificate).
CERTIFICATE_STATUSES = {"ACTIVE", "INACTIVE", "REVOKED", "PENDING_TRANSFER", "REGISTER_INACTIVE",
                        "PENDING_ACTIVATION"}
_originals: dict[tuple[type, str], Callable[..., Any]] = {}


def _jobs() -> JobsService:
    if _service is None:
        raise RuntimeError("moto_gaps patches are installed without a JobsService")
    return _service


def _original(cls: type, name: str) -> Callable[..., Any]:
    return _originals[(cls, name)]


def _control_plane_error(rejection: JobsRejection) -> JsonRESTError:
    if rejection.code is RejectedCode.RESOURCE_NOT_FOUND:
        return ResourceNotFoundException(rejection.message)
    if rejection.code is RejectedCode.INVALID_STATE_TRANSITION:
        return InvalidStateTransitionException(rejection.message)
    return InvalidRequestException(rejection.message)


@contextmanager
def _locked_control_plane() -> Iterator[JobsService]:
    """Serialise with the data planes; service errors become moto's REST exceptions."""
    service = _jobs()
    try:
        with service.transaction():
            yield service
    except JobsRejection as rejection:
        raise _control_plane_error(rejection) from None


# --------------------------------------------------------------------------------------------
# IoT control plane
# --------------------------------------------------------------------------------------------


def create_job(self: IoTBackend, job_id: str, targets: list[str], **kwargs: Any) -> tuple[str, str, str]:
    """Gaps: an existing jobId is silently overwritten (AWS: ResourceAlreadyExistsException);
    executions start at versionNumber/executionNumber 123 instead of 1; a thing-group target
    yields one execution keyed by the group name instead of one per member thing."""
    with _locked_control_plane() as service:
        if job_id in self.jobs:
            existing = self.jobs[job_id]
            raise ResourceAlreadyExistsException(
                f"Job with id {job_id} already exists", job_id, existing.job_arn
            )
        things = service.resolve_targets(self, targets or [])
        result = _original(IoTBackend, "create_job")(self, job_id=job_id, targets=targets, **kwargs)
        service.queue_job(self, self.jobs[job_id], things)
        return result


def cancel_job(self: IoTBackend, job_id: str, reason_code: str, comment: str, force: bool) -> FakeJob:
    """Gaps: a missing job is a KeyError (HTTP 500); executions are not cancelled with the job;
    the status is set to CANCELED before any check."""
    with _locked_control_plane() as service:
        return service.cancel_job(self, job_id, reason_code, comment, bool(force))


def delete_job(self: IoTBackend, job_id: str, force: bool) -> None:
    """Gaps: a missing job is a KeyError (HTTP 500); the job's executions survive it."""
    with _locked_control_plane() as service:
        service.delete_job(self, job_id, bool(force))


def get_job_document(self: IoTBackend, job_id: str) -> FakeJob:
    """Gap: a missing job is a KeyError (HTTP 500) instead of ResourceNotFoundException."""
    job = self.jobs.get(job_id)
    if job is None:
        raise ResourceNotFoundException(f"Job {job_id} not found")
    return job


def cancel_job_execution(self: IoTBackend, job_id: str, thing_name: str, force: bool) -> None:
    """Gaps: a missing execution is a KeyError (HTTP 500); a terminal execution can be
    cancelled again; no notify/notify-next follows."""
    with _locked_control_plane() as service:
        service.cancel_execution(self, job_id, thing_name, bool(force))


def delete_job_execution(
    self: IoTBackend, job_id: str, thing_name: str, execution_number: int, force: bool
) -> None:
    """Gaps: a missing execution is a KeyError (HTTP 500); a QUEUED execution is deleted
    without force (AWS: only terminal ones unless force)."""
    with _locked_control_plane() as service:
        service.delete_execution(self, job_id, thing_name, execution_number, bool(force))


def describe_thing(self: IoTBackend, thing_name: str) -> FakeThing:
    """Not a gap in the answer but in its cost: moto scans every thing of the account for the
    name, and each shadow update asks three times (ShadowService, update_thing_shadow below,
    moto's own), attach_thing_principal once: with a fleet's shadow reports that was a scan of
    the fleet per report (serve aws-iot, 1,500 trackers: 0.43 CPU ms per tracker, 4.8 times
    that of 300). moto keys things by the ARN it builds from the name (FakeThing), so the thing
    is looked up there; a miss goes to moto's scan, which raises what it raised."""
    thing = self.things.get(
        f"arn:{get_partition(self.region_name)}:iot:{self.region_name}:{self.account_id}:thing/{thing_name}")
    if thing is not None and thing.thing_name == thing_name:
        return thing
    return _original(IoTBackend, "describe_thing")(self, thing_name)


def _get_principal(self: IoTBackend, principal_arn: str) -> Any:
    """Not a gap in the answer but in its cost: moto finds a certificate principal by scanning
    every certificate for its ARN, on each attach_thing_principal and attach_policy (a fleet's
    provisioning: a scan per thing). moto keys certificates by their id, the ARN's last part
    (FakeCertificate.arn); anything else, or a miss, goes to moto's own lookup."""
    if ":cert/" in principal_arn:
        certificate = self.certificates.get(principal_arn.rsplit("/", 1)[-1])
        if certificate is not None and certificate.arn == principal_arn:
            return certificate
    return _original(IoTBackend, "_get_principal")(self, principal_arn)


def _change_group_membership(
    backend: IoTBackend,
    method: str,
    follow: Callable[[JobsService, IoTBackend, str], None],
    args: tuple[str, str | None, str, str | None],
) -> None:
    """moto's add/remove, then let CONTINUOUS jobs `follow` the thing in or out."""
    thing_name, thing_arn = args[2], args[3]
    with _locked_control_plane() as service:
        _original(IoTBackend, method)(backend, *args)
        follow(service, backend, backend._identify_thing(thing_name, thing_arn).thing_name)


def add_thing_to_thing_group(
    self: IoTBackend, thing_group_name: str, thing_group_arn: str | None, thing_name: str, thing_arn: str | None
) -> None:
    """Gap: CONTINUOUS jobs never reach things added to their target group later."""
    _change_group_membership(
        self, "add_thing_to_thing_group", JobsService.things_joined_group, (thing_group_name, thing_group_arn, thing_name, thing_arn)
    )


def remove_thing_from_thing_group(
    self: IoTBackend, thing_group_name: str, thing_group_arn: str | None, thing_name: str, thing_arn: str | None
) -> None:
    """Gap: a thing leaving a CONTINUOUS job's group keeps its execution (AWS: REMOVED)."""
    _change_group_membership(
        self, "remove_thing_from_thing_group", JobsService.things_left_group, (thing_group_name, thing_group_arn, thing_name, thing_arn)
    )


# --------------------------------------------------------------------------------------------
# iot-data shadows
# --------------------------------------------------------------------------------------------


def shadow_init(self: FakeShadow, *args: Any, **kwargs: Any) -> None:
    """Gap: shadow timestamps come from time.time(); the harness runs on its (virtual) clock."""
    _original(FakeShadow, "__init__")(self, *args, **kwargs)
    self.timestamp = _jobs().now()
    self.metadata_desired = self._create_metadata_from_state(self.desired, self.timestamp)
    self.metadata_reported = self._create_metadata_from_state(self.reported, self.timestamp)


def update_thing_shadow(
    self: IoTDataPlaneBackend, thing_name: str, payload: str, shadow_name: str | None
) -> FakeShadow:
    """Gap: a `version` in the first update of a shadow is an AttributeError (HTTP 500);
    AWS answers 409 version conflict."""
    thing = self.iot_backend.describe_thing(thing_name)
    try:
        document = json.loads(payload)
    except ValueError:
        document = None
    if isinstance(document, dict) and "version" in document and thing.thing_shadows.get(shadow_name) is None:
        raise ConflictException("Version conflict")
    return _original(IoTDataPlaneBackend, "update_thing_shadow")(self, thing_name, payload, shadow_name)


# --------------------------------------------------------------------------------------------
# certificates: device identity
# --------------------------------------------------------------------------------------------


class CertificateValidationException(IoTClientError):
    def __init__(self, message: str) -> None:
        super().__init__("CertificateValidationException", message)


def _identity_changed(*, status: bool) -> None:
    """Tell the gateways: new trust anchors may exist; with ``status``, a certificate or CA may
    have lost the right to connect (open connections are checked again)."""
    if _on_identity_change is not None:
        _on_identity_change(status)


def compute_cert_id(self: FakeCertificate, certificate_pem: str) -> str:
    """Gap: moto hashes the PEM text unless configured otherwise; AWS's certificate id is the
    SHA-256 of the DER bytes, which is what a TLS server sees."""
    try:
        return certificate_id(certificate_pem)
    except ValueError:
        raise CertificateValidationException("The certificate is not a valid PEM X.509 certificate") from None


def create_keys_and_certificate(self: IoTBackend, set_as_active: bool) -> tuple[FakeCertificate, dict[str, str]]:
    """Gap: moto's certificate is self-signed by "Moto" with a validity on the virtual clock;
    AWS issues it from its own CA, valid on the real clock. Here the scenario PKI's device CA
    issues it (ECDSA P-256), so the MQTT gateway can verify it."""
    if _device_ca is None:
        return _original(IoTBackend, "create_keys_and_certificate")(self, set_as_active)
    issued = _device_ca.issue("AWS IoT Certificate")
    key = serialization.load_pem_private_key(issued.key_pem.encode(), password=None)
    public_pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    certificate = FakeCertificate(issued.certificate_pem, "ACTIVE" if set_as_active else "INACTIVE",
                                  self.account_id, self.region_name)
    certificate.validity_not_before = issued.certificate.not_valid_before_utc
    certificate.validity_not_after = issued.certificate.not_valid_after_utc
    self.certificates[certificate.certificate_id] = certificate
    return certificate, {"PublicKey": public_pem, "PrivateKey": issued.key_pem}


def register_certificate(self: IoTBackend, certificate_pem: str, ca_certificate_pem: str | None,
                         set_as_active: bool, status: str) -> FakeCertificate:
    """Gap: moto registers any text under any CA; AWS checks that the CA signed it and that the
    CA is registered (CertificateValidationException)."""
    if ca_certificate_pem:
        try:
            issuer = x509.load_pem_x509_certificate(ca_certificate_pem.encode())
            x509.load_pem_x509_certificate(certificate_pem.encode()).verify_directly_issued_by(issuer)
        except (ValueError, TypeError) as error:
            raise CertificateValidationException(f"The certificate is not signed by the given CA: {error}") from None
        if all(ca.certificate_pem.strip() != ca_certificate_pem.strip() for ca in self.ca_certificates.values()):
            raise CertificateValidationException("The CA certificate is not registered")
    result = _original(IoTBackend, "register_certificate")(
        self, certificate_pem, ca_certificate_pem, set_as_active, status)
    _identity_changed(status=False)
    return result


def update_certificate(self: IoTBackend, certificate_id: str, new_status: str) -> None:
    """Gaps: any status is accepted; nothing happens to the connections of a certificate made
    INACTIVE or REVOKED (AWS closes them)."""
    if new_status not in CERTIFICATE_STATUSES:
        raise InvalidRequestException(f"newStatus {new_status!r} is not one of {sorted(CERTIFICATE_STATUSES)}")
    _original(IoTBackend, "update_certificate")(self, certificate_id, new_status)
    _identity_changed(status=True)


def register_certificate_without_ca(self: IoTBackend, certificate_pem: str, status: str) -> FakeCertificate:
    """Gap: nothing marks such a certificate; a TLS server must trust it as it is (AWS's
    multi-account registration: no CA registered)."""
    certificate = _original(IoTBackend, "register_certificate_without_ca")(self, certificate_pem, status)
    certificate.registered_without_ca = True
    _identity_changed(status=False)
    return certificate


def bucket_response_post(self: S3Response, request: Any, bucket_name: str) -> Any:
    """Gap: a browser-based POST upload without its ``key`` form field (any POST to a bucket
    that is not a multi-object delete) was a KeyError in moto, a 500 with a traceback; S3
    answers 400 InvalidArgument."""
    self.path = self._get_path(request)
    if request.headers.get("Content-Length") and not self.is_delete_keys() and "key" not in self.querystring:
        raise InvalidArgumentError("Bucket POST must contain a field named 'key'.", "key", "")
    return _original(S3Response, "_bucket_response_post")(self, request, bucket_name)


def _notifying(cls: type, name: str, *, status: bool) -> Callable[..., Any]:
    """moto's method, then the identity listeners (with ``status``: open connections are
    checked again)."""

    def notifying(self: Any, *args: Any, **kwargs: Any) -> Any:
        result = _original(cls, name)(self, *args, **kwargs)
        _identity_changed(status=status)
        return result

    notifying.__doc__ = f"Gap: the gateways must learn of {name} (trusted CAs, open connections)."
    return notifying


_PATCHES: list[tuple[type, str, Callable[..., Any]]] = [
    (S3Response, "_bucket_response_post", bucket_response_post),
    (FakeCertificate, "compute_cert_id", compute_cert_id),
    (IoTBackend, "create_keys_and_certificate", create_keys_and_certificate),
    (IoTBackend, "register_certificate", register_certificate),
    (IoTBackend, "update_certificate", update_certificate),
    (IoTBackend, "register_ca_certificate", _notifying(IoTBackend, "register_ca_certificate", status=False)),
    (IoTBackend, "update_ca_certificate", _notifying(IoTBackend, "update_ca_certificate", status=True)),
    (IoTBackend, "delete_certificate", _notifying(IoTBackend, "delete_certificate", status=True)),
    (IoTBackend, "delete_ca_certificate", _notifying(IoTBackend, "delete_ca_certificate", status=True)),
    (IoTBackend, "register_certificate_without_ca", register_certificate_without_ca),
    (IoTBackend, "detach_thing_principal", _notifying(IoTBackend, "detach_thing_principal", status=False)),
    (IoTBackend, "create_job", create_job),
    (IoTBackend, "cancel_job", cancel_job),
    (IoTBackend, "delete_job", delete_job),
    (IoTBackend, "get_job_document", get_job_document),
    (IoTBackend, "cancel_job_execution", cancel_job_execution),
    (IoTBackend, "delete_job_execution", delete_job_execution),
    (IoTBackend, "describe_thing", describe_thing),
    (IoTBackend, "_get_principal", _get_principal),
    (IoTBackend, "add_thing_to_thing_group", add_thing_to_thing_group),
    (IoTBackend, "remove_thing_from_thing_group", remove_thing_from_thing_group),
    (FakeShadow, "__init__", shadow_init),
    (IoTDataPlaneBackend, "update_thing_shadow", update_thing_shadow),
]


def apply(service: JobsService, *, device_ca: CertificateAuthority | None = None,
          on_identity_change: Callable[[bool], None] | None = None) -> None:
    """Install the patches (idempotent) with `service` owning job executions, `device_ca`
    issuing `create_keys_and_certificate`'s certificates, and `on_identity_change` called
    (from moto's threads) after any change to certificates, CAs or thing principals."""
    global _service, _device_ca, _on_identity_change
    _service, _device_ca, _on_identity_change = service, device_ca, on_identity_change
    for cls, name, replacement in _PATCHES:
        if (cls, name) not in _originals:
            _originals[(cls, name)] = cls.__dict__[name]
            setattr(cls, name, replacement)


def remove() -> None:
    global _service, _device_ca, _on_identity_change
    for (cls, name), original in _originals.items():
        setattr(cls, name, original)
    _originals.clear()
    _service = _device_ca = _on_identity_change = None

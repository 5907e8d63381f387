"""AWS IoT Jobs and Device Shadow MQTT wire format (pure: no I/O, times passed in).

Topics, request validation and response/notification payloads as documented in the AWS IoT
developer guide (`jobs-mqtt-api`, `jobs-comm-notifications`, `device-shadow-mqtt`) and the
`iot-jobs-data` API reference; quirks of real peers from shared/protocols/aws-iot-jobs.md.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from otaharness.protocols.json_input import JsonInputError, parse_json, parse_json_object

# AWS IoT message broker limit for one MQTT payload.
MAX_PAYLOAD_BYTES = 128 * 1024
# jobs-comm-notifications: a JobExecutionsChanged message lists at most 15 executions.
MAX_NOTIFY_ENTRIES = 15
MAX_CLIENT_TOKEN_CHARS = 64
MAX_STATUS_DETAIL_VALUE_CHARS = 1024
# iot-jobs-data StepTimeoutInMinutes: 1..10080, and -1 cancels the step timer (update only).
STEP_TIMEOUT_RANGE_MINUTES = (1, 10080)
CANCEL_STEP_TIMER = -1
NEXT_JOB_ID = "$next"

_NAME_PATTERN = re.compile(r"[a-zA-Z0-9:_-]{1,128}")  # ThingName, DetailsKey
_JOB_ID_PATTERN = re.compile(r"[a-zA-Z0-9_-]{1,64}")  # JobId


class JobExecutionStatus(StrEnum):
    QUEUED = "QUEUED"
    IN_PROGRESS = "IN_PROGRESS"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    TIMED_OUT = "TIMED_OUT"
    REJECTED = "REJECTED"
    REMOVED = "REMOVED"
    CANCELED = "CANCELED"

    @property
    def is_terminal(self) -> bool:
        return self not in (JobExecutionStatus.QUEUED, JobExecutionStatus.IN_PROGRESS)


# UpdateJobExecution: "status ... IN_PROGRESS, FAILED, SUCCEEDED, or REJECTED".
DEVICE_SETTABLE_STATUSES = frozenset(
    {
        JobExecutionStatus.IN_PROGRESS,
        JobExecutionStatus.SUCCEEDED,
        JobExecutionStatus.FAILED,
        JobExecutionStatus.REJECTED,
    }
)


class RejectedCode(StrEnum):
    """`code` of a jobs `.../rejected` message (jobs-mqtt-api, awsiot.iotjobs.RejectedErrorCode)."""

    INTERNAL_ERROR = "InternalError"
    INVALID_JSON = "InvalidJson"
    INVALID_REQUEST = "InvalidRequest"
    INVALID_STATE_TRANSITION = "InvalidStateTransition"
    RESOURCE_NOT_FOUND = "ResourceNotFound"
    VERSION_MISMATCH = "VersionMismatch"
    INVALID_TOPIC = "InvalidTopic"
    REQUEST_THROTTLED = "RequestThrottled"
    TERMINAL_STATE_REACHED = "TerminalStateReached"


class JobsRejection(ValueError):
    """A jobs request that AWS answers on `.../rejected`; carries the wire code.

    `execution_state` is set only for InvalidStateTransition and VersionMismatch (jobs-mqtt-api).
    """

    def __init__(
        self,
        code: RejectedCode,
        message: str,
        execution_state: JobExecutionState | None = None,
    ) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.execution_state = execution_state


class ShadowRejection(ValueError):
    """A shadow request answered on `.../rejected` with an HTTP-like numeric code."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


class TopicError(ValueError):
    """A topic in the `$aws/things/...` namespace that maps to no API."""


# --------------------------------------------------------------------------------------------
# Topics
# --------------------------------------------------------------------------------------------

THINGS_PREFIX = "$aws/things/"
JOBS_SUBSCRIPTION = "$aws/things/+/jobs/#"
SHADOW_SUBSCRIPTION = "$aws/things/+/shadow/#"
RESPONSE_SUFFIXES = ("accepted", "rejected")


class JobsOperation(StrEnum):
    GET_PENDING = "get"  # $aws/things/{thing}/jobs/get
    START_NEXT = "start-next"  # $aws/things/{thing}/jobs/start-next
    DESCRIBE = "describe"  # $aws/things/{thing}/jobs/{jobId}/get
    UPDATE = "update"  # $aws/things/{thing}/jobs/{jobId}/update


@dataclass(frozen=True)
class JobsTopic:
    thing_name: str
    operation: JobsOperation
    job_id: str | None = None

    def __str__(self) -> str:
        base = f"{THINGS_PREFIX}{self.thing_name}/jobs"
        if self.operation in (JobsOperation.GET_PENDING, JobsOperation.START_NEXT):
            return f"{base}/{self.operation}"
        verb = "get" if self.operation is JobsOperation.DESCRIBE else "update"
        return f"{base}/{self.job_id}/{verb}"


def split_thing_topic(topic: str, service: str) -> tuple[str, list[str]]:
    """`$aws/things/{thing}/{service}/rest...` -> (thing, rest levels)."""
    if not topic.startswith(THINGS_PREFIX):
        raise TopicError(f"not a thing topic: {topic!r}")
    levels = topic[len(THINGS_PREFIX) :].split("/")
    if len(levels) < 2 or levels[1] != service or not levels[0]:
        raise TopicError(f"not a {service} topic: {topic!r}")
    return levels[0], levels[2:]


def is_response_topic(topic: str) -> bool:
    """Responses and notifications we (or AWS) publish: never requests."""
    last = topic.rsplit("/", 1)[-1]
    return last in RESPONSE_SUFFIXES or last in ("notify", "notify-next", "delta", "documents")


def parse_jobs_topic(topic: str) -> JobsTopic:
    """A jobs request topic -> JobsTopic; TopicError if it maps to no jobs API."""
    thing, rest = split_thing_topic(topic, "jobs")
    match rest:
        case ["get"]:
            return JobsTopic(thing, JobsOperation.GET_PENDING)
        case ["start-next"]:
            return JobsTopic(thing, JobsOperation.START_NEXT)
        case [job_id, "get"] if job_id:
            return JobsTopic(thing, JobsOperation.DESCRIBE, job_id)
        case [job_id, "update"] if job_id:
            return JobsTopic(thing, JobsOperation.UPDATE, job_id)
    raise TopicError(f"no jobs API at {topic!r}")


def accepted_topic(request_topic: str | JobsTopic | ShadowTopic) -> str:
    return f"{request_topic}/accepted"


def rejected_topic(request_topic: str | JobsTopic | ShadowTopic) -> str:
    return f"{request_topic}/rejected"


def notify_topic(thing_name: str) -> str:
    return f"{THINGS_PREFIX}{thing_name}/jobs/notify"


def notify_next_topic(thing_name: str) -> str:
    return f"{THINGS_PREFIX}{thing_name}/jobs/notify-next"


class ShadowOperation(StrEnum):
    UPDATE = "update"
    GET = "get"
    DELETE = "delete"


@dataclass(frozen=True)
class ShadowTopic:
    """Classic (`shadow_name` None) or named shadow request topic (device-shadow-mqtt)."""

    thing_name: str
    operation: ShadowOperation
    shadow_name: str | None = None

    @property
    def base(self) -> str:
        base = f"{THINGS_PREFIX}{self.thing_name}/shadow"
        return base if self.shadow_name is None else f"{base}/name/{self.shadow_name}"

    def __str__(self) -> str:
        return f"{self.base}/{self.operation}"

    def event_topic(self, event: str) -> str:
        """`update/delta`, `update/documents`."""
        return f"{self.base}/update/{event}"


def parse_shadow_topic(topic: str) -> ShadowTopic:
    thing, rest = split_thing_topic(topic, "shadow")
    shadow_name: str | None = None
    if len(rest) == 3 and rest[0] == "name" and rest[1]:
        shadow_name, rest = rest[1], rest[2:]
    if len(rest) == 1:
        try:
            return ShadowTopic(thing, ShadowOperation(rest[0]), shadow_name)
        except ValueError:
            pass
    raise TopicError(f"no shadow API at {topic!r}")


# --------------------------------------------------------------------------------------------
# Requests
# --------------------------------------------------------------------------------------------


def _load_object(payload: bytes) -> dict[str, Any]:
    """The request object, read with the project's JSON reader (otaharness.protocols.json_input);
    raises JsonInputError. Empty means `{}`: AWS documents an empty message as a valid shadow
    get/delete request."""
    if not payload.strip():
        return {}
    return parse_json_object(payload, max_bytes=MAX_PAYLOAD_BYTES)


def _is_syntax(error: JsonInputError) -> bool:
    """Not UTF-8 or not JSON at all (InvalidJson), as opposed to JSON beyond the reader's limits
    or not an object (InvalidRequest)."""
    return error.syntax


def decode_jobs_payload(payload: bytes) -> dict[str, Any]:
    """jobs-mqtt-api: "InvalidJson: the contents of the request could not be interpreted as valid
    UTF-8-encoded JSON"; valid JSON the service refuses (not an object, nested too deep, a number
    out of range) is "InvalidRequest: ... the request contains invalid data"."""
    if len(payload) > MAX_PAYLOAD_BYTES:
        raise JobsRejection(
            RejectedCode.INVALID_REQUEST,
            f"payload of {len(payload)} bytes exceeds {MAX_PAYLOAD_BYTES}",
        )
    try:
        return _load_object(payload)
    except JsonInputError as exc:
        if _is_syntax(exc):
            raise JobsRejection(RejectedCode.INVALID_JSON, f"payload is not JSON: {exc}") from None
        raise JobsRejection(RejectedCode.INVALID_REQUEST, f"payload refused: {exc}") from None


def client_token_of(document: Any) -> str | None:
    """Best effort, so that even a rejected request gets its token echoed."""
    if isinstance(document, dict):
        token = document.get("clientToken")
        if isinstance(token, str) and len(token) <= MAX_CLIENT_TOKEN_CHARS:
            return token
    return None


def _invalid(message: str) -> JobsRejection:
    return JobsRejection(RejectedCode.INVALID_REQUEST, message)


def _client_token(document: dict[str, Any]) -> str | None:
    token = document.get("clientToken")
    if token is None:
        return None
    if not isinstance(token, str) or len(token) > MAX_CLIENT_TOKEN_CHARS:
        raise _invalid(f"clientToken must be a string of at most {MAX_CLIENT_TOKEN_CHARS} chars")
    return token


def _long(document: dict[str, Any], name: str) -> int | None:
    """A `long` field; a numeric string is accepted too (the nRF firmware sends
    expectedVersion as "2", the SDK as 2)."""
    value = document.get(name)
    if value is None:
        return None
    if isinstance(value, bool):
        raise _invalid(f"{name} must be a number")
    if isinstance(value, int):
        return value
    if isinstance(value, str) and re.fullmatch(r"-?[0-9]{1,18}", value):
        return int(value)
    raise _invalid(f"{name} must be a number, got {value!r}")


def _bool(document: dict[str, Any], name: str, default: bool) -> bool:
    value = document.get(name)
    if value is None:
        return default
    if not isinstance(value, bool):
        raise _invalid(f"{name} must be true or false, got {value!r}")
    return value


def _status_details(document: dict[str, Any]) -> dict[str, str] | None:
    details = document.get("statusDetails")
    if details is None:
        return None
    if not isinstance(details, dict):
        raise _invalid("statusDetails must be an object of strings")
    for key, value in details.items():
        if not _NAME_PATTERN.fullmatch(key):
            raise _invalid(f"statusDetails key {key!r} must match [a-zA-Z0-9:_-]{{1,128}}")
        if not isinstance(value, str) or not 1 <= len(value) <= MAX_STATUS_DETAIL_VALUE_CHARS:
            raise _invalid(
                f"statusDetails[{key!r}] must be a string of 1..{MAX_STATUS_DETAIL_VALUE_CHARS} chars"
            )
    return dict(details)


def _step_timeout(document: dict[str, Any], allow_cancel: bool) -> int | None:
    minutes = _long(document, "stepTimeoutInMinutes")
    if minutes is None or (allow_cancel and minutes == CANCEL_STEP_TIMER):
        return minutes
    low, high = STEP_TIMEOUT_RANGE_MINUTES
    if not low <= minutes <= high:
        raise _invalid(f"stepTimeoutInMinutes must be within {low}..{high}, got {minutes}")
    return minutes


def _non_negative(document: dict[str, Any], name: str) -> int | None:
    value = _long(document, name)
    if value is not None and value < 0:
        raise _invalid(f"{name} must not be negative")
    return value


def validate_job_id(job_id: str, allow_next: bool = False) -> str:
    if (allow_next and job_id == NEXT_JOB_ID) or _JOB_ID_PATTERN.fullmatch(job_id):
        return job_id
    raise _invalid(f"jobId {job_id!r} must match [a-zA-Z0-9_-]{{1,64}}")


def validate_thing_name(thing_name: str) -> str:
    if _NAME_PATTERN.fullmatch(thing_name):
        return thing_name
    raise _invalid(f"thingName {thing_name!r} must match [a-zA-Z0-9:_-]{{1,128}}")


@dataclass(frozen=True)
class GetPendingRequest:
    """GetPendingJobExecutions: `$aws/things/{thing}/jobs/get`."""

    client_token: str | None = None

    @classmethod
    def from_document(cls, document: dict[str, Any]) -> GetPendingRequest:
        return cls(client_token=_client_token(document))


@dataclass(frozen=True)
class StartNextRequest:
    """StartNextPendingJobExecution: `$aws/things/{thing}/jobs/start-next`."""

    client_token: str | None = None
    status_details: dict[str, str] | None = None
    step_timeout_minutes: int | None = None

    @classmethod
    def from_document(cls, document: dict[str, Any]) -> StartNextRequest:
        return cls(
            client_token=_client_token(document),
            status_details=_status_details(document),
            step_timeout_minutes=_step_timeout(document, allow_cancel=False),
        )


@dataclass(frozen=True)
class DescribeRequest:
    """DescribeJobExecution: `$aws/things/{thing}/jobs/{jobId}/get` (jobId may be `$next`)."""

    job_id: str
    client_token: str | None = None
    execution_number: int | None = None
    include_job_document: bool = True

    @classmethod
    def from_document(cls, document: dict[str, Any], job_id: str) -> DescribeRequest:
        return cls(
            job_id=validate_job_id(job_id, allow_next=True),
            client_token=_client_token(document),
            execution_number=_non_negative(document, "executionNumber"),
            include_job_document=_bool(document, "includeJobDocument", True),
        )


@dataclass(frozen=True)
class UpdateRequest:
    """UpdateJobExecution: `$aws/things/{thing}/jobs/{jobId}/update`."""

    job_id: str
    status: JobExecutionStatus
    client_token: str | None = None
    status_details: dict[str, str] | None = None
    expected_version: int | None = None
    execution_number: int | None = None
    include_job_execution_state: bool = False
    include_job_document: bool = False
    step_timeout_minutes: int | None = None

    @classmethod
    def from_document(cls, document: dict[str, Any], job_id: str) -> UpdateRequest:
        client_token = _client_token(document)
        raw_status = document.get("status")
        if raw_status is None:
            raise _invalid("status is required")
        if not isinstance(raw_status, str) or raw_status not in DEVICE_SETTABLE_STATUSES:
            allowed = ", ".join(sorted(DEVICE_SETTABLE_STATUSES))
            raise _invalid(f"status must be one of {allowed}, got {raw_status!r}")
        return cls(
            job_id=validate_job_id(job_id),
            status=JobExecutionStatus(raw_status),
            client_token=client_token,
            status_details=_status_details(document),
            expected_version=_non_negative(document, "expectedVersion"),
            execution_number=_non_negative(document, "executionNumber"),
            include_job_execution_state=_bool(document, "includeJobExecutionState", False),
            include_job_document=_bool(document, "includeJobDocument", False),
            step_timeout_minutes=_step_timeout(document, allow_cancel=True),
        )


JobsRequest = GetPendingRequest | StartNextRequest | DescribeRequest | UpdateRequest


def jobs_request(topic: JobsTopic, document: dict[str, Any]) -> JobsRequest:
    """The request a decoded payload (decode_jobs_payload) makes on `topic`."""
    validate_thing_name(topic.thing_name)
    match topic.operation:
        case JobsOperation.GET_PENDING:
            return GetPendingRequest.from_document(document)
        case JobsOperation.START_NEXT:
            return StartNextRequest.from_document(document)
        case JobsOperation.DESCRIBE:
            return DescribeRequest.from_document(document, topic.job_id or "")
        case JobsOperation.UPDATE:
            return UpdateRequest.from_document(document, topic.job_id or "")
    raise AssertionError(topic.operation)


# --------------------------------------------------------------------------------------------
# Responses and notifications (all times are epoch seconds: the SDK uses fromtimestamp)
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class JobExecutionState:
    status: JobExecutionStatus
    status_details: dict[str, str]
    version_number: int

    def to_json(self) -> dict[str, Any]:
        return {
            "status": str(self.status),
            "statusDetails": dict(self.status_details),
            "versionNumber": self.version_number,
        }


@dataclass(frozen=True)
class JobExecutionView:
    """A snapshot of one job execution, as the data plane shows it."""

    job_id: str
    thing_name: str
    status: JobExecutionStatus
    queued_at: int
    last_updated_at: int
    version_number: int
    execution_number: int
    status_details: dict[str, str] = field(default_factory=dict)
    started_at: int | None = None
    approximate_seconds_before_timed_out: int | None = None
    job_document: str | None = None  # as stored by CreateJob

    @property
    def state(self) -> JobExecutionState:
        return JobExecutionState(self.status, self.status_details, self.version_number)

    def summary_json(self) -> dict[str, Any]:
        """JobExecutionSummary."""
        summary: dict[str, Any] = {
            "jobId": self.job_id,
            "queuedAt": self.queued_at,
            "lastUpdatedAt": self.last_updated_at,
            "versionNumber": self.version_number,
            "executionNumber": self.execution_number,
        }
        if self.started_at is not None:
            summary["startedAt"] = self.started_at
        return summary

    def execution_json(self, include_document: bool, document_as_object: bool) -> dict[str, Any]:
        """JobExecution. MQTT carries jobDocument as a JSON object (the SDK and nRF parse it so);
        the iot-jobs-data REST model types it as a string."""
        execution: dict[str, Any] = {
            "jobId": self.job_id,
            "thingName": self.thing_name,
            "status": str(self.status),
            "statusDetails": dict(self.status_details),
            "queuedAt": self.queued_at,
            "lastUpdatedAt": self.last_updated_at,
            "versionNumber": self.version_number,
            "executionNumber": self.execution_number,
        }
        if self.started_at is not None:
            execution["startedAt"] = self.started_at
        if self.approximate_seconds_before_timed_out is not None:
            execution["approximateSecondsBeforeTimedOut"] = self.approximate_seconds_before_timed_out
        if include_document and self.job_document is not None:
            execution["jobDocument"] = (
                job_document_object(self.job_document) if document_as_object else self.job_document
            )
        return execution


def job_document_object(document: str) -> Any:
    """The stored document parsed (with the project's JSON reader: it came from a client of the
    control plane); AWS requires JSON job documents, anything else stays a string."""
    try:
        return parse_json(document)
    except JsonInputError:
        return document


def _response(body: dict[str, Any], timestamp: int, client_token: str | None) -> dict[str, Any]:
    body["timestamp"] = timestamp
    if client_token is not None:
        body["clientToken"] = client_token
    return body


def get_pending_accepted(
    in_progress: list[JobExecutionView],
    queued: list[JobExecutionView],
    timestamp: int,
    client_token: str | None,
) -> dict[str, Any]:
    return _response(
        {
            "inProgressJobs": [view.summary_json() for view in in_progress],
            "queuedJobs": [view.summary_json() for view in queued],
        },
        timestamp,
        client_token,
    )


def execution_accepted(
    execution: JobExecutionView | None,
    timestamp: int,
    client_token: str | None,
    include_document: bool = True,
) -> dict[str, Any]:
    """start-next and {jobId}/get accepted; no `execution` when nothing is pending."""
    body: dict[str, Any] = {}
    if execution is not None:
        body["execution"] = execution.execution_json(include_document, document_as_object=True)
    return _response(body, timestamp, client_token)


def update_accepted(
    execution: JobExecutionView,
    request: UpdateRequest,
    timestamp: int,
) -> dict[str, Any]:
    body: dict[str, Any] = {}
    if request.include_job_execution_state:
        body["executionState"] = execution.state.to_json()
    if request.include_job_document and execution.job_document is not None:
        body["jobDocument"] = job_document_object(execution.job_document)
    return _response(body, timestamp, request.client_token)


def jobs_rejected(rejection: JobsRejection, timestamp: int, client_token: str | None) -> dict[str, Any]:
    body: dict[str, Any] = {"code": str(rejection.code), "message": rejection.message}
    if rejection.execution_state is not None:
        body["executionState"] = rejection.execution_state.to_json()
    return _response(body, timestamp, client_token)


def notify(pending: list[JobExecutionView], timestamp: int) -> dict[str, Any]:
    """JobExecutionsChanged: pending executions grouped by status, IN_PROGRESS first,
    at most MAX_NOTIFY_ENTRIES; an empty `jobs` object when nothing is pending."""
    ordered = sorted(pending, key=lambda view: view.status is not JobExecutionStatus.IN_PROGRESS)
    jobs: dict[str, list[dict[str, Any]]] = {}
    for view in ordered[:MAX_NOTIFY_ENTRIES]:
        jobs.setdefault(str(view.status), []).append(view.summary_json())
    return {"timestamp": timestamp, "jobs": jobs}


def notify_next(execution: JobExecutionView | None, timestamp: int) -> dict[str, Any]:
    """NextJobExecutionChanged; no `execution` when nothing is pending any more."""
    body: dict[str, Any] = {"timestamp": timestamp}
    if execution is not None:
        body["execution"] = execution.execution_json(True, document_as_object=True)
    return body


def encode(document: dict[str, Any]) -> bytes:
    return json.dumps(document, separators=(",", ":")).encode()


# --------------------------------------------------------------------------------------------
# Device Shadow (device-shadow-mqtt, device-shadow-document)
# --------------------------------------------------------------------------------------------

SHADOW_STATE_SECTIONS = ("desired", "reported")


def decode_shadow_payload(payload: bytes) -> dict[str, Any]:
    """device-shadow-mqtt: 413 beyond the size limit; anything the JSON reader refuses (not
    UTF-8 or JSON, not an object, nested too deep, a number out of range) is 400."""
    if len(payload) > MAX_PAYLOAD_BYTES:
        raise ShadowRejection(413, "The payload exceeds the maximum size allowed")
    try:
        return _load_object(payload)
    except JsonInputError as exc:
        raise ShadowRejection(400, f"Invalid JSON: {exc}") from None


@dataclass(frozen=True)
class ShadowUpdateRequest:
    """`state` is None when the request sets `"state": null` (delete all state)."""

    state: dict[str, dict[str, Any] | None] | None
    client_token: str | None = None
    version: int | None = None

    @classmethod
    def from_document(cls, document: dict[str, Any]) -> ShadowUpdateRequest:
        token = document.get("clientToken")
        if token is not None and (not isinstance(token, str) or len(token) > MAX_CLIENT_TOKEN_CHARS):
            raise ShadowRejection(400, "Invalid clientToken")
        version = document.get("version")
        if version is not None and (isinstance(version, bool) or not isinstance(version, int)):
            raise ShadowRejection(400, "Invalid version")
        if "state" not in document:
            raise ShadowRejection(400, "Missing required node: state")
        state = document["state"]
        if state is not None:
            if not isinstance(state, dict):
                raise ShadowRejection(400, "Invalid state node: must be an object")
            for section, value in state.items():
                if section not in SHADOW_STATE_SECTIONS:
                    raise ShadowRejection(400, f"State contains an invalid node: '{section}'")
                if value is not None and not isinstance(value, dict):
                    raise ShadowRejection(400, f"Invalid {section} node: must be an object")
        return cls(state=state, client_token=token, version=version)

    def to_document(self) -> dict[str, Any]:
        document: dict[str, Any] = {"state": self.state}
        if self.version is not None:
            document["version"] = self.version
        return document


def shadow_response(body: dict[str, Any], timestamp: int, client_token: str | None) -> dict[str, Any]:
    """update/accepted, get/accepted, delete/accepted, delta, documents: body + timestamp/token."""
    return _response(dict(body), timestamp, client_token)


def shadow_rejected(rejection: ShadowRejection, timestamp: int, client_token: str | None) -> dict[str, Any]:
    return _response({"code": rejection.code, "message": rejection.message}, timestamp, client_token)

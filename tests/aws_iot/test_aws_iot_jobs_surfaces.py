"""The AWS IoT input surfaces under random input (hypothesis): the Jobs MQTT API through the
bridge's ``handle()``, Device Shadow updates through it, and the iot-jobs-data HTTPS API, each on a
real moto server; then the measured cases from outside over mutual TLS (mqtts gateway and HTTPS).

Input: well-formed requests with random field values, arbitrary JSON objects, and hostile payloads
(nesting far beyond the reader's limit, 5,000-digit integers, NaN, truncated JSON, random bytes).
For every request:

- never InternalError (MQTT) or a 5xx (HTTPS), and exactly one accepted/rejected reply;
- a rejected request changes nothing (the execution's status, version, details, start and timers;
  the shadow document), an accepted one exactly what the API says (update: the requested status,
  version + 1; start-next: QUEUED → IN_PROGRESS, version + 1; reads: nothing);
- the service keeps serving (a control request is accepted after each one).
"""

from __future__ import annotations

import asyncio
import http.client
import itertools
import json
import threading
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote, urlsplit

import pytest
from aws_iot_harness import Harness
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from otaharness.protocols.aws_iot_jobs import RejectedCode
from otaharness.protocols.json_input import MAX_DEPTH
from otaharness.servers.aws_iot.jobs_http import JobsHttpApi

SETTINGS = settings(max_examples=120, deadline=None, database=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
_names = itertools.count(1)

# -- strategies ---------------------------------------------------------------------------------------

scalars = (st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1)
           | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=10))
json_values = st.recursive(
    scalars, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner,
                                                                         max_size=3),
    max_leaves=10)
statuses = st.sampled_from(["IN_PROGRESS", "SUCCEEDED", "FAILED", "REJECTED", "QUEUED", "CANCELED",
                            "TIMED_OUT", "bogus"])
field_values = {
    "status": statuses | json_values,
    "statusDetails": st.dictionaries(st.sampled_from(["progress", "bad key", "x" * 129]),
                                     st.sampled_from(["50", "", "x" * 1025]) | json_values, max_size=2)
                     | json_values,
    "expectedVersion": st.integers(-2, 6) | st.sampled_from(["1", "2", "two", 2**63 - 1]) | json_values,
    "executionNumber": st.integers(-1, 3) | st.just("1") | json_values,
    "stepTimeoutInMinutes": st.sampled_from([-1, 0, 1, 10080, 10081, "30"]) | json_values,
    "includeJobDocument": st.booleans() | json_values,
    "includeJobExecutionState": st.booleans() | json_values,
    "clientToken": st.text(max_size=70) | json_values,
}
requests = st.fixed_dictionaries({}, optional=field_values)


def nested(depth: int, kind: str) -> bytes:
    return b"[" * depth + b"]" * depth if kind == "array" else b'{"a":' * depth + b"1" + b"}" * depth


hostile = st.one_of(
    st.builds(nested, st.integers(MAX_DEPTH + 1, 20_000), st.sampled_from(["array", "object"])),
    st.integers(20, 5000).map(lambda n: b'{"status": "IN_PROGRESS", "expectedVersion": ' + b"9" * n + b"}"),
    st.sampled_from([b'{"status": NaN}', b'{"x": 1e999}', b"[]", b"null", b"{not json", b"\xff\xfe",
                     b'{"clientToken": "\\ud800", "status": "IN_PROGRESS"}']),
    requests.map(lambda d: json.dumps(d).encode()).flatmap(
        lambda data: st.integers(0, len(data)).map(lambda cut: data[:cut])),
    st.binary(max_size=200),
)
payloads = (requests.map(lambda d: json.dumps(d).encode())
            | st.dictionaries(st.text(max_size=8), json_values, max_size=4).map(lambda d: json.dumps(d).encode())
            | hostile)


def fresh_job(harness: Harness) -> tuple[str, str]:
    """A thing of its own with one QUEUED job, notifications of the setup consumed."""
    number = next(_names)
    thing, job = f"fuzz{number}", f"job{number}"
    harness.job(job, [harness.thing(thing)], {"operation": "app_fw_update", "size": 13})
    harness.bridge.notifications(thing)
    return thing, job


def execution_state(harness: Harness, job: str, thing: str) -> tuple[Any, ...] | None:
    with harness.jobs.lock:
        record = harness.moto.iot_backend().job_executions.get((job, thing))
        if record is None:
            return None
        return (record.status, record.version_number, dict(record.status_details_map),
                record.started_at, tuple(sorted(record.timers)))


def check_effect(before: tuple[Any, ...] | None, after: tuple[Any, ...] | None, accepted: bool,
                 operation: str, request: Any) -> None:
    """What an accepted request may change; a rejected one changes nothing."""
    if not accepted or operation in ("get", "describe"):
        assert after == before, (operation, request, before, after)
        return
    assert before is not None and after is not None
    if operation == "update":
        assert (after[0], after[1]) == (request["status"], before[1] + 1), (request, before, after)
    elif operation == "start-next":
        expected = ("IN_PROGRESS", before[1] + 1) if before[0] == "QUEUED" else before[:2]
        assert after[:2] == expected, (before, after)


# -- Jobs over MQTT: the bridge's handle() ------------------------------------------------------------

mqtt_operations = st.sampled_from(["get", "start-next", "{job}/get", "{job}/update", "$next/get",
                                   "nojob/update", "{job}/delete", "$next/update", "a/b/c"])


@SETTINGS
@given(operation=mqtt_operations, thing_kind=st.sampled_from(["own", "own", "own", "ghost", "bad name!"]),
       payload=payloads)
@example(operation="start-next", thing_kind="own", payload=nested(20_000, "object"))
@example(operation="{job}/update", thing_kind="own",
         payload=b'{"status": "IN_PROGRESS", "expectedVersion": ' + b"9" * 5000 + b"}")
@example(operation="{job}/update", thing_kind="own", payload=b'{"status": ["IN_PROGRESS"]}')
def test_jobs_over_mqtt_never_answer_internal_error(harness: Harness, operation: str, thing_kind: str,
                                                    payload: bytes) -> None:
    thing, job = fresh_job(harness)
    target = {"own": thing, "ghost": "ghost", "bad name!": "bad name!"}[thing_kind]
    topic = f"$aws/things/{target}/jobs/{operation.format(job=job)}"
    before = execution_state(harness, job, thing)
    replies = [(t, json.loads(p)) for t, p in harness.bridge.handle(topic, payload)]
    answers = [(t, body) for t, body in replies if t in (f"{topic}/accepted", f"{topic}/rejected")]
    assert len(answers) == 1, replies
    reply_topic, body = answers[0]
    accepted = reply_topic.endswith("/accepted")
    if not accepted:
        assert body["code"] != RejectedCode.INTERNAL_ERROR and body["code"] in set(RejectedCode), body
    kind = {"{job}/update": "update", "start-next": "start-next"}.get(operation, "get")
    request = json.loads(payload) if accepted and payload.strip() else {}
    check_effect(before, execution_state(harness, job, thing), accepted and target == thing, kind, request)
    control_topic, _ = harness.reply(f"$aws/things/{thing}/jobs/get", {"clientToken": "control"})
    assert control_topic.endswith("/get/accepted")


# -- Shadow updates over MQTT ------------------------------------------------------------------------------

shadow_documents = st.fixed_dictionaries(
    {"state": st.none() | json_values | st.dictionaries(
        st.sampled_from(["desired", "reported", "delta"]),
        st.none() | json_values | st.dictionaries(st.text(max_size=6), json_values, max_size=3), max_size=2)},
    optional={"version": st.integers(0, 3) | json_values, "clientToken": st.text(max_size=70) | json_values})


@SETTINGS
@given(payload=shadow_documents.map(lambda d: json.dumps(d).encode()) | hostile)
@example(payload=nested(20_000, "object"))
@example(payload=b'{"state": {"reported": {"n": ' + b"9" * 5000 + b"}}}")
def test_shadow_updates_never_answer_500_and_refusals_change_nothing(harness: Harness, payload: bytes) -> None:
    thing, _ = fresh_job(harness)
    shadow = f"$aws/things/{thing}/shadow"
    harness.reply(f"{shadow}/update", {"state": {"reported": {"fw": "1.0.0"}}})
    _, before = harness.reply(f"{shadow}/get", b"")
    replies = harness.mqtt(f"{shadow}/update", payload)
    answers = [(t, body) for t, body in replies if t.endswith(("/update/accepted", "/update/rejected"))]
    assert len(answers) == 1, replies
    topic, body = answers[0]
    _, after = harness.reply(f"{shadow}/get", b"")
    if topic.endswith("/rejected"):
        assert body["code"] in (400, 409, 413), body
        assert (after["state"], after["version"]) == (before["state"], before["version"])
    else:
        assert after["version"] == before["version"] + 1
    topic, _ = harness.reply(f"{shadow}/update", {"state": {"reported": {"control": True}}})
    assert topic.endswith("/update/accepted")


# -- Jobs over HTTPS (iot-jobs-data) ----------------------------------------------------------------------

class ApiThread:
    """The iot-jobs-data API on a loop of its own, for synchronous requests from the test."""

    def __init__(self, harness: Harness) -> None:
        self.api = JobsHttpApi(harness.jobs)
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="jobs-http", daemon=True)

    def __enter__(self) -> ApiThread:
        self.thread.start()
        self.url = asyncio.run_coroutine_threadsafe(self.api.start(), self.loop).result(10)
        return self

    def __exit__(self, *exc: Any) -> None:
        asyncio.run_coroutine_threadsafe(self.api.stop(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()

    def send(self, method: str, path: str, body: bytes | None = None) -> tuple[int, dict[str, str], bytes]:
        url = urlsplit(self.url)
        connection = http.client.HTTPConnection(url.hostname, url.port, timeout=10)
        try:
            connection.request(method, path, body=body, headers={"Content-Type": "application/json"})
            response = connection.getresponse()
            return response.status, dict(response.getheaders()), response.read()
        finally:
            connection.close()


@pytest.fixture
def jobs_http(harness: Harness) -> Iterator[ApiThread]:
    with ApiThread(harness) as api:
        yield api


http_operations = st.sampled_from(["PUT /things/{thing}/jobs/$next", "POST /things/{thing}/jobs/{job}",
                                   "POST /things/{thing}/jobs/nojob", "GET /things/{thing}/jobs/{job}",
                                   "GET /things/{thing}/jobs/$next", "GET /things/{thing}/jobs"])
query_values = st.sampled_from(["1", "2", "-1", "true", "false", "TRUE", "yes", "", "9" * 30]) | st.text(max_size=8)


@SETTINGS
@given(operation=http_operations, payload=payloads,
       query=st.dictionaries(st.sampled_from(["executionNumber", "includeJobDocument", "x"]), query_values,
                             max_size=2))
@example(operation="PUT /things/{thing}/jobs/$next", payload=nested(20_000, "array"), query={})
@example(operation="POST /things/{thing}/jobs/{job}", query={},
         payload=b'{"status": "IN_PROGRESS", "expectedVersion": ' + b"9" * 5000 + b"}")
def test_jobs_over_https_never_answer_5xx(harness: Harness, jobs_http: ApiThread, operation: str,
                                          payload: bytes, query: dict[str, str]) -> None:
    thing, job = fresh_job(harness)
    method, template = operation.split(" ")
    path = template.replace("{thing}", thing).replace("{job}", job).replace("$", "%24")
    if method == "GET":
        payload = b""
        if query:
            path += "?" + "&".join(f"{quote(k)}={quote(v)}" for k, v in query.items())
    before = execution_state(harness, job, thing)
    status, headers, raw = jobs_http.send(method, path, payload or None)
    assert status < 500, (status, raw[:300])
    body = json.loads(raw)
    if status >= 400:
        assert headers["x-amzn-ErrorType"].endswith("Exception") and body["message"], (headers, body)
    kind = {"POST /things/{thing}/jobs/{job}": "update", "PUT /things/{thing}/jobs/$next": "start-next"}.get(
        operation, "get")
    request = json.loads(payload) if status < 400 and payload.strip() else {}
    check_effect(before, execution_state(harness, job, thing), status < 400, kind, request)
    status, _, raw = jobs_http.send("GET", f"/things/{thing}/jobs")
    assert status == 200, raw[:300]

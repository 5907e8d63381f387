"""Properties of the AWS IoT Jobs and Shadow MQTT codec (otaharness/protocols/aws_iot_jobs.py),
with hypothesis:

- decoding any bytes raises only the codec's own rejection, with the code AWS documents:
  InvalidJson exactly when the payload is not UTF-8 JSON at all, InvalidRequest for JSON the
  service refuses (not an object, nested deeper than the reader allows, numbers out of range);
  shadow: 400 (413 beyond the size limit);
- building a request from any decoded document raises only JobsRejection(InvalidRequest) /
  ShadowRejection(400) (a list as ``status`` was once a TypeError: InternalError on the wire);
- round trips: topics (built → parsed, and any parsed topic → built back to itself), payloads
  (``encode`` → decode), shadow update requests (``to_document`` → ``from_document``), stored job
  documents (JSON text → the object on MQTT).
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from otaharness.protocols.aws_iot_jobs import (
    MAX_PAYLOAD_BYTES,
    NEXT_JOB_ID,
    JobsOperation,
    JobsRejection,
    JobsTopic,
    RejectedCode,
    ShadowOperation,
    ShadowRejection,
    ShadowTopic,
    ShadowUpdateRequest,
    TopicError,
    decode_jobs_payload,
    decode_shadow_payload,
    encode,
    job_document_object,
    jobs_request,
    parse_jobs_topic,
    parse_shadow_topic,
)
from otaharness.protocols.json_input import MAX_DEPTH, MAX_INTEGER

SETTINGS = settings(max_examples=200, deadline=None)

scalars = (st.none() | st.booleans() | st.integers(-MAX_INTEGER - 1, MAX_INTEGER)
           | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=12))
json_values = st.recursive(
    scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                         max_size=4),
    max_leaves=12)
json_objects = st.dictionaries(st.text(max_size=10), json_values, max_size=6)
names = st.from_regex(r"[a-zA-Z0-9:_-]{1,40}", fullmatch=True)
job_ids = st.from_regex(r"[a-zA-Z0-9_-]{1,40}", fullmatch=True)


def nested(depth: int, kind: str) -> bytes:
    return b"[" * depth + b"]" * depth if kind == "array" else b'{"a":' * depth + b"1" + b"}" * depth


hostile = st.one_of(
    st.builds(nested, st.integers(MAX_DEPTH + 1, 20_000), st.sampled_from(["array", "object"])),
    st.integers(20, 6000).map(lambda digits: b'{"executionNumber": ' + b"9" * digits + b"}"),
    st.sampled_from([b'{"status": NaN}', b'{"x": Infinity}', b'{"x": -Infinity}', b'{"x": 1e999}',
                     b"[1, 2]", b'"text"', b"null", b"\xff\xfe", b"{not json", b"\xef\xbb\xbf{}",
                     b'{"clientToken": "\\ud800"}', b" \n\t ", b"{} {}"]),
    json_objects.map(lambda d: json.dumps(d).encode()).flatmap(
        lambda data: st.integers(0, len(data)).map(lambda cut: data[:cut])),
)
any_payload = st.binary(max_size=300) | hostile | json_objects.map(lambda d: json.dumps(d).encode())


def is_json_text(payload: bytes) -> bool:
    """The stdlib's grammar with numbers kept as text (so no integer-size error) and NaN/Infinity
    refused: whether the payload is UTF-8 JSON at all, whatever its depth or numbers."""
    def refuse(name: str) -> Any:
        raise ValueError(name)
    try:
        json.loads(payload.decode("utf-8"), parse_int=str, parse_float=str, parse_constant=refuse)
    except RecursionError:
        return True  # well formed as far as the grammar goes, just deep
    except ValueError:  # UnicodeDecodeError and JSONDecodeError included
        return False
    return True


# -- decoding -------------------------------------------------------------------------------------------

@SETTINGS
@given(payload=any_payload)
@example(payload=nested(30_000, "array"))
@example(payload=b'{"expectedVersion": ' + b"9" * 5000 + b"}")
@example(payload=b"{}" + b" " * MAX_PAYLOAD_BYTES)
def test_jobs_payloads_raise_only_their_rejection_with_the_documented_code(payload: bytes) -> None:
    try:
        document = decode_jobs_payload(payload)
    except JobsRejection as rejection:
        if len(payload) > MAX_PAYLOAD_BYTES or is_json_text(payload):
            assert rejection.code is RejectedCode.INVALID_REQUEST, (payload[:80], rejection)
        else:
            assert rejection.code is RejectedCode.INVALID_JSON, (payload[:80], rejection)
        return
    assert isinstance(document, dict)
    assert document == ({} if not payload.strip() else json.loads(payload))


@SETTINGS
@given(payload=any_payload)
@example(payload=nested(20_000, "object"))
def test_shadow_payloads_raise_only_their_rejection(payload: bytes) -> None:
    try:
        document = decode_shadow_payload(payload)
    except ShadowRejection as rejection:
        assert rejection.code == (413 if len(payload) > MAX_PAYLOAD_BYTES else 400)
        assert rejection.message.startswith(("Invalid JSON", "The payload exceeds"))
        return
    assert isinstance(document, dict)


@pytest.mark.parametrize("payload, code", [
    (nested(40, "array"), RejectedCode.INVALID_REQUEST),
    (nested(20_000, "object"), RejectedCode.INVALID_REQUEST),  # 120 KB: under the size limit
    (b'{"expectedVersion": ' + b"9" * 5000 + b"}", RejectedCode.INVALID_REQUEST),
    (b'{"expectedVersion": 9223372036854775808}', RejectedCode.INVALID_REQUEST),
    (b'{"x": 1e999}', RejectedCode.INVALID_REQUEST),
    (b"[1]", RejectedCode.INVALID_REQUEST),
    (b'{"clientToken": "\\ud800"}', RejectedCode.INVALID_REQUEST),  # JSON text, no Unicode string
    (b'{"x": NaN}', RejectedCode.INVALID_JSON),
    (b"{not json", RejectedCode.INVALID_JSON),
    (b"\xff", RejectedCode.INVALID_JSON),
])
def test_the_documented_code_for_each_kind_of_refusal(payload: bytes, code: RejectedCode) -> None:
    """Pinned: InvalidJson only for what is not UTF-8 JSON; deep nesting is InvalidRequest (AWS),
    not the InternalError a RecursionError used to become."""
    with pytest.raises(JobsRejection) as caught:
        decode_jobs_payload(payload)
    assert caught.value.code is code


# -- requests from any document --------------------------------------------------------------------------

fields = st.sampled_from(["status", "statusDetails", "expectedVersion", "executionNumber", "clientToken",
                          "includeJobDocument", "includeJobExecutionState", "stepTimeoutInMinutes"])
field_values = st.one_of(json_values, st.sampled_from(
    ["IN_PROGRESS", "SUCCEEDED", "FAILED", "REJECTED", "QUEUED", "CANCELED", "1", "-1", "10081",
     "99999999999999999999", {"progress": "50"}, {"bad key": "x"}, {"k": ""}, {"k": "x" * 1025},
     ["IN_PROGRESS"], {"IN_PROGRESS": 1}, 2**63 - 1, -(2**63), 10080, 0]))
request_documents = st.dictionaries(fields, field_values, max_size=6) | json_objects
jobs_topics = st.builds(
    JobsTopic, names | st.text(max_size=10),
    st.sampled_from(list(JobsOperation)), job_ids | st.just(NEXT_JOB_ID) | st.text(max_size=10))


@SETTINGS
@given(topic=jobs_topics, document=request_documents)
@example(topic=JobsTopic("t", JobsOperation.UPDATE, "j"), document={"status": ["IN_PROGRESS"]})
@example(topic=JobsTopic("t", JobsOperation.UPDATE, "j"), document={"status": {"IN_PROGRESS": 1}})
def test_any_document_makes_a_request_or_an_invalid_request(topic: JobsTopic, document: dict) -> None:
    try:
        request = jobs_request(topic, document)
    except JobsRejection as rejection:
        assert rejection.code is RejectedCode.INVALID_REQUEST, rejection
        return
    if topic.operation is JobsOperation.UPDATE:
        assert request.status in ("IN_PROGRESS", "SUCCEEDED", "FAILED", "REJECTED")


shadow_documents = st.one_of(
    json_objects,
    st.fixed_dictionaries({"state": st.none() | json_values | st.dictionaries(
        st.sampled_from(["desired", "reported", "delta", "x"]), st.none() | json_values | json_objects,
        max_size=3)}, optional={"version": json_values, "clientToken": json_values}))


@SETTINGS
@given(document=shadow_documents)
def test_any_document_makes_a_shadow_update_or_a_400(document: dict) -> None:
    try:
        request = ShadowUpdateRequest.from_document(document)
    except ShadowRejection as rejection:
        assert rejection.code == 400
        return
    # round trip: what goes to moto reads back as the same request (less its clientToken)
    again = ShadowUpdateRequest.from_document(request.to_document())
    assert again == ShadowUpdateRequest(request.state, None, request.version)


# -- round trips --------------------------------------------------------------------------------------

@SETTINGS
@given(thing=names, operation=st.sampled_from(list(JobsOperation)), job_id=job_ids | st.just(NEXT_JOB_ID))
def test_jobs_topics_built_parse_back(thing: str, operation: JobsOperation, job_id: str) -> None:
    topic = JobsTopic(thing, operation, job_id if operation in (JobsOperation.DESCRIBE, JobsOperation.UPDATE)
                      else None)
    assert parse_jobs_topic(str(topic)) == topic


@SETTINGS
@given(thing=names, operation=st.sampled_from(list(ShadowOperation)), shadow=st.none() | names)
def test_shadow_topics_built_parse_back(thing: str, operation: ShadowOperation, shadow: str | None) -> None:
    topic = ShadowTopic(thing, operation, shadow)
    assert parse_shadow_topic(str(topic)) == topic


topic_texts = st.builds(
    lambda prefix, levels: prefix + "/".join(levels),
    st.sampled_from(["$aws/things/", "$aws/things//", "things/", ""]),
    st.lists(st.sampled_from(["t", "jobs", "shadow", "get", "update", "start-next", "delete", "name",
                              "$next", "j1", "", "+", "#"]) | st.text(max_size=6), max_size=5))


@SETTINGS
@given(text=topic_texts)
def test_any_topic_parses_to_one_that_builds_back_to_it_or_is_refused(text: str) -> None:
    for parse in (parse_jobs_topic, parse_shadow_topic):
        try:
            topic = parse(text)
        except TopicError:
            continue
        assert str(topic) == text


@SETTINGS
@given(document=json_objects)
def test_encoded_payloads_decode_to_themselves(document: dict) -> None:
    assert decode_jobs_payload(encode(document)) == document
    assert decode_shadow_payload(encode(document)) == document


@SETTINGS
@given(document=json_values, text=st.text(max_size=60))
@example(document=None, text="[" * 5000 + "]" * 5000)
@example(document=None, text='{"n": ' + "9" * 5000 + "}")
def test_stored_job_documents_become_objects_and_anything_else_stays_text(document: Any, text: str) -> None:
    assert job_document_object(json.dumps(document)) == document
    parsed = job_document_object(text)  # never raises: what is not (acceptable) JSON stays text
    assert parsed == text or json.dumps(parsed) == json.dumps(json.loads(text))

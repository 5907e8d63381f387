"""Properties of the OLT wire codec (otaharness/protocols/olt.py), with hypothesis:

- decoding any bytes (random, or hostile JSON: deep nesting, huge integers, NaN, lone surrogates,
  truncated documents) raises only the codec's own TopicError;
- what decodes holds only valid Unicode (it goes into SQLite and back out to peers);
- round trip: a message as the gateway and the back end send it (``encode_payload``, the MQTT
  client's JSON) decodes to the same parts;
- topics: what the back end sends a device matches that device's subscription and no other's;
- maintenance windows: the wait is in [0, 1 day), zero exactly inside, and after it the window is
  open.
"""

from __future__ import annotations

import datetime as dt
import json

import paho.mqtt.client as paho
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from otaharness.protocols import olt
from otaharness.protocols.json_input import MAX_DEPTH, MAX_INTEGER
from otaharness.runtime.mqtt import encode_payload

SETTINGS = settings(max_examples=200, deadline=None)

# -- strategies ---------------------------------------------------------------------------------------

scalars = (st.none() | st.booleans() | st.integers(-MAX_INTEGER - 1, MAX_INTEGER)
           | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=12))
json_values = st.recursive(
    scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                         max_size=4),
    max_leaves=12)
json_objects = st.dictionaries(st.text(max_size=8), json_values, max_size=5)
device_ids = st.text(st.characters(blacklist_characters="/+#\x00"), min_size=1, max_size=40)


def nested(depth: int, kind: str) -> bytes:
    if kind == "array":
        return b"[" * depth + b"]" * depth
    return b'{"a":' * depth + b"1" + b"}" * depth


hostile_json = st.one_of(
    st.builds(nested, st.integers(MAX_DEPTH + 1, 40_000), st.sampled_from(["array", "object"])),
    st.integers(20, 6000).map(lambda digits: b'{"deviceId": "d", "n": ' + b"9" * digits + b"}"),
    st.sampled_from([b'{"deviceId": NaN}', b'{"n": Infinity}', b'{"n": -Infinity}', b'{"n": 1e999}',
                     b'{"deviceId": "\\ud800", "type": "attributes", "value": {}}',
                     b'{"deviceId": "d", "event": "e", "actionId": "\\udfff"}',
                     b'{"\\ud83d": 1}', b"\xef\xbb\xbf{}", b"", b"null", b"[]", b'"text"']),
    json_objects.map(lambda doc: json.dumps(doc).encode()).flatmap(
        lambda data: st.integers(0, max(0, len(data) - 1)).map(lambda cut: data[:cut])),
)
any_payload = st.binary(max_size=300) | hostile_json | json_objects.map(lambda d: json.dumps(d).encode())

DECODERS = [olt.decode_data_report, olt.decode_event,
            lambda payload: olt.decode_json_object(payload, "devices/x/actions")]


def decoded_strings(value: object) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [text for key, child in value.items() for text in [key, *decoded_strings(child)]]
    if isinstance(value, list):
        return [text for child in value for text in decoded_strings(child)]
    return []


# -- decoding never fails but with TopicError ---------------------------------------------------------

@pytest.mark.parametrize("decode", DECODERS, ids=["data-report", "event", "json-object"])
@SETTINGS
@given(payload=any_payload)
@example(payload=nested(30_000, "array"))
@example(payload=b'{"deviceId": "d", "type": "attributes", "value": {"n": ' + b"9" * 5000 + b"}}")
@example(payload=b'{"deviceId": "\\ud800", "type": "attributes", "value": {}}')
def test_decoding_any_bytes_raises_only_topic_error(decode, payload: bytes) -> None:
    try:
        decoded = decode(payload)
    except olt.TopicError:
        return
    for text in decoded_strings(decoded):
        text.encode("utf-8")  # storable: a lone surrogate would break SQLite and UTF-8 peers


@given(payload=hostile_json)
@SETTINGS
def test_json_beyond_the_readers_limits_is_refused(payload: bytes) -> None:
    """Nothing hostile gets through: deep, huge, NaN, surrogate, truncated, empty or non-object
    payloads are all TopicError (a proper prefix of an object's JSON is never an object)."""
    with pytest.raises(olt.TopicError):
        olt.decode_json_object(payload, "data-ingest")


# -- round trips --------------------------------------------------------------------------------------

@SETTINGS
@given(device_id=st.text(min_size=1, max_size=40), kind=st.sampled_from(olt.REPORT_TYPES),
       value=json_objects)
def test_a_report_as_sent_decodes_to_its_parts(device_id: str, kind: str, value: dict) -> None:
    payload = encode_payload({"deviceId": device_id, "type": kind, "value": value})
    assert olt.decode_data_report(payload) == (device_id, kind, value)


@SETTINGS
@given(device_id=st.text(min_size=1, max_size=40), event=st.text(min_size=1, max_size=40),
       payload=json_values, action_id=st.none() | st.text(max_size=40))
def test_an_event_as_sent_decodes_to_itself(device_id: str, event: str, payload: object,
                                            action_id: str | None) -> None:
    message = {"deviceId": device_id, "event": event, "payload": payload}
    if action_id is not None:
        message["actionId"] = action_id
    assert olt.decode_event(encode_payload(message)) == message


@SETTINGS
@given(message=json_objects)
def test_a_cloud_message_as_sent_decodes_to_itself(message: dict) -> None:
    """Actions, configuration, instructions: the back end publishes dicts, the gateway decodes."""
    assert olt.decode_json_object(encode_payload(message), "devices/x/actions") == message


@SETTINGS
@given(device=device_ids, other=device_ids)
def test_cloud_topics_reach_their_device_and_no_other(device: str, other: str) -> None:
    subscription = olt.device_filter(device)
    for topic in (olt.actions_topic(device), olt.configuration_topic(device),
                  olt.installations_topic(device), olt.errors_topic(device)):
        assert paho.topic_matches_sub(subscription, topic), (subscription, topic)
        if other != device:
            assert not paho.topic_matches_sub(olt.device_filter(other), topic)


# -- maintenance windows -------------------------------------------------------------------------------

times_of_day = st.builds(lambda h, m: f"{h:02d}:{m:02d}", st.integers(0, 23), st.integers(0, 59))
epochs = st.integers(0, 4_102_444_800 * 1000).map(lambda ms: ms / 1000)  # 1970 .. 2100


def inside(epoch: float, window: dict[str, str]) -> bool:
    moment = dt.datetime.fromtimestamp(epoch, dt.UTC)
    now = moment.hour * 60 + moment.minute
    start, end = (int(t[:2]) * 60 + int(t[3:]) for t in (window["start"], window["end"]))
    if start == end:
        return True  # the whole day
    return start <= now < end if start < end else (now >= start or now < end)


@SETTINGS
@given(epoch=epochs, start=times_of_day, end=times_of_day)
@example(epoch=7200.0, start="02:00", end="02:00")  # start == end: the whole day, not never
@example(epoch=3600.0, start="02:00", end="02:00")
@example(epoch=86_340.5, start="23:59", end="00:00")
def test_the_wait_for_a_window_ends_inside_it(epoch: float, start: str, end: str) -> None:
    window = {"start": start, "end": end}
    wait = olt.seconds_until_window(epoch, window)
    assert 0 <= wait < 86_400
    assert (wait == 0) == inside(epoch, window)
    if wait:
        assert inside(epoch + wait + 1e-3, window)  # open once the wait is over
        assert not inside(epoch + wait - 1, window) or wait < 1
    assert olt.seconds_until_window(epoch, None) == 0

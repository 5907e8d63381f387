"""Device Shadow over MQTT bridged to moto's iot-data: what a tracker reports is what boto3's
get_thing_shadow returns (device-shadow-mqtt message shapes)."""

from __future__ import annotations

import json

import pytest
from botocore.exceptions import ClientError
from aws_iot_harness import START_EPOCH, Harness

T0 = int(START_EPOCH)
SHADOW = "$aws/things/fota/shadow"
REPORTED = {"dev": {"v": {"imei": "352656100000000", "appV": "1.0.1", "modV": "mfw_nrf9160_1.3.5"}}}


@pytest.fixture
def tracker(harness: Harness) -> Harness:
    harness.thing("fota")
    return harness


def boto_shadow(harness: Harness, thing: str = "fota", **kwargs: str) -> dict:
    return json.loads(harness.iotdata.get_thing_shadow(thingName=thing, **kwargs)["payload"].read())


def test_reported_state_is_visible_to_boto3(tracker: Harness) -> None:
    replies = tracker.mqtt(f"{SHADOW}/update", {"state": {"reported": REPORTED}, "clientToken": "r1"})
    assert [t for t, _ in replies] == [f"{SHADOW}/update/accepted", f"{SHADOW}/update/documents"]
    accepted = replies[0][1]
    assert accepted["state"] == {"reported": REPORTED} and accepted["version"] == 1
    assert accepted["clientToken"] == "r1" and accepted["timestamp"] == T0
    assert accepted["metadata"]["reported"]["dev"]["v"]["appV"] == {"timestamp": T0}
    documents = replies[1][1]
    assert "previous" not in documents and documents["current"]["version"] == 1

    stored = boto_shadow(tracker)
    assert stored["state"]["reported"] == REPORTED and stored["version"] == 1
    assert stored["metadata"]["reported"]["dev"]["v"]["imei"] == {"timestamp": T0}  # harness clock


def test_update_merges_and_documents_carry_previous_and_current(tracker: Harness) -> None:
    tracker.mqtt(f"{SHADOW}/update", {"state": {"reported": REPORTED}})
    tracker.clock.now += 60
    replies = dict(tracker.mqtt(f"{SHADOW}/update", {"state": {"reported": {"dev": {"v": {"appV": "1.0.2"}}}}}))
    documents = replies[f"{SHADOW}/update/documents"]
    assert documents["previous"]["state"]["reported"]["dev"]["v"]["appV"] == "1.0.1"
    assert documents["current"]["state"]["reported"]["dev"]["v"] == {**REPORTED["dev"]["v"], "appV": "1.0.2"}
    assert documents["current"]["version"] == 2 and documents["timestamp"] == T0 + 60
    assert boto_shadow(tracker)["state"]["reported"]["dev"]["v"]["appV"] == "1.0.2"


def test_desired_state_from_the_cloud_yields_a_delta(tracker: Harness) -> None:
    tracker.mqtt(f"{SHADOW}/update", {"state": {"reported": {"cfg": {"act": False, "actwt": 60}}}})
    tracker.iotdata.update_thing_shadow(
        thingName="fota", payload=json.dumps({"state": {"desired": {"cfg": {"act": True, "actwt": 60}}}}))
    _, got = tracker.reply(f"{SHADOW}/get", b"")
    assert got["state"]["delta"] == {"cfg": {"act": True}} and got["version"] == 2

    replies = dict(tracker.mqtt(f"{SHADOW}/update",
                                {"state": {"desired": {"cfg": {"actwt": 120}}}, "clientToken": "d"}))
    delta = replies[f"{SHADOW}/update/delta"]
    assert delta["state"] == {"cfg": {"act": True, "actwt": 120}} and delta["version"] == 3
    assert delta["clientToken"] == "d" and "cfg" in delta["metadata"]

    replies = dict(tracker.mqtt(f"{SHADOW}/update", {"state": {"reported": {"cfg": {"act": True, "actwt": 120}}}}))
    assert f"{SHADOW}/update/delta" not in replies
    assert "delta" not in boto_shadow(tracker)["state"]


def test_version_in_the_request_must_match(tracker: Harness) -> None:
    topic, body = tracker.reply(f"{SHADOW}/update", {"state": {"reported": {"a": 1}}, "version": 5, "clientToken": "v"})
    assert topic == f"{SHADOW}/update/rejected"
    assert body == {"code": 409, "message": "Version conflict", "timestamp": T0, "clientToken": "v"}
    tracker.mqtt(f"{SHADOW}/update", {"state": {"reported": {"a": 1}}})
    topic, body = tracker.reply(f"{SHADOW}/update", {"state": {"reported": {"a": 2}}, "version": 1})
    assert topic.endswith("/accepted") and body["version"] == 2
    with pytest.raises(ClientError) as caught:  # moto's own path: 409, not an AttributeError/500
        tracker.iotdata.update_thing_shadow(thingName="fota",
                                            payload=json.dumps({"state": {"reported": {}}, "version": 9}))
    assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == 409


def test_named_shadow_and_delete(tracker: Harness) -> None:
    named = "$aws/things/fota/shadow/name/fota"
    topic, _ = tracker.reply(f"{named}/update", {"state": {"reported": {"fw": "1.0.1"}}})
    assert topic == f"{named}/update/accepted"
    assert boto_shadow(tracker, shadowName="fota")["state"]["reported"] == {"fw": "1.0.1"}
    topic, body = tracker.reply(f"{named}/delete", {"clientToken": "del"})
    assert topic == f"{named}/delete/accepted" and body == {"version": 2, "timestamp": T0, "clientToken": "del"}
    topic, body = tracker.reply(f"{named}/get", {})
    assert topic == f"{named}/get/rejected" and body["code"] == 404
    assert body["message"] == "No shadow exists with name: 'fota'"


@pytest.mark.parametrize(
    ("operation", "payload", "code"),
    [
        ("update", b"{not json", 400),
        ("update", b"[1]", 400),
        ("update", json.dumps({"reported": {"a": 1}}).encode(), 400),
        ("update", json.dumps({"state": {"reported": "x"}}).encode(), 400),
        ("update", json.dumps({"state": {"bogus": {}}}).encode(), 400),
        ("update", json.dumps({"state": {"reported": {"blob": "x" * (128 * 1024)}}}).encode(), 413),
        ("get", b"", 404),
        ("get", b"{not json", 400),
        ("delete", b"", 404),
        ("delete", b"\xff", 400),
    ],
)
def test_bad_input_on_every_shadow_topic(tracker: Harness, operation: str, payload: bytes, code: int) -> None:
    topic, body = tracker.reply(f"{SHADOW}/{operation}", payload)
    assert topic == f"{SHADOW}/{operation}/rejected"
    assert body["code"] == code and body["timestamp"] == T0 and body["message"]
    topic, _ = tracker.reply(f"{SHADOW}/update", {"state": {"reported": {"ok": True}}})
    assert topic.endswith("/accepted")  # still serving


def test_unknown_thing_and_unknown_shadow_operation(tracker: Harness) -> None:
    topic, body = tracker.reply("$aws/things/ghost/shadow/update", {"state": {"reported": {}}, "clientToken": "g"})
    assert topic.endswith("/update/rejected") and (body["code"], body["clientToken"]) == (404, "g")
    topic, body = tracker.reply(f"{SHADOW}/patch", {})
    assert topic == f"{SHADOW}/patch/rejected" and body["code"] == 400
    assert tracker.mqtt(f"{SHADOW}/update/accepted", {}) == []

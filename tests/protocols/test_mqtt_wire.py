"""The gateway's MQTT byte-level reader/writer: the spec's variable byte integer table, CONNECT
packets as paho (an independent implementation) encodes them, SUBSCRIBE/PUBLISH/SUBACK layouts,
and malformed input refused with MqttWireError."""

from __future__ import annotations

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.properties import Properties
from paho.mqtt.packettypes import PacketTypes

from otaharness.protocols import mqtt_wire as wire
from otaharness.servers.aws_iot.mqtt_gateway import thing_topic_allowed

# MQTT 5.0 §1.5.5 table 1-1 (the same in 3.1.1 §2.2.3): boundaries of 1 to 4 bytes.
VARINT_VECTORS = [(0, "00"), (127, "7f"), (128, "8001"), (16383, "ff7f"), (16384, "808001"),
                  (2097151, "ffff7f"), (2097152, "80808001"), (268435455, "ffffff7f")]


@pytest.mark.parametrize("value, encoded", VARINT_VECTORS)
def test_variable_byte_integers_match_the_spec_table(value, encoded):
    assert wire.encode_varint(value).hex() == encoded
    assert wire.decode_varint(bytes.fromhex(encoded), 0) == (value, len(encoded) // 2)


def test_a_fifth_length_byte_and_out_of_range_values_are_refused():
    with pytest.raises(wire.MqttWireError):
        wire.decode_varint(bytes.fromhex("8080808001"), 0)
    with pytest.raises(wire.MqttWireError):
        wire.encode_varint(268435456)


def test_take_packet_waits_for_whole_packets_and_refuses_oversized_ones():
    buffer = bytearray(bytes.fromhex("c000") + bytes.fromhex("3005"))  # PINGREQ, half a PUBLISH
    assert wire.take_packet(buffer, 100) == bytes.fromhex("c000")
    assert wire.take_packet(buffer, 100) is None
    buffer += b"\x00\x01ab"  # still one byte short
    assert wire.take_packet(buffer, 100) is None
    buffer += b"c"
    assert wire.take_packet(buffer, 100) == bytes.fromhex("3005") + b"\x00\x01abc"
    with pytest.raises(wire.MqttWireError, match="exceeds"):
        wire.take_packet(bytearray(bytes.fromhex("30ffff03")), 1024)


def _paho_connect(protocol, *, username=None, will=False, properties=None) -> bytes:
    client = paho.Client(CallbackAPIVersion.VERSION2, client_id="thing-1", protocol=protocol)
    if username is not None:
        client.username_pw_set(username, "secret")
    if will:
        client.will_set("$aws/things/thing-1/will", b"gone", qos=1)
    client._connect_properties = properties  # what connect(properties=...) stores
    client._send_connect(30)
    return bytes(client._out_packet[0]["packet"])


@pytest.mark.parametrize("protocol, level", [(MQTTProtocolVersion.MQTTv311, 4), (MQTTProtocolVersion.MQTTv5, 5)])
@pytest.mark.parametrize("username", [None, "device?SDK=Python"])
def test_connect_from_paho_is_read_and_its_credentials_replaced(protocol, level, username):
    properties = None
    if level == 5:
        properties = Properties(PacketTypes.CONNECT)
        properties.SessionExpiryInterval = 60
    packet = _paho_connect(protocol, username=username, will=True, properties=properties)
    connect = wire.parse_connect(packet)
    assert (connect.level, connect.client_id, connect.username) == (level, "thing-1", username)
    rewritten = wire.connect_with_credentials(connect, "otaharness-service", "pw")
    again = wire.parse_connect(rewritten)
    assert (again.level, again.client_id, again.username) == (level, "thing-1", "otaharness-service")
    assert again.head == connect.head  # protocol, flags (but credentials), keepalive, will: kept
    assert wire.parse_connect(wire.connect_with_credentials(connect, None, None)).username is None


def test_subscribe_filters_are_read_and_a_subset_reencoded():
    body = (b"\x00\x0a" + b"\x00\x03a/b" + b"\x01" + b"\x00\x03c/d" + b"\x00")
    packet = b"\x82" + wire.encode_varint(len(body)) + body
    subscribe = wire.parse_subscribe(packet, wire.MQTT_311)
    assert subscribe.packet_id == 10 and subscribe.entries == (("a/b", 1), ("c/d", 0))
    assert wire.encode_subscribe(subscribe, list(subscribe.entries)) == packet
    only_second = wire.parse_subscribe(wire.encode_subscribe(subscribe, [("c/d", 0)]), wire.MQTT_311)
    assert only_second.entries == (("c/d", 0),) and only_second.packet_id == 10


def test_mqtt5_publish_with_a_topic_alias_and_suback_with_properties():
    # PUBLISH QoS 1, topic "t", packet id 7, properties: topic alias 3 (0x23 00 03).
    body = b"\x00\x01t" + b"\x00\x07" + b"\x03\x23\x00\x03" + b"payload"
    publish = wire.parse_publish(b"\x32" + wire.encode_varint(len(body)) + body, wire.MQTT_5)
    assert (publish.topic, publish.qos, publish.packet_id, publish.topic_alias) == ("t", 1, 7, 3)
    suback = wire.encode_suback(9, bytes([1, 0x87]), wire.MQTT_5)
    assert wire.parse_suback(suback, wire.MQTT_5) == (9, b"\x00", bytes([1, 0x87]))
    assert wire.encode_connack_refused(wire.MQTT_5) == bytes.fromhex("2003008700")
    assert wire.encode_puback_refused(7) == bytes.fromhex("400400078700")


@pytest.mark.parametrize("packet", [
    bytes.fromhex("1002000a"),                       # CONNECT cut short
    b"\x10" + wire.encode_varint(12) + b"\x00\x04XXXX\x04\x02\x00\x3c\x00\x00",  # protocol name
    b"\x10" + wire.encode_varint(12) + b"\x00\x04MQTT\x09\x02\x00\x3c\x00\x00",  # level 9
])
def test_malformed_connects_are_refused(packet):
    with pytest.raises(wire.MqttWireError):
        wire.parse_connect(packet)


@pytest.mark.parametrize("topic, allowed", [
    ("$aws/things/t1/jobs/notify-next", True), ("$aws/things/t1/#", True),
    ("$aws/things/t2/jobs/notify-next", False), ("$aws/things/+/jobs/#", False),
    ("$aws/things/#", False), ("$aws/things/t1", False), ("#", False), ("t1/telemetry", False),
    ("$aws/events/presence/connected/t1", False),
])
def test_a_thing_reaches_only_its_own_topics(topic, allowed):
    assert thing_topic_allowed("t1", topic) is allowed

"""MQTT 3.1.1 and 5 control packets at the byte level, for a gateway that authorizes and forwards.

Only what an authorizing front needs: split a byte stream into packets, read CONNECT (protocol
level, client id, credentials), SUBSCRIBE (filters) and PUBLISH (topic, QoS, packet id, topic
alias), rewrite a CONNECT's credentials and a SUBSCRIBE's filter list, and build the answers a
server sends on its own (CONNACK, SUBACK, PUBACK, DISCONNECT). Every other byte is forwarded as
it came. Written here because no maintained Python library parses both protocol levels from
bytes without owning the connection (paho and amqtt encode/decode inside their own clients and
servers; amqtt knows 3.1.1 only).

References: MQTT 3.1.1 (OASIS 2014) §2.2 fixed header, §3.1 CONNECT, §3.2 CONNACK, §3.3 PUBLISH,
§3.4 PUBACK, §3.8 SUBSCRIBE, §3.9 SUBACK; MQTT 5.0 (OASIS 2019) §1.5.5 variable byte integer,
§2.2.2 properties, §3.1-§3.14 and the same packets with properties.
"""

from __future__ import annotations

from dataclasses import dataclass

CONNECT, CONNACK, PUBLISH, PUBACK, SUBSCRIBE, SUBACK, UNSUBSCRIBE, DISCONNECT = 1, 2, 3, 4, 8, 9, 10, 14
MQTT_311, MQTT_5 = 4, 5
# MQTT 5 reason codes (§2.4) and the 3.1.1 codes that mean the same.
NOT_AUTHORIZED_5 = 0x87
SUBACK_FAILURE_311 = 0x80
CONNACK_NOT_AUTHORIZED_311 = 5
TOPIC_ALIAS = 0x23

# Property identifier -> value type (MQTT 5 §2.2.2.2).
_BYTE, _TWO, _FOUR, _VARINT, _STRING, _BINARY, _PAIR = range(7)
_PROPERTY_TYPES = {
    0x01: _BYTE, 0x02: _FOUR, 0x03: _STRING, 0x08: _STRING, 0x09: _BINARY, 0x0B: _VARINT,
    0x11: _FOUR, 0x12: _STRING, 0x13: _TWO, 0x15: _STRING, 0x16: _BINARY, 0x17: _BYTE,
    0x18: _FOUR, 0x19: _BYTE, 0x1A: _STRING, 0x1C: _STRING, 0x1F: _STRING, 0x21: _TWO,
    0x22: _TWO, 0x23: _TWO, 0x24: _BYTE, 0x25: _BYTE, 0x26: _PAIR, 0x27: _FOUR, 0x28: _BYTE,
    0x29: _BYTE, 0x2A: _BYTE,
}


class MqttWireError(ValueError):
    """Bytes that are not a well-formed MQTT packet."""


def encode_varint(value: int) -> bytes:
    if not 0 <= value <= 268_435_455:
        raise MqttWireError(f"variable byte integer out of range: {value}")
    out = bytearray()
    while True:
        value, digit = divmod(value, 128)
        out.append(digit | (0x80 if value else 0))
        if not value:
            return bytes(out)


def decode_varint(data: bytes | bytearray, position: int) -> tuple[int, int] | None:
    """(value, position after it), or None when the data ends inside it."""
    value, multiplier = 0, 1
    for index in range(4):
        if position + index >= len(data):
            return None
        byte = data[position + index]
        value += (byte & 0x7F) * multiplier
        if not byte & 0x80:
            return value, position + index + 1
        multiplier *= 128
    raise MqttWireError("variable byte integer longer than 4 bytes")


def take_packet(buffer: bytearray, max_size: int) -> bytes | None:
    """Remove and return the first whole packet of ``buffer``; None if it has not all arrived.
    A packet announcing more than ``max_size`` bytes is an error (nothing is buffered for it)."""
    if not buffer:
        return None
    decoded = decode_varint(buffer, 1)
    if decoded is None:
        return None
    length, start = decoded
    if length > max_size:
        raise MqttWireError(f"packet of {length} bytes exceeds the limit of {max_size}")
    end = start + length
    if len(buffer) < end:
        return None
    packet = bytes(buffer[:end])
    del buffer[:end]
    return packet


def packet_type(packet: bytes) -> int:
    return packet[0] >> 4


class _Reader:
    """Reads fields of one packet's body; any overrun is a MqttWireError."""

    def __init__(self, packet: bytes) -> None:
        decoded = decode_varint(packet, 1)
        if decoded is None:
            raise MqttWireError("truncated fixed header")
        self.data = packet
        self.position = decoded[1]

    def _take(self, size: int) -> bytes:
        end = self.position + size
        if end > len(self.data):
            raise MqttWireError("packet ends inside a field")
        chunk = self.data[self.position:end]
        self.position = end
        return chunk

    def byte(self) -> int:
        return self._take(1)[0]

    def two(self) -> int:
        return int.from_bytes(self._take(2), "big")

    def string(self) -> str:
        raw = self._take(self.two())
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError as error:
            raise MqttWireError("string is not UTF-8") from error

    def binary(self) -> bytes:
        return self._take(self.two())

    def varint(self) -> int:
        decoded = decode_varint(self.data, self.position)
        if decoded is None:
            raise MqttWireError("packet ends inside a variable byte integer")
        value, self.position = decoded
        return value

    def properties(self) -> dict[int, object]:
        """An MQTT 5 property list (the last value of a repeated identifier wins)."""
        length = self.varint()
        end = self.position + length
        found: dict[int, object] = {}
        while self.position < end:
            identifier = self.varint()
            kind = _PROPERTY_TYPES.get(identifier)
            if kind is None:
                raise MqttWireError(f"unknown property 0x{identifier:02x}")
            if kind == _BYTE:
                found[identifier] = self.byte()
            elif kind == _TWO:
                found[identifier] = self.two()
            elif kind == _FOUR:
                found[identifier] = int.from_bytes(self._take(4), "big")
            elif kind == _VARINT:
                found[identifier] = self.varint()
            elif kind == _STRING:
                found[identifier] = self.string()
            elif kind == _BINARY:
                found[identifier] = self.binary()
            else:
                found[identifier] = (self.string(), self.string())
        if self.position != end:
            raise MqttWireError("property list length does not match its properties")
        return found

    def rest(self) -> bytes:
        return self.data[self.position:]


def _string(text: str) -> bytes:
    raw = text.encode()
    return len(raw).to_bytes(2, "big") + raw


def _packet(first_byte: int, body: bytes) -> bytes:
    return bytes([first_byte]) + encode_varint(len(body)) + body


@dataclass(frozen=True)
class Connect:
    level: int
    client_id: str
    username: str | None
    # The packet up to and including the will fields, with the username/password flags cleared.
    head: bytes
    flags_offset: int  # of the connect flags in ``head``


def parse_connect(packet: bytes) -> Connect:
    if packet_type(packet) != CONNECT:
        raise MqttWireError("the first packet is not CONNECT")
    reader = _Reader(packet)
    if reader.string() not in ("MQTT", "MQIsdp"):
        raise MqttWireError("CONNECT with an unknown protocol name")
    level = reader.byte()
    if level not in (MQTT_311, MQTT_5):
        raise MqttWireError(f"unsupported protocol level {level}")
    flags_at = reader.position
    flags = reader.byte()
    reader.two()  # keepalive
    if level == MQTT_5:
        reader.properties()
    client_id = reader.string()
    if flags & 0x04:  # will flag
        if level == MQTT_5:
            reader.properties()
        reader.string()
        reader.binary()
    head_end = reader.position
    username = reader.string() if flags & 0x80 else None
    if flags & 0x40:
        reader.binary()
    if reader.rest():
        raise MqttWireError("bytes after the CONNECT payload")
    body_start = decode_varint(packet, 1)[1]  # type: ignore[index]
    head = bytearray(packet[body_start:head_end])
    head[flags_at - body_start] = flags & 0x3F
    return Connect(level, client_id, username, bytes(head), flags_at - body_start)


def connect_with_credentials(connect: Connect, username: str | None, password: str | None) -> bytes:
    """The CONNECT with its own credentials replaced by ``username``/``password``."""
    head = bytearray(connect.head)
    flags_at = connect.flags_offset
    tail = b""
    if username is not None:
        head[flags_at] |= 0x80
        tail += _string(username)
        if password is not None:
            head[flags_at] |= 0x40
            tail += _string(password)
    return _packet(CONNECT << 4, bytes(head) + tail)


@dataclass(frozen=True)
class Subscribe:
    packet_id: int
    properties: bytes  # MQTT 5: the raw property list (with its length); b"" for 3.1.1
    entries: tuple[tuple[str, int], ...]  # (topic filter, options byte)


def _packet_id_and_properties(packet: bytes, level: int) -> tuple[_Reader, int, bytes]:
    """A reader past the packet id and (MQTT 5) the property list, kept raw."""
    reader = _Reader(packet)
    packet_id = reader.two()
    properties = b""
    if level == MQTT_5:
        start = reader.position
        reader.properties()
        properties = packet[start:reader.position]
    return reader, packet_id, properties


def parse_subscribe(packet: bytes, level: int) -> Subscribe:
    reader, packet_id, properties = _packet_id_and_properties(packet, level)
    entries = []
    while reader.rest():
        entries.append((reader.string(), reader.byte()))
    if not entries:
        raise MqttWireError("SUBSCRIBE without a topic filter")
    return Subscribe(packet_id, properties, tuple(entries))


def encode_subscribe(subscribe: Subscribe, entries: list[tuple[str, int]]) -> bytes:
    body = subscribe.packet_id.to_bytes(2, "big") + subscribe.properties
    body += b"".join(_string(topic) + bytes([options]) for topic, options in entries)
    return _packet(0x82, body)


@dataclass(frozen=True)
class Publish:
    topic: str
    qos: int
    packet_id: int | None
    topic_alias: int | None


def publish_text(packet_and_level: tuple[bytes, int]) -> str:
    """A PUBLISH for people: ``PUBLISH <topic> (QoS n)`` and its payload (a transcript's view;
    not on any hot path)."""
    packet, level = packet_and_level
    qos = (packet[0] >> 1) & 0x03
    reader = _Reader(packet)
    topic = reader.string()
    if qos:
        reader.two()
    if level == MQTT_5:
        reader.properties()
    payload = packet[reader.position:]
    try:
        shown = payload.decode("utf-8")
    except UnicodeDecodeError:
        shown = f"({len(payload)} bytes of binary)"
    return f"PUBLISH {topic or '(topic alias)'} (QoS {qos})\n{shown}"


def parse_publish(packet: bytes, level: int) -> Publish:
    qos = (packet[0] >> 1) & 0x03
    if qos == 3:
        raise MqttWireError("PUBLISH with QoS 3")
    reader = _Reader(packet)
    topic = reader.string()
    packet_id = reader.two() if qos else None
    alias = None
    if level == MQTT_5:
        alias_value = reader.properties().get(TOPIC_ALIAS)
        alias = alias_value if isinstance(alias_value, int) else None
    return Publish(topic, qos, packet_id, alias)


def parse_suback(packet: bytes, level: int) -> tuple[int, bytes, bytes]:
    """(packet id, raw properties, return codes)."""
    reader, packet_id, properties = _packet_id_and_properties(packet, level)
    return packet_id, properties, reader.rest()


def encode_suback(packet_id: int, codes: bytes, level: int, properties: bytes | None = None) -> bytes:
    props = (properties if properties is not None else b"\x00") if level == MQTT_5 else b""
    return _packet(SUBACK << 4, packet_id.to_bytes(2, "big") + props + codes)


def encode_connack_refused(level: int) -> bytes:
    if level == MQTT_5:
        return _packet(CONNACK << 4, bytes([0, NOT_AUTHORIZED_5, 0]))
    return _packet(CONNACK << 4, bytes([0, CONNACK_NOT_AUTHORIZED_311]))


def encode_puback_refused(packet_id: int) -> bytes:
    """MQTT 5 PUBACK 'Not authorized' (3.1.1 has no way to refuse a PUBLISH)."""
    return _packet(PUBACK << 4, packet_id.to_bytes(2, "big") + bytes([NOT_AUTHORIZED_5, 0]))


def encode_disconnect(reason: int, level: int) -> bytes:
    """A server's DISCONNECT: MQTT 5 only (3.1.1 servers just close)."""
    if level != MQTT_5:
        raise MqttWireError("MQTT 3.1.1 has no server DISCONNECT")
    return _packet(DISCONNECT << 4, bytes([reason, 0]))

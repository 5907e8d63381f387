"""Properties of the CWMP codec (hypothesis): decoding anything — bytes, XML trees of CWMP and SOAP
names, damaged real messages — returns an Envelope or raises the codec's own CwmpError, nothing
else; every RPC the codec knows, with any values its schema allows, survives build -> parse
unchanged (liberal and strict); building from values of the wrong type or beyond the schema
raises CwmpError too; the lexical value parsers raise only InvalidArguments."""

from __future__ import annotations

import base64
import dataclasses
import re
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, event, given, settings
from hypothesis import strategies as st
from lxml import etree

from otaharness.protocols.cwmp import (
    CWMP_NAMESPACES,
    FAULT_CODES,
    RPCS,
    TRANSFER_COMPLETE_FAULT_CODES,
    CwmpError,
    Envelope,
    Fault,
    Header,
    InvalidArguments,
    ParameterValueStruct,
    ScheduleDownload,
    SetParameterValuesFault,
    TimeWindowStruct,
    TransferCompleteFaultStruct,
    build_envelope,
    format_datetime,
    parse_datetime,
    parse_envelope,
)
from otaharness.protocols.cwmp.codes import CWMP_1_0_TRANSFER_COMPLETE_FAULT_CODES
from otaharness.protocols.cwmp.fault import MAX_FAULT_STRING
from otaharness.protocols.cwmp.namespaces import SCHEMA_LEVEL, SOAP_ENC, SOAP_ENV, XSD, XSI
from otaharness.protocols.cwmp.structs import Struct
from otaharness.protocols.cwmp.values import (
    check_typed_value,
    parse_boolean,
    parse_integer,
)

PROPERTY = settings(max_examples=150, deadline=None, database=None,
                    suppress_health_check=[HealthCheck.too_slow])
XML_CHARACTERS = st.characters(blacklist_categories=("Cs", "Cc")) | st.sampled_from("\t\n\r")
XML_TEXT = st.text(XML_CHARACTERS, max_size=30)
ANY_TEXT = st.text(max_size=30)  # control characters and lone surrogates too


# -- valid values for every field, from the codec's own field facts --------------------------------
def _text(wire: Any) -> st.SearchStrategy[str]:
    limit = wire.max_length if wire.max_length is not None else 40
    if wire.pattern is None:
        return st.text(XML_CHARACTERS, max_size=min(limit, 30))
    return st.from_regex(wire.pattern, fullmatch=True,
                         alphabet=st.characters(blacklist_categories=("Cs", "Cc"))).filter(
        lambda text: len(text) <= limit)


DATETIMES = st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30),
                         timezones=st.sampled_from([None, timezone.utc,
                                                    timezone(timedelta(hours=5, minutes=30)),
                                                    timezone(-timedelta(hours=11))]))
TYPED_VALUES = st.one_of(
    st.tuples(st.just("xsd:string"), XML_TEXT),
    st.tuples(st.just("xsd:int"), st.integers(-(2**31), 2**31 - 1).map(str)),
    st.tuples(st.just("xsd:unsignedInt"), st.integers(0, 2**32 - 1).map(str)),
    st.tuples(st.just("xsd:unsignedLong"), st.integers(0, 2**64 - 1).map(str)),
    st.tuples(st.just("xsd:boolean"), st.sampled_from(["true", "false", "1", "0"])),
    st.tuples(st.just("xsd:dateTime"), DATETIMES.map(format_datetime)),
    st.tuples(st.just("xsd:hexBinary"), st.binary(max_size=8).map(bytes.hex)),
    st.tuples(st.sampled_from(["xsd:base64", "xsd:base64Binary"]),
              st.binary(max_size=12).map(lambda b: base64.b64encode(b).decode())),
)


@st.composite
def time_windows(draw, count: int = 1) -> tuple[TimeWindowStruct, ...]:
    """Windows in order, none before its start, none overlapping the one before."""
    edges = sorted(draw(st.lists(st.integers(0, 2**32 - 1), min_size=2 * count, max_size=2 * count)))
    return tuple(TimeWindowStruct(window_start=edges[2 * n], window_end=edges[2 * n + 1],
                                  window_mode=draw(st.sampled_from(["1 At Any Time",
                                                                    "2 Immediately"])),
                                  user_message=draw(XML_TEXT),
                                  max_retries=draw(st.integers(-1, 2**31 - 1)))
                 for n in range(count))


# Fields whose values are rules beyond the per-field facts (their ``check``).
SPECIAL: dict[tuple[type, str], st.SearchStrategy[Any]] = {
    (ScheduleDownload, "time_window_list"): st.integers(1, 2).flatmap(time_windows),
    (Fault, "fault_code"): st.sampled_from(sorted(FAULT_CODES)),
    (SetParameterValuesFault, "fault_code"): st.integers(9000, 9899),
    (TransferCompleteFaultStruct, "fault_code"): st.sampled_from(sorted(TRANSFER_COMPLETE_FAULT_CODES)),
}


def _scalar(owner: type, spec: Any) -> st.SearchStrategy[Any]:
    if (owner, spec.name) in SPECIAL:
        return SPECIAL[owner, spec.name]
    kind, wire = spec.kind, spec.wire
    if isinstance(kind, type) and issubclass(kind, Struct):
        return structs(kind)
    if kind is bool:
        return st.booleans()
    if kind is datetime:
        return DATETIMES
    if kind is int:
        allowed = wire.allowed
        if isinstance(allowed, range):
            return st.integers(allowed.start, allowed.stop - 1)
        return st.sampled_from(sorted(allowed))
    return _text(wire)


def structs(cls: type) -> st.SearchStrategy[Any]:
    if cls is ParameterValueStruct:
        return st.builds(lambda name, typed: ParameterValueStruct(
            name=name, value=typed[1], value_type=typed[0]), _text(
            dataclasses.fields(cls)[0].metadata["wire"]), TYPED_VALUES)
    fields = {}
    for spec in cls.field_specs():
        value = _scalar(cls, spec)
        if spec.sequence and (cls, spec.name) not in SPECIAL:
            wire = spec.wire
            value = st.lists(value, min_size=wire.min_items,
                             max_size=max(wire.min_items, min(wire.max_items or 3, 3))).map(tuple)
        fields[spec.name] = value
    return st.builds(cls, **fields)


def _valid(message: Any) -> bool:
    try:
        message.validate()
    except InvalidArguments:
        return False
    return True


HEADERS = st.builds(Header, id=st.none() | XML_TEXT, hold_requests=st.none() | st.booleans(),
                    no_more_requests=st.none() | st.booleans(),
                    session_timeout=st.none() | st.integers(0, 2**32 - 1),
                    supported_cwmp_versions=st.none() | st.just("1.0,1.1,1.2,1.3,1.4"),
                    use_cwmp_version=st.none() | st.sampled_from(["1.2", "1.4"]))


@st.composite
def envelopes(draw, rpc: type | None = None) -> Envelope:
    rpc = rpc or draw(st.sampled_from([*RPCS.values(), Fault]))
    body = draw(structs(rpc).filter(_valid))
    namespaces = [n for n in CWMP_NAMESPACES if SCHEMA_LEVEL[n] >= SCHEMA_LEVEL[rpc.SINCE]]
    namespace = draw(st.sampled_from(namespaces))
    if isinstance(body, (RPCS["TransferComplete"], RPCS["AutonomousTransferComplete"])):
        if SCHEMA_LEVEL[namespace] == 0:
            assume(body.fault_struct.fault_code in CWMP_1_0_TRANSFER_COMPLETE_FAULT_CODES)
    return Envelope(body=body, header=draw(HEADERS), namespace=namespace)


@pytest.mark.parametrize("rpc", [*RPCS.values(), Fault], ids=lambda rpc: rpc.__name__)
@settings(max_examples=40, deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
@given(data=st.data())
def test_every_rpc_round_trips_with_any_values_its_schema_allows(rpc, data):
    envelope = data.draw(envelopes(rpc))
    encoded = build_envelope(envelope)
    assert parse_envelope(encoded) == envelope
    assert parse_envelope(encoded, strict=True) == envelope


# -- building from values the schema does not allow ------------------------------------------------
WRONG_VALUES = st.one_of(ANY_TEXT, st.text(min_size=300, max_size=400), st.integers(-(2**70), 2**70),
                         st.booleans(), st.none(), DATETIMES, st.floats(allow_nan=True))


@PROPERTY
@given(rpc=st.sampled_from([r for r in RPCS.values() if r.field_specs()]), data=st.data())
def test_building_from_values_outside_the_schema_raises_only_cwmp_errors(rpc, data):
    """One field of the body, or the header's text entries, out of the schema (not both: a bad
    body is refused before the header is looked at)."""
    message = valid = data.draw(structs(rpc).filter(_valid))
    header = Header(id="1")
    wrong: Any = None
    if data.draw(st.booleans()):
        spec = data.draw(st.sampled_from(rpc.field_specs()))
        wrong = data.draw(WRONG_VALUES)
        if spec.sequence:
            wrong = data.draw(st.sampled_from([wrong, (wrong,), [wrong]]))
        message = dataclasses.replace(valid, **{spec.name: wrong})
    else:
        header = data.draw(st.builds(Header, id=st.none() | ANY_TEXT,
                                     supported_cwmp_versions=st.none() | ANY_TEXT,
                                     use_cwmp_version=st.none() | ANY_TEXT))
    try:
        encoded = build_envelope(Envelope(body=message, header=header))
    except CwmpError:
        return
    if isinstance(wrong, list):  # a list is a sequence the codec accepts; it decodes as a tuple
        message = dataclasses.replace(message, **{spec.name: tuple(wrong)})
    assert parse_envelope(encoded).body == message  # what was built is what it says


# -- decoding anything ---------------------------------------------------------------------------
def decodes_or_refuses(data: bytes) -> None:
    for strict in (False, True):
        try:
            envelope = parse_envelope(data, strict=strict)
        except CwmpError as error:
            event(f"strict={strict}: {type(error).__name__}")
            continue
        event(f"strict={strict}: decoded {type(envelope.body).__name__}")
        assert isinstance(envelope, Envelope)
        if strict:
            build_envelope(envelope)  # strictly valid: it can be sent back as it is


@PROPERTY
@given(data=st.binary(max_size=2000))
def test_arbitrary_bytes_decode_or_raise_only_cwmp_errors(data):
    decodes_or_refuses(data)


LOCAL_NAMES = sorted({*RPCS, "Envelope", "Header", "Body", "Fault", "detail", "faultcode",
                      "FaultCode", "FaultString", "ID", "HoldRequests", "SessionTimeout",
                      "DeviceId", "Event", "EventStruct", "EventCode", "CommandKey", "ParameterList",
                      "ParameterValueStruct", "Name", "Value", "FaultStruct", "StartTime",
                      "CompleteTime", "MaxEnvelopes", "RetryCount", "CurrentTime", "OUI", "Status",
                      "TimeWindowList", "MethodList", "string", "SetParameterValuesFault"})
NAMESPACES = [None, SOAP_ENV, *CWMP_NAMESPACES, "urn:example"]
HUGE_NUMBERS = st.sampled_from(["9" * 25, "9" * 5000, "-" + "1" * 4301, "+" + "0" * 70 + "1"])
TEXTS = st.one_of(XML_TEXT, HUGE_NUMBERS, st.sampled_from(
    ["", "0", "-1", "1", "true", "0001-01-01T00:00:00Z", "2026-02-30T25:00:00+99:00", "1 BOOT",
     "E48D8C", "xsd:int", "X 00D09E x", "é=", "\u0663"]))


@st.composite
def xml_trees(draw, depth: int = 0) -> etree._Element:
    namespace = draw(st.sampled_from(NAMESPACES))
    name = draw(st.sampled_from(LOCAL_NAMES))
    node = etree.Element(f"{{{namespace}}}{name}" if namespace else name)
    if draw(st.booleans()):
        node.set(f"{{{XSI}}}type", draw(st.sampled_from(["xsd:int", "xsd:dateTime", "x:y", ":", "",
                                                         "xsd:boolean", "cwmp:Weird"])))
    if draw(st.booleans()):
        node.set(f"{{{SOAP_ENV}}}mustUnderstand", draw(st.sampled_from(["0", "1", "true", "x"])))
    if draw(st.booleans()):
        node.set(f"{{{SOAP_ENC}}}arrayType", draw(st.sampled_from(["cwmp:EventStruct[1]", "x[-1]"])))
    if depth < 5:
        for child in draw(st.lists(xml_trees(depth + 1), max_size=3 if depth < 3 else 1)):
            node.append(child)
    if len(node) == 0 or draw(st.booleans()):
        node.text = draw(TEXTS)
    return node


@st.composite
def soap_documents(draw) -> bytes:
    """Mostly Envelope/Body/one element, so that decoding reaches the RPCs and their fields."""
    envelope = etree.Element(f"{{{SOAP_ENV}}}Envelope",
                             nsmap={"soap-env": SOAP_ENV, "xsd": XSD, "xsi": XSI})
    if draw(st.booleans()):
        header = etree.SubElement(envelope, f"{{{SOAP_ENV}}}Header")
        for entry in draw(st.lists(xml_trees(5), max_size=3)):
            header.append(entry)
    body = etree.SubElement(envelope, f"{{{SOAP_ENV}}}Body")
    rpc = draw(xml_trees(1))
    if draw(st.integers(0, 3)):
        rpc.tag = f"{{{draw(st.sampled_from(CWMP_NAMESPACES))}}}{draw(st.sampled_from(sorted(RPCS)))}"
    body.append(rpc)
    root = envelope if draw(st.integers(0, 5)) else draw(xml_trees())
    return etree.tostring(root, xml_declaration=draw(st.booleans()), encoding="UTF-8")


@PROPERTY
@given(data=soap_documents())
def test_xml_of_cwmp_and_soap_names_decodes_or_raises_only_cwmp_errors(data):
    decodes_or_refuses(data)


@st.composite
def damaged_messages(draw) -> bytes:
    data = bytearray(build_envelope(draw(envelopes())))
    for _ in range(draw(st.integers(1, 3))):
        kind = draw(st.sampled_from(["text", "text", "namespace", "byte", "cut", "splice"]))
        where = draw(st.integers(0, len(data)))
        if kind == "text":
            closers = [m.start() for m in re.finditer(rb"</", data)]
            at = draw(st.sampled_from(closers))
            start = data.rfind(b">", 0, at) + 1
            data[start:at] = draw(TEXTS).encode("utf-8", "surrogatepass")
        elif kind == "namespace":  # another CWMP version's namespace, or none of them
            data = bytearray(re.sub(rb"urn:dslforum-org:cwmp-1-\d", draw(st.sampled_from(
                [n.encode() for n in CWMP_NAMESPACES] + [b"urn:example"])), bytes(data)))
        elif kind == "byte":
            data[where:where + 1] = draw(st.binary(min_size=1, max_size=2))
        elif kind == "cut":
            del data[where:where + draw(st.integers(1, 60))]
        else:
            data[where:where] = draw(st.sampled_from([b"<x>", b"</x>", b"&lt;", b"&#1;", b"\xff",
                                                      b"<![CDATA[x]]>", b"<?pi?>", b"<!-- -->"]))
    return bytes(data)


@PROPERTY
@given(data=damaged_messages())
def test_damaged_real_messages_decode_or_raise_only_cwmp_errors(data):
    decodes_or_refuses(data)


# -- faults built from errors that quote the peer ----------------------------------------------
@PROPERTY
@given(text=st.text(max_size=3000))
def test_a_fault_quoting_any_text_can_be_sent(text):
    fault = Fault.from_error(InvalidArguments(text), "ACS")
    assert len(fault.fault_string) <= MAX_FAULT_STRING
    decoded = parse_envelope(build_envelope(Envelope(body=fault))).body
    assert decoded.fault_code == 8003 and decoded.fault_string == fault.fault_string


# -- lexical values ------------------------------------------------------------------------------
@PROPERTY
@given(text=st.one_of(ANY_TEXT, st.text("0123456789+- ", max_size=6000)),
       value_type=st.sampled_from(["xsd:int", "xsd:unsignedInt", "xsd:long", "xsd:unsignedLong",
                                   "xsd:boolean", "xsd:dateTime", "xsd:base64", "xsd:hexBinary"]))
def test_value_parsers_raise_only_invalid_arguments(text, value_type):
    for parse in (parse_integer, parse_boolean, parse_datetime,
                  lambda t: check_typed_value(t, value_type)):
        try:
            parse(text)
        except InvalidArguments:
            pass


@PROPERTY
@given(number=st.integers(-(10**63) + 1, 10**64 - 1), when=DATETIMES)
def test_integers_and_times_round_trip_through_their_text(number, when):
    assert parse_integer(str(number)) == number
    assert parse_integer(f" +{abs(number)} ") == abs(number)
    assert parse_datetime(format_datetime(when)) == when


def test_integer_text_beyond_any_cwmp_type_is_invalid_arguments():
    """Python's int() refuses 4300+ digits with a plain ValueError; the codec must not."""
    for text in ("9" * 65, "9" * 5000, "-" + "1" * 10_000):
        with pytest.raises(InvalidArguments, match="out of range"):
            parse_integer(text)
    with pytest.raises(InvalidArguments):
        parse_integer("\u0663")  # ARABIC-INDIC DIGIT THREE: int() reads it, xs:integer does not

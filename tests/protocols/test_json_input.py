"""The one JSON reader: what it refuses (each with a reason and a path), what it keeps, and that
no input makes it raise anything but JsonInputError."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from otaharness.protocols.json_input import (MAX_INTEGER, JsonInputError, parse_json,
                                             parse_json_object, validate)


@pytest.mark.parametrize("text, reason", [
    ("[" * 1000, "nested deeper"),
    ("[" * 40 + "]" * 40, "nested deeper"),
    ('{"a": NaN}', "NaN is not JSON"),
    ('[Infinity]', "Infinity is not JSON"),
    ("-Infinity", "-Infinity is not JSON"),
    ("1" * 5000, "5000 digits"),
    (str(MAX_INTEGER + 1), "out of range"),
    (str(-MAX_INTEGER - 2), "out of range"),
    ("1e999", "out of range"),
    ('{"a": 1', "not JSON"),
    ("", "not JSON"),
])
def test_refused_with_a_reason(text, reason):
    with pytest.raises(JsonInputError, match=reason):
        parse_json(text)


def test_size_utf8_and_object_limits():
    with pytest.raises(JsonInputError, match="exceed the limit of 10"):
        parse_json(b"[" + b"1," * 10 + b"1]", max_bytes=10)
    with pytest.raises(JsonInputError, match="not UTF-8"):
        parse_json(b'"\xff"')
    with pytest.raises(JsonInputError, match="must be a JSON object"):
        parse_json_object(b"[1]")


def test_lone_surrogates_are_refused_with_their_path():
    with pytest.raises(JsonInputError) as refused:
        parse_json('{"name": ["ok", "\\ud800"]}')
    assert refused.value.path == "$.name[1]"
    with pytest.raises(JsonInputError, match="key with a lone surrogate"):
        parse_json('{"\\udfff": 1}')
    assert parse_json('"\\ud83d\\ude00"') == "\U0001f600"  # a proper pair is one character


def test_refused_numbers_and_constants_name_their_place_in_document_order():
    with pytest.raises(JsonInputError) as refused:
        parse_json('{"config": {"name": "x", "redundancy": NaN, "rounds": 1e999}}')
    assert refused.value.where == "$.config.redundancy" and refused.value.syntax
    assert str(refused.value) == "NaN is not JSON" and refused.value.path == "$"
    with pytest.raises(JsonInputError) as refused:
        parse_json('[1, 2, 99999999999999999999]')
    assert refused.value.where == "$[2]" and not refused.value.syntax


def test_limits_are_inclusive_and_values_kept():
    nested = "[" * 32 + "]" * 32
    assert parse_json(nested, max_depth=32) is not None
    with pytest.raises(JsonInputError):
        parse_json(nested, max_depth=31)
    assert parse_json(f"[{MAX_INTEGER}, {-MAX_INTEGER - 1}, 1.5, true, null, \"é\"]") == [
        MAX_INTEGER, -MAX_INTEGER - 1, 1.5, True, None, "é"]


def test_schema_errors_name_the_field():
    schema = {"type": "object", "properties": {"devices": {"type": "array", "items": {"type": "string"}}}}
    with pytest.raises(JsonInputError) as refused:
        validate({"devices": ["a", 2]}, schema)
    assert refused.value.path == "$.devices[1]" and "is not of type 'string'" in str(refused.value)
    validate({"devices": ["a"]}, schema)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-MAX_INTEGER - 1, MAX_INTEGER)
    | st.floats(allow_nan=False, allow_infinity=False) | st.text(alphabet=st.characters(blacklist_categories=["Cs"])),
    lambda inner: st.lists(inner, max_size=4)
    | st.dictionaries(st.text(alphabet=st.characters(blacklist_categories=["Cs"])), inner, max_size=4),
    max_leaves=20)


@settings(max_examples=300, deadline=None)
@given(json_values)
def test_well_formed_json_within_limits_round_trips(value):
    assert parse_json(json.dumps(value)) == value


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=300) | st.text(alphabet="[]{}\":,0123456789eE+-.NaIfinity tru", max_size=300))
def test_arbitrary_input_raises_only_json_input_error(data):
    try:
        parse_json(data)
    except JsonInputError:
        pass

"""EUI and ID6 text forms, checked against basicstation 2.0.6 vectors (selftests, fact sheet)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from otaharness.protocols.basics_station import (
    BasicsStationCodecError,
    decode_json_eui,
    format_eui,
    format_id6,
    parse_eui,
    router_eui,
)

# uj_encId6 vectors from src/selftest_ujenc.c, plus the fact sheet's "::1" and the ID6
# examples of the station glossary (f::1, f:a123:f8:100, ::a:b, 1::).
ID6_VECTORS = [
    (0x0000000000000000, "::0"),
    (0x0000000000000001, "::1"),
    (0x0000000000020001, "::2:1"),
    (0x0004000000000001, "4::1"),
    (0x0004000300000000, "4:3::"),
    (0x0004000000000000, "4::"),
    (0x0000000300020000, "0:3:2:0"),
    (0x0001000000000000, "1::"),
    (0x00000000000A000B, "::a:b"),
    (0x000F000000000001, "f::1"),
    (0x000FA12300F80100, "f:a123:f8:100"),
    (0xFFFFFFFFFFFFFFFF, "ffff:ffff:ffff:ffff"),
]


@pytest.mark.parametrize(("eui", "text"), ID6_VECTORS)
def test_id6_format_matches_station(eui: int, text: str) -> None:
    assert format_id6(eui) == text


@pytest.mark.parametrize(("eui", "text"), ID6_VECTORS)
def test_id6_parse_matches_station(eui: int, text: str) -> None:
    assert parse_eui(text) == eui
    assert parse_eui(text.upper()) == eui


# rt_readEui vectors from src/selftest_rt.c
@pytest.mark.parametrize(("text", "eui"), [
    ("123456", 0x123456),
    ("12-34-56-78-9a-bc-de-f0", 0x123456789ABCDEF0),
    ("12:34:56:78:9a", 0x123456789A),
    ("12::34", 0x0012000000000034),
    ("::12:34", 0x0000000000120034),
    ("12:34::", 0x0012003400000000),
    ("1:2:3:4", 0x0001000200030004),
])
def test_parse_eui_station_selftest_vectors(text: str, eui: int) -> None:
    assert parse_eui(text) == eui


@pytest.mark.parametrize("text", ["12:::34", "1:2:3:4:5:6:7:8:9:0", ":12:34"])
def test_parse_eui_station_selftest_rejects(text: str) -> None:
    with pytest.raises(BasicsStationCodecError):
        parse_eui(text)


def test_parse_eui_keeps_station_quirks() -> None:
    # Two colons without "::" leave the groups right-aligned.
    assert parse_eui("1:2:3") == 0x0000000100020003
    # Four colons are not ID6: separators are dropped and the digits read as one number.
    assert parse_eui("::1:2:3") == 0x123
    # A MAC (5 colons) is plain hex.
    assert parse_eui("aa:bb:cc:dd:ee:ff") == 0xAABBCCDDEEFF


@pytest.mark.parametrize(("text", "fragment"), [
    ("", "no hex digits"),
    ("::", "no hex digits"),
    ("12-34:56", "mixes"),
    ("1-2-3-4-5-6-7-8-9", "more than 7 separators"),
    ("0123456789abcdef0", "more than 16 hex digits"),
    ("12345::", "1 to 4 hex digits"),
    ("00-11-22-33-44-55-66-7g", "contains 'g'"),
    (" ::1", "contains ' '"),
])
def test_parse_eui_errors_say_what_is_wrong(text: str, fragment: str) -> None:
    with pytest.raises(BasicsStationCodecError, match=fragment):
        parse_eui(text)


def test_format_eui_forms() -> None:
    # dntxed fixture of the fact sheet; uppercase hex as uj_encEui (selftest: 91-A2-B3-...).
    assert format_eui(0x0000000011000002) == "00-00-00-00-11-00-00-02"
    assert format_eui(0x91A2B3C4D5E6F708) == "91-A2-B3-C4-D5-E6-F7-08"
    assert format_eui(0x91A2B3C4D5E6F708, ":") == "91:A2:B3:C4:D5:E6:F7:08"
    assert format_eui(0x91A2B3C4D5E6F708, "") == "91A2B3C4D5E6F708"


@pytest.mark.parametrize("bad", [-1, 1 << 64, True, "1"])
def test_format_rejects_non_eui(bad: object) -> None:
    with pytest.raises(BasicsStationCodecError, match="0..2\\*\\*64-1"):
        format_id6(bad)  # type: ignore[arg-type]


euis = st.integers(min_value=0, max_value=(1 << 64) - 1)
# Values with zero groups in every position, so all compression branches are reached.
grouped_euis = st.lists(st.sampled_from([0, 1, 0xABCD, 0xFFFF]), min_size=4, max_size=4).map(
    lambda groups: (groups[0] << 48) | (groups[1] << 32) | (groups[2] << 16) | groups[3]
)


@given(st.one_of(euis, grouped_euis))
def test_round_trip_every_written_form(eui: int) -> None:
    assert parse_eui(format_id6(eui)) == eui
    for separator in ("-", ":", ""):
        assert parse_eui(format_eui(eui, separator)) == eui
    assert decode_json_eui(format_eui(eui)) == eui
    assert decode_json_eui(format_eui(eui, "")) == eui


@given(grouped_euis)
def test_id6_compresses_only_in_the_station_cases(eui: int) -> None:
    text = format_id6(eui)
    groups = [(eui >> shift) & 0xFFFF for shift in (48, 32, 16, 0)]
    assert text.count("::") <= 1
    if "::" not in text:
        assert text == ":".join(f"{group:x}" for group in groups)
    else:
        # "::" always stands for two or three zero groups, never one.
        written = [part for part in text.replace("::", ":").split(":") if part]
        assert 4 - len(written) in (2, 3)


def test_decode_json_eui_as_uj_eui() -> None:
    assert decode_json_eui("00-00-00-00-11-00-00-02") == 0x11000002
    assert decode_json_eui("0000000011000002") == 0x11000002
    assert decode_json_eui(0x11000002) == 0x11000002
    assert decode_json_eui(-1) == (1 << 64) - 1  # signed JSON number, two's complement
    with pytest.raises(BasicsStationCodecError, match="illegal hex"):
        decode_json_eui("00:00:00:00:11:00:00:02")  # no colon form here
    with pytest.raises(BasicsStationCodecError, match="illegal hex"):
        decode_json_eui("::1")
    with pytest.raises(BasicsStationCodecError, match="illegal hex"):
        decode_json_eui("001")


def test_router_field_accepts_what_clients_send() -> None:
    assert router_eui("::1") == 1
    assert router_eui("00-00-00-00-00-00-00-01") == 1
    assert router_eui(1) == 1
    with pytest.raises(BasicsStationCodecError, match="'router' must be"):
        router_eui(None)  # type: ignore[arg-type]

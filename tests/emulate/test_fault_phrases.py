"""The one fault vocabulary read on a command line: link faults, power cuts, which devices."""

from __future__ import annotations

import itertools

import pytest

from otaharness.runtime.faults import (
    CutAfter,
    Delay,
    Drop,
    FaultPlan,
    LinkFaultError,
    PowerCut,
    Refuse,
    Throttle,
    describe_fault,
    parse_device_selection,
    parse_fault,
    parse_faults,
    parse_link_fault,
)


@pytest.mark.parametrize("phrase, fault", [
    ("cut after 40 KiB", CutAfter(40 * 1024)),
    ("cut after 100 bytes every time", CutAfter(100, once=False)),
    ("drop", Drop()),
    ("refused", Refuse()),
    ("delay 2 s", Delay(2.0)),
    ("delayed by 250 ms", Delay(0.25)),
    ("throttle to 1 KiB/s", Throttle(1024.0)),
    ("throttled to 2 KiB/s", Throttle(2048.0)),
    ("power cut at 64 KiB", PowerCut(at_bytes=64 * 1024)),
    ("Power  cut after 30 s", PowerCut(after_seconds=30.0)),
    ("power cut after 2 minutes for 5 s", PowerCut(after_seconds=120.0, off_seconds=5.0)),
    ("power cut at 1 MiB for 1 s", PowerCut(at_bytes=1024**2, off_seconds=1.0)),
])
def test_a_phrase_reads_as_its_fault_and_back(phrase, fault):
    assert parse_fault(phrase) == fault
    assert parse_fault(describe_fault(fault)) == fault


def test_link_phrases_of_scenarios_still_read_the_same():
    assert parse_link_fault("delayed by 2 seconds") == Delay(2.0)
    assert parse_link_fault("throttled to 1 KiB/s") == Throttle(1024.0)
    with pytest.raises(LinkFaultError, match="not a link fault"):
        parse_link_fault("power cut at 4 KiB")


@pytest.mark.parametrize("phrase, complaint", [
    ("power cut at soon", "in power cut"),
    ("power cut", "not a power cut"),
    ("power cut after -1 s", "in power cut"),
    ("melted", "not a fault.*power cut at 64 KiB"),
    ("cut after 4 parsecs", "unknown unit"),
])
def test_a_phrase_that_names_no_fault_is_refused_with_the_phrases_to_use(phrase, complaint):
    with pytest.raises(LinkFaultError, match=complaint):
        parse_fault(phrase)


def test_a_plan_holds_one_link_fault_and_one_power_cut():
    plan = parse_faults(["throttled to 1 KiB/s", "power cut at 16 KiB"])
    assert plan == FaultPlan(Throttle(1024.0), PowerCut(at_bytes=16384))
    assert plan.describe() == "throttled to 1024 bytes/s, power cut at 16384 bytes"
    assert not parse_faults([])
    with pytest.raises(LinkFaultError, match="two link faults"):
        parse_faults(["drop", "refused"])
    with pytest.raises(LinkFaultError, match="two power cuts"):
        parse_faults(["power cut at 1 KiB", "power cut after 1 s"])


@pytest.mark.parametrize("size", [1, 3, 7, 10, 100, 1001])
@pytest.mark.parametrize("percent", ["0%", "10%", "25%", "50%", "12.5%", "100%"])
def test_a_share_of_the_fleet_is_spread_evenly_over_any_first_devices(size, percent):
    selection = parse_device_selection(percent)
    chosen = [number for number in range(1, size + 1) if selection.selects(number)]
    share = float(percent[:-1])
    assert len(chosen) == int(size * share // 100)
    if len(chosen) > 1:  # spread out, not bunched at the start
        gaps = {b - a for a, b in itertools.pairwise(chosen)}
        assert max(gaps) - min(gaps) <= 1


def test_a_device_list_names_numbers_and_ranges():
    selection = parse_device_selection("1, 3,5-7")
    assert [n for n in range(1, 10) if selection.selects(n)] == [1, 3, 5, 6, 7]
    assert all(parse_device_selection("all").selects(n) for n in (1, 2, 999))


@pytest.mark.parametrize("text", ["", "abc", "150%", "0", "4-2", "-5%"])
def test_a_selection_that_names_no_devices_is_refused(text):
    with pytest.raises(LinkFaultError):
        parse_device_selection(text)

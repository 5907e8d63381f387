"""Step support: durations, ${name} values (JSON-aware), partial JSON matching."""

import json

import pytest

from otaharness.bdd.support import lookup, mismatches, substitute, substitute_in_json
from otaharness.units import parse_duration, parse_rate, parse_size


@pytest.mark.parametrize("text, seconds", [
    ("30 minutes", 1800), ("1 hour", 3600), ("2 days", 172800), ("90 s", 90),
    ("250 ms", 0.25), ("1.5 hours", 5400), ("1 week", 604800)])
def test_durations(text, seconds):
    assert parse_duration(text) == seconds


def test_a_bad_duration_says_what_works():
    with pytest.raises(ValueError, match="30 minutes"):
        parse_duration("soon-ish")
    with pytest.raises(ValueError, match="unknown unit 'fortnights'"):
        parse_duration("2 fortnights")


def test_sizes_and_rates():
    assert parse_size("4 KiB") == 4096 and parse_size("700 bytes") == 700
    assert parse_size("1 MB") == 1_000_000
    assert parse_rate("1 KiB/s") == 1024 and parse_rate("10 kB per second") == 10_000
    with pytest.raises(ValueError, match="whole byte"):
        parse_size("1.5 bytes")
    with pytest.raises(ValueError, match="not a rate"):
        parse_rate("1 KiB")


def test_dotted_lookup_and_errors():
    values = {"tracker": {"fota": {"id": "351", "jobs": [{"n": 1}]}}}
    assert lookup(values, "tracker.fota.id") == "351"
    assert lookup(values, "tracker.fota.jobs.0.n") == 1
    with pytest.raises(KeyError, match="tracker.fota.arn"):
        lookup(values, "tracker.fota.arn")


def test_text_substitution():
    assert substitute("Upgrade ${t.id} to ${v}", {"t": {"id": "x1"}, "v": "1.0.1"}) == \
        "Upgrade x1 to 1.0.1"


def test_json_substitution_escapes_inside_strings():
    document = json.dumps({"operation": "app_fw_update", "filename": 'a"b.hex'})
    text = '{"document": "${doc}", "size": ${size}, "label": "v${size}", "list": ${items}}'
    parsed = json.loads(substitute_in_json(text, {"doc": document, "size": 13,
                                                  "items": [1, "two"]}))
    assert parsed == {"document": document, "size": 13, "label": "v13", "list": [1, "two"]}
    assert json.loads(parsed["document"])["filename"] == 'a"b.hex'


def test_partial_matching_reports_each_difference():
    actual = {"jobId": "j", "status": "IN_PROGRESS", "versionNumber": 2, "extra": True}
    assert mismatches({"jobId": "j", "versionNumber": 2}, actual) == []
    problems = mismatches({"status": "CANCELED", "missing": 1, "versionNumber": 2.0}, actual)
    assert problems == ["status: expected 'CANCELED', seen 'IN_PROGRESS'", "missing: missing"]
    assert mismatches({"flag": True}, {"flag": 1}) == ["flag: expected True, seen 1"]
    assert mismatches([1, 2], [1]) != []

"""`emulate KIND --count N` takes a whole number from 1: `--count -3` or `--count 0` started no
device and then waited, with an empty summary, until interrupted."""

from __future__ import annotations

import pytest

from otaharness.cli import build_parser

# each kind with a --count and the other options it needs
KINDS = {
    "cpe": ["--acs-url", "https://127.0.0.1:7547/acs"],
    "aws-tracker": ["--mqtt", "mqtts://127.0.0.1:8883"],
    "basics-station": ["--home", "h"],
}


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("count, complaint", [("0", "'0': at least 1 device"),
                                              ("-3", "'-3': at least 1 device"),
                                              ("ten", "'ten' is not a whole number")])
def test_a_count_below_one_stops_the_command_in_one_line(kind, count, complaint, capsys):
    with pytest.raises(SystemExit) as stopped:
        build_parser().parse_args(["emulate", kind, *KINDS[kind], "--count", count])
    assert stopped.value.code == 2
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert error == f"otaharness emulate {kind}: error: argument --count: {complaint}", error


@pytest.mark.parametrize("kind", KINDS)
def test_a_count_of_one_or_more_is_taken(kind):
    assert build_parser().parse_args(["emulate", kind, *KINDS[kind], "--count", "3"]).count == 3

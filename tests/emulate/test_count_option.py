"""`emulate KIND --count N` (lorawan: `--stations`, `--devices`) takes a whole number from 1:
`--count -3` or `--count 0` started no device and then waited, with an empty summary, until
interrupted."""

from __future__ import annotations

import pytest

from otaharness.cli import build_parser

# each kind's count options with the other options it needs
KINDS = {
    "cpe": (["--count"], ["--acs-url", "https://127.0.0.1:7547/acs"]),
    "aws-tracker": (["--count"], ["--mqtt", "mqtts://127.0.0.1:8883"]),
    "basics-station": (["--count"], ["--home", "h"]),
    "lorawan": (["--stations", "--devices"], ["--tc-uri", "ws://127.0.0.1:6038", "--home", "h"]),
}
COUNTS = [(kind, option) for kind, (options, _) in KINDS.items() for option in options]


@pytest.mark.parametrize("kind, option", COUNTS)
@pytest.mark.parametrize("count, complaint", [("0", "'0': at least 1 device"),
                                              ("-3", "'-3': at least 1 device"),
                                              ("ten", "'ten' is not a whole number")])
def test_a_count_below_one_stops_the_command_in_one_line(kind, option, count, complaint, capsys):
    with pytest.raises(SystemExit) as stopped:
        build_parser().parse_args(["emulate", kind, *KINDS[kind][1], option, count])
    assert stopped.value.code == 2
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert error == f"otaharness emulate {kind}: error: argument {option}: {complaint}", error


@pytest.mark.parametrize("kind, option", COUNTS)
def test_a_count_of_one_or_more_is_taken(kind, option):
    args = build_parser().parse_args(["emulate", kind, *KINDS[kind][1], option, "3"])
    assert getattr(args, option.removeprefix("--")) == 3

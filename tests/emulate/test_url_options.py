"""A server URL on the command line of `emulate` and `load` is checked before any device starts:
a wrong scheme, no host or a bad port stops the command with one line and exit status 2 (without
its scheme, `--acs-url 127.0.0.1:7547/acs` made every CPE fail alike, mid-run, each with a
traceback, while the command went on)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from otaharness.cli import build_parser

OLT = ["--gateway-id", "g", "--client-id", "c", "--client-secret", "s"]
GOOD = {"http": "https://127.0.0.1:7547/acs", "mqtt": "mqtts://127.0.0.1:8883",
        "ws": "wss://127.0.0.1:6038"}
# (command, the option, which kind of URL it takes, the other options the command needs)
OPTIONS = [
    (["emulate", "cpe"], "--acs-url", "http", []),
    (["emulate", "olt-gateway"], "--api", "http", ["--mqtt", GOOD["mqtt"], *OLT]),
    (["emulate", "olt-gateway"], "--mqtt", "mqtt", ["--api", GOOD["http"], *OLT]),
    (["emulate", "basics-station"], "--cups-uri", "http", ["--home", "h"]),
    (["emulate", "basics-station"], "--tc-uri", "ws", ["--home", "h"]),
    (["emulate", "lorawan"], "--tc-uri", "ws", ["--home", "h"]),
    (["emulate", "lorawan"], "--register-app", "http", ["--tc-uri", GOOD["ws"], "--home", "h"]),
    (["emulate", "aws-tracker"], "--mqtt", "mqtt", []),
    (["emulate", "aws-tracker"], "--s3-endpoint", "http", ["--mqtt", GOOD["mqtt"]]),
]
# `load` hands its options to Locust's parser, in a process of its own
LOAD_OPTIONS = [("cpe", "--acs-url"), ("olt-gateway", "--mqtt"), ("basics-station", "--cups-url"),
                ("aws-tracker", "--s3-endpoint"), ("lorawan", "--lns-url")]
BAD = ["127.0.0.1:7547/acs", "ftp://127.0.0.1/", "https://:443/", "https://127.0.0.1:99999/",
       "https://127.0.0.1:port/"]


@pytest.mark.parametrize("command, option, scheme, others", OPTIONS,
                         ids=[" ".join([*command, option]) for command, option, *_ in OPTIONS])
def test_a_bad_server_url_stops_the_command_in_one_line(command, option, scheme, others, capsys):
    for bad in [*BAD, GOOD[next(s for s in GOOD if s != scheme)]]:  # also another kind's URL
        with pytest.raises(SystemExit) as stopped:
            build_parser().parse_args([*command, *others, option, bad])
        assert stopped.value.code == 2
        error = capsys.readouterr().err.strip().splitlines()[-1]
        assert f"argument {option}: {bad!r}" in error, error
    parsed = build_parser().parse_args([*command, *others, option, GOOD[scheme]])
    assert getattr(parsed, option[2:].replace("-", "_")) == GOOD[scheme]


@pytest.mark.slow  # a Locust process each (issue #19: multi-process load runs are the slow step's)
@pytest.mark.parametrize("kind, option", LOAD_OPTIONS)
def test_load_refuses_a_bad_server_url_before_any_device_starts(kind: str, option: str) -> None:
    result = subprocess.run([sys.executable, "-m", "otaharness.cli", "load", kind, "--headless",
                             "-u", "1", "-t", "5s", option, "127.0.0.1:7547/acs"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2, result.stderr[-2000:]
    assert result.stderr.strip().splitlines()[-1] == (
        f"otaharness load: error: argument {option}: '127.0.0.1:7547/acs' is not a URL like "
        + " or ".join(f"{scheme}://host[:port]" for scheme in {
            "--mqtt": ("mqtt", "mqtts"), "--lns-url": ("ws", "wss")}.get(option, ("http", "https"))))


def test_a_password_in_a_refused_url_is_not_repeated(capsys) -> None:
    for bad in ("ftp://fleet:s3cret@127.0.0.1/", "mqtts://fleet:s3cret@127.0.0.1:port/x"):
        with pytest.raises(SystemExit):
            build_parser().parse_args(["emulate", "aws-tracker", "--mqtt", bad])
        error = capsys.readouterr().err
        assert "s3cret" not in error and "fleet:***@127.0.0.1" in error, error

"""`emulate KIND` given inputs its devices cannot use (missing credentials, a key or CA file that
does not load, a key that is not hex): one error line and exit status 2, no traceback, and no
summary of a fleet that never ran (aws-tracker printed "0 emulated aws-tracker devices" after its
error; the other kinds ended with a traceback)."""

from __future__ import annotations

import subprocess

import pytest
from emulate_processes import OTAHARNESS, PATIENCE

OLT = ["--api", "https://127.0.0.1:9", "--mqtt", "mqtt://127.0.0.1:9", "--gateway-id", "g",
       "--client-id", "c", "--client-secret", "s"]
# (kind, its options with one unusable input, what the error line says)
CASES = [
    ("aws-tracker", ["--mqtt", "mqtts://127.0.0.1:9", "--credentials-dir", "missing"],
     "missing/tracker-1.cert.pem does not exist"),
    ("basics-station", ["--home", "h", "--tc-uri", "wss://127.0.0.1:9", "--sig-key", "missing.key"],
     "[Errno 2] No such file or directory: 'missing.key'"),
    ("cpe", ["--acs-url", "https://127.0.0.1:9/acs", "--ca", "missing.pem"],
     "--ca missing.pem: [Errno 2] No such file or directory"),
    ("olt-gateway", [*OLT, "--ca", "missing.pem"],
     "--ca missing.pem: [Errno 2] No such file or directory"),
    ("lorawan", ["--tc-uri", "wss://127.0.0.1:9", "--home", "h", "--app-key", "not-hex"],
     "--app-key: non-hexadecimal number found"),
]


@pytest.mark.parametrize("kind, options, message", CASES, ids=[case[0] for case in CASES])
def test_unusable_inputs_end_with_one_line_and_no_summary(tmp_path, kind, options, message):
    result = subprocess.run([*OTAHARNESS, "emulate", kind, *options, "--json"], cwd=tmp_path,
                            capture_output=True, text=True, timeout=PATIENCE, check=False)
    assert result.returncode == 2, result.stderr[-3000:]
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], result.stderr[-3000:]
    assert " ERROR " in lines[0]
    assert result.stdout == ""  # no JSON summary either

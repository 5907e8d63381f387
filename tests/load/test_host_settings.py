"""A device host takes its settings, tokens among them, as its first line on stdin: its command
line is in every user's process list (``ps``, /proc/PID/cmdline), and a token given to the
master in locust.conf or the environment must not appear there on each worker's machine."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import time
from pathlib import Path

BOUND = 60.0  # real seconds: liveness only


def test_a_host_reads_its_settings_from_stdin_and_shows_no_token(tmp_path: Path) -> None:
    token = secrets.token_urlsafe(24)
    temp = tmp_path / "tmp"  # the host's TMPDIR: its own folder goes here
    temp.mkdir()
    settings = {"kind": "olt-gateway", "worker_index": 0,
                "options": {"api": "https://127.0.0.1:9/", "mqtt": "mqtt://127.0.0.1:9",
                            "olt_token": token, "gateway_type": 1, "device_type": 2}}
    host = subprocess.Popen([sys.executable, "-m", "otaharness.load.host"], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env={**os.environ, "TMPDIR": str(temp)})
    try:
        assert host.stdin is not None and host.stdout is not None
        # settings and the first command in one write: the host must not read the command away
        host.stdin.write(json.dumps(settings).encode() + b"\n" + b'{"close": true}\n')
        host.stdin.flush()
        command_line = Path(f"/proc/{host.pid}/cmdline").read_bytes()
        deadline = time.monotonic() + BOUND
        while host.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        stdout, stderr = host.communicate(timeout=BOUND)
    finally:
        if host.poll() is None:
            host.kill()
            host.wait()
    assert token.encode() not in command_line
    assert host.returncode == 0, stderr.decode(errors="replace")[-2000:]
    # it ran with those settings: its last gauges line, and its temporary folder removed at the end
    assert json.loads(stdout.splitlines()[-1]) == {"g": {"connected": 0, "in_progress": 0}}
    assert not any(temp.iterdir()), sorted(temp.rglob("*"))

"""The fleet report every emulate kind shares: states from events, the summary's figures, JSON
lines, readable lines, the live display on a terminal only; and the fleet's option checks."""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import subprocess

import pytest
from emulate_processes import OTAHARNESS, parses_as_iso_utc
from otaharness.emulators.fleet import Fleet
from otaharness.emulators.fleet_report import FleetReport, percentiles


class Ticks:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1_796_342_400.0  # 2026-12-04T00:00:00Z

    def __call__(self) -> float:
        return self.now


def test_states_follow_the_events_and_the_summary_counts_them():
    clock, stream, human = Ticks(), io.StringIO(), io.StringIO()
    report = FleetReport("cpe", verbose=True, json_out=stream, human=human, clock=clock)
    for name in ("a", "b", "c"):
        report.event(name, "started")
    clock.now += 0.5
    report.event("a", "connected")
    report.event("b", "connected")
    report.progress("a", 0, 4000)
    clock.now += 2.0
    report.progress("a", 2500, 4000)
    report.progress("a", 4000, 4000)
    report.event("a", "upgraded", version="2.0")
    report.event("a", "disconnected")  # after the upgrade it stays upgraded
    report.event("b", "upgrade_failed", reason="9010 download interrupted by power loss")
    report.event("c", "power_cut")
    summary = report.close()
    assert summary["states"] == {"upgraded": 1, "failed": 1, "powered off": 1}
    assert summary["failures"] == {"9010 download interrupted by power loss": 1}
    assert summary["durations"]["connect"] == {"count": 2, "p50": 0.5, "p95": 0.5, "max": 0.5}
    assert summary["durations"]["upgrade"] == {"count": 1, "p50": 2.0, "p95": 2.0, "max": 2.0}
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert [line["percent"] for line in lines if line["event"] == "download_progress"] == [25, 50, 75]
    assert [line["event"] for line in lines if line.get("device") == "a"][-4:] == [
        "download_progress", "download_complete", "upgraded", "disconnected"]
    assert lines[0]["time"] == "2026-12-04T00:00:00.000Z" and lines[-1]["event"] == "summary"
    assert all(parses_as_iso_utc(line["time"]) for line in lines)
    text = human.getvalue()
    assert "00:00:02.500 a                download progress: 50% (2.4 KiB of 3.9 KiB)" in text
    assert "devices by state: upgraded 1, failed 1, powered off 1" in text
    assert "1 x 9010 download interrupted by power loss" in text


def test_devices_first_seen_by_an_event_have_no_time_to_connect():
    """A kind that never says when a device started (the load hosts') gets no connect figure,
    not a "p50 -0.000 s" made of the gap between two readings of the clock."""

    class Creeping(Ticks):  # every reading a little later, as a real clock
        def __call__(self) -> float:
            self.now += 0.0001
            return self.now

    human = io.StringIO()
    report = FleetReport("aws-tracker", human=human, live=False, clock=Creeping())
    report.event("tracker-1", "connected")
    report.add("tracker-1")  # told of the device after it connected: still no start time
    report.event("tracker-1", "download_started")
    report.event("tracker-1", "upgraded")
    report.add("tracker-2")
    report.event("tracker-2", "connected")
    summary = report.close()
    assert summary["durations"]["connect"]["count"] == 1
    assert summary["durations"]["connect"]["p50"] >= 0
    assert summary["durations"]["upgrade"]["count"] == 1
    assert "-0.000" not in human.getvalue()


def test_an_unknown_event_name_is_refused():
    with pytest.raises(ValueError, match="unknown fleet event 'exploded'"):
        FleetReport("cpe", human=io.StringIO()).event("a", "exploded")


def test_percentiles_are_nearest_rank():
    assert percentiles([]) == {"count": 0}
    assert percentiles([float(n) for n in range(1, 101)]) == {"count": 100, "p50": 50.0, "p95": 95.0,
                                                               "max": 100.0}


def read_until_closed(controller: int) -> bytes:
    """All a pseudo-terminal's other end wrote before it closed: one read returns only what has
    arrived so far (often just the cursor-hiding escape); Linux ends the rest with EIO."""
    chunks = []
    try:
        while chunk := os.read(controller, 65536):
            chunks.append(chunk)
    except OSError:
        pass
    finally:
        os.close(controller)
    return b"".join(chunks)


def test_the_live_display_shows_on_a_terminal_only():
    quiet = io.StringIO()
    report = FleetReport("cpe", human=quiet)
    report.start()
    report.event("a", "connected")
    report.close()
    assert "devices by state: connected 1" in quiet.getvalue()
    assert "\x1b[" not in quiet.getvalue()  # no live display (and no colour codes) in a file
    controller, terminal = os.openpty()
    with os.fdopen(terminal, "w") as tty:
        report = FleetReport("cpe", human=tty)
        report.start()
        assert report._live is not None
        report.event("a", "connected")
        report._live.refresh()
        report.close()
    shown = read_until_closed(controller).decode(errors="replace")
    assert "emulated cpe devices" in shown and "connected" in shown


@pytest.mark.parametrize("options, complaint", [
    (["--fault", "melted"], "not a fault"),
    (["--fault", "dropped", "--direct"], "need the local proxy"),
    (["--fault-devices", "150%"], "not a share of the fleet"),
    (["--fault", "power cut after 1 s for 2 s"], "come back at once"),
])
def test_fleet_options_that_cannot_work_end_the_run_with_2(tmp_path, options, complaint):
    result = subprocess.run([*OTAHARNESS, "emulate", "basics-station", "--home", str(tmp_path),
                             "--cups-uri", "http://127.0.0.1:9", *options],
                            check=False, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2, result.stderr
    assert complaint in result.stderr and "Traceback" not in result.stderr



def test_a_devices_error_names_the_endpoint_not_the_local_proxy_in_front_of_it():
    """Devices dial a local proxy (127.0.0.1:<its port>); their TLS and connection errors named
    that port, one the user never typed, instead of the endpoint on the command line."""

    async def main() -> tuple[dict, str, int]:
        human = io.StringIO()
        fleet = Fleet("aws-tracker", argparse.Namespace(fault=[], fault_devices=None),
                      report=FleetReport("aws-tracker", verbose=True, human=human))
        async with fleet:
            host, port = await fleet.link("mqtts://127.0.0.1:8883")
            assert (host, port) != ("127.0.0.1", 8883)
            fleet.report.event("t1", "connection_failed", f"TLS with {host}:{port} failed",
                               reason=f"TLS with {host}:{port} failed: certificate verify failed")
            # an address that merely begins like the proxy's is left as it is
            fleet.report.event("t2", "connection_failed", reason=f"lost {host}:{port}0")
            fleet.report.event("t3", "connection_failed",
                               reason=f"Connect call failed ('{host}', {port})")
        return fleet.report.close(), human.getvalue(), port

    summary, text, port = asyncio.run(main())
    assert summary["failures"] == {
        "TLS with 127.0.0.1:8883 failed: certificate verify failed": 1,
        f"lost 127.0.0.1:{port}0": 1,
        "Connect call failed ('127.0.0.1', 8883)": 1}
    assert "t1               connection failed: TLS with 127.0.0.1:8883 failed" in text, text

"""Many trackers in one process, on the virtual clock: each takes the same job end to end."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

import pytest
from tracker_world import World, event, run_scenario

MOSQUITTO = shutil.which("mosquitto") or ("/usr/sbin/mosquitto" if Path("/usr/sbin/mosquitto").exists() else None)
pytestmark = pytest.mark.skipif(MOSQUITTO is None, reason="mosquitto is not installed")

HEX = b"SOME HEX DATA"


@pytest.mark.slow  # a load run: 200 trackers through one back end
@pytest.mark.real_time_fleet
def test_two_hundred_trackers_each_take_a_job_in_one_process() -> None:
    count = 200

    async def body(world: World) -> None:
        arns = [world.thing(f"tracker-{i}") for i in range(count)]
        world.firmware("fleet", HEX)
        trackers = [world.tracker(f"tracker-{i}", reboot_seconds=10.0) for i in range(count)]
        for tracker in trackers:
            await tracker.connect()
        done = [asyncio.ensure_future(event(tracker, "reported appV")) for tracker in trackers]
        world.job("fleet", arns, "1.0.1", len(HEX))
        await asyncio.gather(*done)
        assert {tracker.app_version for tracker in trackers} == {"1.0.1"}
        statuses = world.iot.list_job_executions_for_job(jobId="fleet", maxResults=250)["executionSummaries"]
        assert len(statuses) == count
        assert {s["jobExecutionSummary"]["status"] for s in statuses} == {"SUCCEEDED"}

    # 200 trackers busy at once reach a quiet moment less often on a shared machine (under
    # `tox -e slow`, fuzzing runs beside): a wider liveness bound than one tracker's 30 s
    run_scenario(body, real_time_limit=180.0)

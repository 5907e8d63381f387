"""The tracker emulator against mosquitto + the AWS IoT back end (moto, jobs bridge), on the
virtual clock: the seed FOTA feature's device steps, the nRF autonomous upgrade and its faults."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from tracker_world import BUCKET, World, event, run_scenario, started, texts

from otaharness.emulators.aws_tracker import JobRejected
from otaharness.runtime.mqtt import MqttClient

MOSQUITTO = shutil.which("mosquitto") or ("/usr/sbin/mosquitto" if Path("/usr/sbin/mosquitto").exists() else None)
pytestmark = pytest.mark.skipif(MOSQUITTO is None, reason="mosquitto is not installed")

IMAGE = bytes(range(256)) * 20  # 5120 bytes: three 2 KiB fragments
HEX = b"SOME HEX DATA"  # the seed feature's 13-byte object


async def spy(world: World, topic_filter: str) -> tuple[MqttClient, list[tuple[str, dict]]]:
    """A second client recording what trackers publish on `topic_filter`."""
    seen: list[tuple[str, dict]] = []
    username, password = world.broker.service_credentials  # the harness's own view of the broker
    client = MqttClient("spy", world.broker.host, world.broker.port, username=username, password=password)
    client.add_handler(topic_filter, lambda topic, payload: seen.append((topic, json.loads(payload))))
    await client.connect()
    await client.subscribe(topic_filter)
    return client, seen


def test_step_driven_tracker_starts_the_next_job_as_in_the_seed_feature() -> None:
    async def body(world: World) -> None:
        arn = world.thing("fota")
        world.firmware("job1", HEX)
        world.job("job1", [arn], "1.0.1", len(HEX))
        tracker = await started(world.tracker("fota", autonomous=False))

        job = await tracker.start_next_job(status_details={"progress": "0"})
        assert job is not None
        assert (job["jobId"], job["status"], job["versionNumber"]) == ("job1", "IN_PROGRESS", 2)
        assert job["jobDocument"]["location"]["host"] == f"{BUCKET}.s3.amazonaws.com"
        execution = world.execution("job1", "fota")
        assert (execution["status"], execution["versionNumber"]) == ("IN_PROGRESS", 2)
        assert (await tracker.describe_job("job1"))["statusDetails"] == {"progress": "0"}

        with pytest.raises(JobRejected) as rejected:
            await tracker.update_job("job1", "SUCCEEDED", expected_version=1)
        assert rejected.value.code == "VersionMismatch"
        assert rejected.value.payload["executionState"]["versionNumber"] == 2

        accepted = await tracker.update_job("job1", "SUCCEEDED", expected_version="2")
        assert accepted["executionState"] == {"status": "SUCCEEDED", "statusDetails": {"progress": "0"},
                                              "versionNumber": 3}
        assert await tracker.start_next_job() is None  # nothing pending any more
        assert await tracker.describe_job() is None
        reply = await tracker.report_state({"dev": tracker.device_info()})
        assert reply["state"]["reported"]["dev"]["v"]["appV"] == "1.0.0"
        assert world.reported("fota")["dev"]["v"]["imei"] == tracker.imei
        assert tracker.events[0][1].startswith("connected")  # and no job handled by itself
        assert not any("download" in text for text in texts(tracker))

    run_scenario(body)


def test_autonomous_tracker_upgrades_reboots_and_reports_the_new_version() -> None:
    async def body(world: World) -> None:
        arn = world.thing("fota")
        world.firmware("job1", IMAGE)
        spy_client, requests = await spy(world, "$aws/things/fota/jobs/+/update")
        tracker = await started(world.tracker("fota", reboot_seconds=10.0))
        world.job("job1", [arn], "1.0.1", len(IMAGE))  # announced on notify-next

        await event(tracker, "reported appV")
        execution = world.execution("job1", "fota")
        assert (execution["status"], execution["versionNumber"]) == ("SUCCEEDED", 3)
        assert world.reported("fota")["dev"]["v"]["appV"] == "1.0.1"
        assert tracker.app_version == tracker.flash.installed_version == "1.0.1"
        assert bytes(tracker.flash.slot) == IMAGE
        assert tracker.flash.pending is None and tracker.flash.booted_job is None
        # aws_fota's wire format: expectedVersion as a string, empty clientToken.
        assert [body for _, body in requests] == [
            {"status": "IN_PROGRESS", "expectedVersion": "1", "clientToken": ""},
            {"status": "SUCCEEDED", "expectedVersion": "2", "clientToken": ""},
        ]
        down = next(at for at, text in tracker.events if text.startswith("rebooting into 1.0.1"))
        booted = next(at for at, text in tracker.events if text == "booted 1.0.1")
        assert booted - down == pytest.approx(10.0)
        assert "download complete: 5120 bytes in 3 requests" in texts(tracker)
        await spy_client.disconnect()

    run_scenario(body)


def test_missing_object_fails_the_job_with_the_reason_and_asks_for_the_next() -> None:
    async def body(world: World) -> None:
        arn = world.thing("fota")
        world.job("job1", [arn], "1.0.1", 100)  # nothing uploaded
        tracker = await started(world.tracker("fota"))
        await event(tracker, "job job1 FAILED")
        execution = world.execution("job1", "fota")
        assert execution["status"] == "FAILED"
        assert "HTTP 404" in execution["statusDetails"]["detailsMap"]["reason"]
        assert tracker.app_version == "1.0.0" and tracker.flash.pending is None
        assert tracker.current_job is None

    run_scenario(body)


def test_unusable_job_document_fails_the_job_without_a_download_and_the_next_job_runs() -> None:
    async def body(world: World) -> None:
        arn = world.thing("fota")
        world.iot.create_job(jobId="reboot", targets=[arn], document=json.dumps({"operation": "reboot"}))
        world.firmware("job2", HEX)
        world.job("job2", [arn], "1.0.1", len(HEX))
        tracker = await started(world.tracker("fota"))
        await event(tracker, "reported appV")
        execution = world.execution("reboot", "fota")
        assert execution["status"] == "FAILED" and execution["versionNumber"] == 2  # straight from QUEUED
        assert execution["statusDetails"]["detailsMap"]["reason"] == (
            "invalid job document: operation must be 'app_fw_update', got 'reboot'")
        assert world.execution("job2", "fota")["status"] == "SUCCEEDED"
        assert texts(tracker).count("download of fota-bucket.s3.amazonaws.com/job2 started") == 1

    run_scenario(body)


def test_size_mismatch_fails_the_job_before_the_download_completes() -> None:
    async def body(world: World) -> None:
        arn = world.thing("fota")
        world.firmware("job1", IMAGE)
        world.job("job1", [arn], "1.0.1", len(IMAGE) + 1)
        tracker = await started(world.tracker("fota"))
        await event(tracker, "job job1 FAILED")
        reason = world.execution("job1", "fota")["statusDetails"]["detailsMap"]["reason"]
        assert reason == f"size mismatch: job document says {len(IMAGE) + 1} bytes, server has {len(IMAGE)}"
        assert tracker.download is not None and tracker.download.requests == 1

    run_scenario(body)


def test_two_queued_jobs_run_in_creation_order() -> None:
    async def body(world: World) -> None:
        arn = world.thing("fota")
        world.firmware("job1", IMAGE)
        world.firmware("job2", IMAGE[::-1])
        world.job("job1", [arn], "1.0.1", len(IMAGE))
        world.job("job2", [arn], "1.0.2", len(IMAGE))
        tracker = await started(world.tracker("fota"))
        while tracker.app_version != "1.0.2" or not texts(tracker)[-1].startswith("reported appV"):
            await event(tracker, "reported appV")
        succeeded = [text for text in texts(tracker) if " SUCCEEDED " in text]
        assert [text.split()[1] for text in succeeded] == ["job1", "job2"]
        assert world.execution("job2", "fota")["status"] == "SUCCEEDED"
        assert world.reported("fota")["dev"]["v"]["appV"] == "1.0.2"
        assert bytes(tracker.flash.slot) == IMAGE[::-1]

    run_scenario(body)

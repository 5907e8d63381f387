"""Faults around the tracker on the virtual clock: a cut download link, a black hole, a power cut
mid-download, a lost MQTT connection (link faults through the runtime's LinkProxy)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from tracker_world import World, event, run_scenario, started, texts

from otaharness.runtime.faults import CutAfter, Drop

MOSQUITTO = shutil.which("mosquitto") or ("/usr/sbin/mosquitto" if Path("/usr/sbin/mosquitto").exists() else None)
pytestmark = pytest.mark.skipif(MOSQUITTO is None, reason="mosquitto is not installed")

IMAGE = bytes(range(256)) * 20  # 5120 bytes: three 2 KiB fragments
HEX = b"SOME HEX DATA"


def test_cut_download_resumes_from_the_last_byte_and_succeeds() -> None:
    async def body(world: World) -> None:
        arn = world.thing("fota")
        world.firmware("job1", IMAGE)
        address = "127.1.0.7"
        proxy = await world.link(world.moto_address, "fota", address, service_port=443)
        # The fragments share one kept-alive TLS connection, as S3 keeps it: about 2.3 KB of
        # handshake, then per fragment about 0.6 KB of HTTP headers and 2 KiB of body. 6.5 KB in,
        # the second fragment's body (one TLS record) is cut short.
        proxy.set_fault("fota", CutAfter(6500))
        tracker = await started(world.tracker("fota", s3_endpoint=proxy.address, bind_address=address))
        world.job("job1", [arn], "1.0.1", len(IMAGE))
        await event(tracker, "reported appV")
        assert world.execution("job1", "fota")["status"] == "SUCCEEDED"
        resumed = [text for text in texts(tracker) if text.startswith("download resumes at byte")]
        assert len(resumed) == 1
        offset = int(resumed[0].split()[4])
        # TLS hands over whole records only: the second fragment's record was cut short, so its
        # bytes never reached the tracker, which asks again from where it stood.
        assert offset == 2048
        assert proxy.counters("fota").cuts == 1
        assert bytes(tracker.flash.slot) == IMAGE

    run_scenario(body)


def test_power_cut_mid_download_restarts_the_in_progress_job_from_byte_zero() -> None:
    async def body(world: World) -> None:
        arn = world.thing("fota")
        world.firmware("job1", IMAGE)
        tracker = await started(world.tracker("fota", fragment_size=512, reboot_seconds=5.0))
        world.job("job1", [arn], "1.0.1", len(IMAGE))
        await event(tracker, "download 50%")
        await tracker.power_cut()  # returns once booted and connected again
        assert tracker.download_offset == 0  # RAM
        assert len(tracker.flash.slot) >= len(IMAGE) // 2  # flash keeps what was written
        assert tracker.app_version == "1.0.0"
        await event(tracker, "reported appV")
        execution = world.execution("job1", "fota")
        # QUEUED 1 -> IN_PROGRESS 2 -> (after the power cut) IN_PROGRESS 3 -> SUCCEEDED 4
        assert (execution["status"], execution["versionNumber"]) == ("SUCCEEDED", 4)
        assert texts(tracker).count("download of fota-bucket.s3.amazonaws.com/job1 started") == 2
        assert tracker.app_version == "1.0.1" and bytes(tracker.flash.slot) == IMAGE

    run_scenario(body)


def test_lost_mqtt_connection_is_reestablished_after_a_backoff_and_the_job_still_runs() -> None:
    async def body(world: World) -> None:
        arn = world.thing("fota")
        world.firmware("job1", HEX)
        address = "127.1.0.8"
        proxy = await world.link(world.gateway_address, "fota", address, service_port=8883)
        tracker = world.tracker("fota", bind_address=address)
        tracker.mqtt_host, tracker.mqtt_port = proxy.address
        await tracker.connect()
        proxy.disconnect("fota")
        lost = await event(tracker, "MQTT connection lost")
        world.job("job1", [arn], "1.0.1", len(HEX))  # notified while the tracker is away
        back = await event(tracker, "connected")
        assert 5.0 <= back - lost <= 6.0  # first reconnection delay, with up to 20 % jitter
        await event(tracker, "reported appV")
        assert world.execution("job1", "fota")["status"] == "SUCCEEDED"
        assert proxy.counters("fota").connections == 3  # first, after the loss, after the reboot

    run_scenario(body)


def test_download_into_a_black_hole_times_out_and_fails_the_job() -> None:
    async def body(world: World) -> None:
        arn = world.thing("fota")
        world.firmware("job1", IMAGE)
        address = "127.1.0.9"
        proxy = await world.link(world.moto_address, "fota", address, service_port=443)
        proxy.set_fault("fota", Drop())
        tracker = await started(world.tracker("fota", s3_endpoint=proxy.address, bind_address=address,
                                              download_timeout=30.0))
        world.job("job1", [arn], "1.0.1", len(IMAGE))
        began = await event(tracker, "download of")
        failed = await event(tracker, "job job1 FAILED")
        assert failed - began == pytest.approx(30.0)
        execution = world.execution("job1", "fota")
        assert execution["status"] == "FAILED"
        assert execution["statusDetails"]["detailsMap"]["reason"] == "download timed out after 30 s at byte 0"
        assert proxy.counters("fota").bytes_swallowed > 0 and tracker.app_version == "1.0.0"

    run_scenario(body)


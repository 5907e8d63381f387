"""Fixtures: a real moto server on loopback (boto3 over HTTP) with the jobs service, shadow
service and MQTT bridge on a fake clock/scheduler the test controls."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from aws_iot_harness import FakeClock, FakeScheduler, Harness

from otaharness.servers.aws_iot import moto_gaps
from otaharness.servers.aws_iot.jobs import JobsService
from otaharness.servers.aws_iot.moto_server import MotoServer
from otaharness.servers.aws_iot.mqtt_bridge import MqttBridge
from otaharness.servers.aws_iot.shadows import ShadowService


@pytest.fixture(scope="session")
def moto_server() -> Iterator[MotoServer]:
    server = MotoServer()
    server.start()
    yield server
    server.stop()


@pytest.fixture
def harness(moto_server: MotoServer) -> Iterator[Harness]:
    clock = FakeClock()
    scheduler = FakeScheduler(clock)
    changes: list[str] = []
    jobs = JobsService(moto_server.iot_backend, clock, scheduler, changes.append)
    moto_gaps.apply(jobs)
    shadows = ShadowService(moto_server.iotdata_backend, clock, jobs.lock)
    bridge = MqttBridge(jobs, shadows, clock)
    yield Harness(
        moto_server, clock, scheduler, jobs, bridge, changes,
        moto_server.client("iot"), moto_server.client("iot-data"),
    )
    moto_gaps.remove()
    jobs.reset()
    moto_server.reset()

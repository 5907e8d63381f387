"""Test helpers: a fake clock and scheduler the test controls, and a Harness bundling the jobs
service, shadow service and MQTT bridge with boto3 clients of a real moto server."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from otaharness.runtime.mqtt import MqttClient
from otaharness.servers.aws_iot.jobs import JobsService
from otaharness.servers.aws_iot.moto_server import MotoServer
from otaharness.servers.aws_iot.mqtt_bridge import MqttBridge

START_EPOCH = 1_700_000_000.0


class FakeClock:
    def __init__(self, epoch: float = START_EPOCH) -> None:
        self.now = epoch

    def epoch(self) -> float:
        return self.now


@dataclass(order=True)
class FakeTimer:
    due: float
    sequence: int
    fn: Callable[[], None] = field(compare=False)
    cancelled: bool = field(default=False, compare=False)

    def cancel(self) -> None:
        self.cancelled = True


class FakeScheduler:
    """Timers that fire only when the test advances the fake clock."""

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self.timers: list[FakeTimer] = []

    def schedule(self, delay_s: float, fn: Callable[[], None]) -> FakeTimer:
        timer = FakeTimer(self.clock.now + delay_s, len(self.timers), fn)
        self.timers.append(timer)
        return timer

    @property
    def armed(self) -> list[FakeTimer]:
        return [t for t in self.timers if not t.cancelled]

    def advance(self, seconds: float) -> None:
        target = self.clock.now + seconds
        while True:
            due = sorted(t for t in self.armed if t.due <= target)
            if not due:
                break
            timer = due[0]
            timer.cancelled = True  # fired: a handle fires once
            self.clock.now = timer.due
            timer.fn()
        self.clock.now = target


@dataclass
class Harness:
    moto: MotoServer
    clock: FakeClock
    scheduler: FakeScheduler
    jobs: JobsService
    bridge: MqttBridge
    changes: list[str]
    iot: Any
    iotdata: Any

    def thing(self, name: str) -> str:
        """Create a thing; returns its ARN."""
        return self.iot.create_thing(thingName=name)["thingArn"]

    def job(self, job_id: str, targets: list[str], document: dict[str, Any] | None = None, **kwargs: Any) -> None:
        self.iot.create_job(
            jobId=job_id, targets=targets, document=json.dumps(document or {"operation": "app_fw_update"}), **kwargs
        )

    def mqtt(self, topic: str, payload: Any = None) -> list[tuple[str, dict[str, Any]]]:
        """Publish `payload` (dict -> JSON, bytes as is) on `topic` to the bridge; its replies."""
        raw = payload if isinstance(payload, bytes) else json.dumps(payload if payload is not None else {}).encode()
        return [(t, json.loads(p)) for t, p in self.bridge.handle(topic, raw)]

    def reply(self, topic: str, payload: Any = None) -> tuple[str, dict[str, Any]]:
        """The single accepted/rejected reply to a request (notifications dropped)."""
        replies = [(t, p) for t, p in self.mqtt(topic, payload) if t.endswith(("/accepted", "/rejected"))]
        assert len(replies) == 1, replies
        return replies[0]

    def execution(self, job_id: str, thing: str) -> dict[str, Any]:
        return self.iot.describe_job_execution(jobId=job_id, thingName=thing)["execution"]


async def request_reply(client: MqttClient, topic: str, payload: bytes | dict[str, Any],
                        timeout: float = 10.0) -> tuple[str, dict[str, Any]]:
    """An AWS IoT MQTT API request from ``client`` (jobs, shadow): subscribe to its replies,
    publish, and return ("accepted" | "rejected", the reply document)."""
    accepted, rejected = client.messages(f"{topic}/accepted"), client.messages(f"{topic}/rejected")
    try:
        for suffix in ("accepted", "rejected"):
            await client.subscribe(f"{topic}/{suffix}", qos=1, timeout=timeout)
        await client.publish(topic, payload, qos=1, timeout=timeout)
        waits = {asyncio.ensure_future(accepted.__anext__()): "accepted",
                 asyncio.ensure_future(rejected.__anext__()): "rejected"}
        done, pending = await asyncio.wait(waits, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        assert done, f"no reply to {topic} within {timeout} s"
        task = done.pop()
        return waits[task], json.loads(task.result().payload)
    finally:
        accepted.close()
        rejected.close()

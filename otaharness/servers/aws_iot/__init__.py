"""AWS IoT back end for the Jobs FOTA flow: moto's control plane (S3, IoT, iot-data,
cognito-idp) plus what moto lacks: the job-execution state machine, the Jobs MQTT API and
notifications, the iot-jobs-data HTTPS API and shadow-over-MQTT.

    backend = AwsIotBackend(clock)
    await backend.start(broker_host, broker_port)
    iot = backend.client("iot"); jobs = backend.client("iot-jobs-data")
    backend.reset()        # between scenarios
    await backend.stop()
"""

from __future__ import annotations

import asyncio
from typing import Any

from otaharness.servers.aws_iot import moto_gaps
from otaharness.servers.aws_iot.jobs import Clock, JobsService, LoopScheduler
from otaharness.servers.aws_iot.jobs_http import JobsHttpApi
from otaharness.servers.aws_iot.moto_server import MotoServer
from otaharness.servers.aws_iot.mqtt_bridge import MqttBridge
from otaharness.servers.aws_iot.shadows import ShadowService

__all__ = ["AwsIotBackend", "JobsService", "MotoServer", "MqttBridge", "JobsHttpApi", "ShadowService"]


class AwsIotBackend:
    def __init__(self, clock: Clock, host: str = "127.0.0.1") -> None:
        self.clock = clock
        self.host = host
        self.moto = MotoServer(host)
        self.jobs: JobsService | None = None
        self.bridge: MqttBridge | None = None
        self.http: JobsHttpApi | None = None
        self._broker_url: str | None = None

    async def start(self, broker_host: str, broker_port: int) -> None:
        loop = asyncio.get_running_loop()
        # ThreadedMotoServer.start() blocks until its socket listens: a few milliseconds.
        self.moto.start()
        self.jobs = JobsService(self.moto.iot_backend, self.clock, LoopScheduler(loop))
        moto_gaps.apply(self.jobs)
        shadows = ShadowService(self.moto.iotdata_backend, self.clock, self.jobs.lock)
        self.bridge = MqttBridge(self.jobs, shadows, self.clock)
        self.jobs.set_on_change(self.bridge.on_change)
        self.http = JobsHttpApi(self.jobs)
        await self.http.start(self.host)
        await self.bridge.start(broker_host, broker_port)
        self._broker_url = f"mqtt://{broker_host}:{broker_port}"

    async def stop(self) -> None:
        if self.bridge is not None:
            await self.bridge.stop()
        if self.http is not None:
            await self.http.stop()
        if self.jobs is not None:
            self.jobs.reset()
        moto_gaps.remove()
        self.moto.stop()
        self.jobs = self.bridge = self.http = None
        self._broker_url = None

    def reset(self) -> None:
        """Between scenarios: every moto backend wiped, timers and notification memory gone."""
        if self.jobs is not None:
            self.jobs.reset()
        self.moto.reset()

    def endpoints(self) -> dict[str, str]:
        if self.http is None or self.http.url is None or self._broker_url is None:
            raise RuntimeError("AwsIotBackend is not started")
        return {"aws": self.moto.url, "iot-jobs-data": self.http.url, "mqtt": self._broker_url}

    def client(self, service_name: str) -> Any:
        """boto3 client (dummy credentials, us-east-1) for moto, or for our iot-jobs-data API."""
        endpoint = self.endpoints()["iot-jobs-data"] if service_name == "iot-jobs-data" else None
        return self.moto.client(service_name, endpoint)

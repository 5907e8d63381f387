"""Test helpers: one scenario on the virtual clock with a real mosquitto, the AWS IoT back end
(moto + jobs bridge + MQTT gateway) and trackers on mutual TLS, each with its own certificate;
boto3 calls go to moto over HTTPS."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from otaharness.emulators.aws_tracker import Tracker
from otaharness.runtime.broker import MosquittoBroker
from otaharness.runtime.clock import VirtualClock, VirtualEventLoop
from otaharness.runtime.pki import client_context
from otaharness.runtime.proxy import LinkProxy
from otaharness.servers.aws_iot import DATA_ENDPOINT, AwsIotBackend

BUCKET = "fota-bucket"
T = TypeVar("T")


@dataclass
class World:
    clock: VirtualClock
    broker: MosquittoBroker
    backend: AwsIotBackend
    trackers: list[Tracker] = field(default_factory=list)
    proxies: list[LinkProxy] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.iot = self.backend.client("iot")
        self.s3 = self.backend.client("s3")
        self.s3.create_bucket(Bucket=BUCKET)
        host, port = self.backend.endpoints()["aws"].rsplit("/", 1)[1].split(":")
        self.moto_address = (host, int(port))

    def thing(self, name: str) -> str:
        return self.iot.create_thing(thingName=name)["thingArn"]

    def firmware(self, key: str, data: bytes) -> None:
        # The asset tracker's FOTA bucket serves its objects to anyone (the device sends no
        # signature); moto refuses unsigned GETs of private objects with 403.
        self.s3.put_object(Bucket=BUCKET, Key=key, Body=data, ContentType="text/x-hex", ACL="public-read")

    def job(self, job_id: str, targets: list[str], version: str, size: int | None, path: str | None = None) -> None:
        document: dict[str, Any] = {
            "operation": "app_fw_update", "filename": f"{version}.hex", "fwversion": version,
            "location": {"protocol": "https", "host": f"{BUCKET}.s3.amazonaws.com", "path": path or job_id},
        }
        if size is not None:
            document["size"] = size
        self.iot.create_job(jobId=job_id, targets=targets, document=json.dumps(document),
                            description=f"Upgrade to version {version}.", targetSelection="SNAPSHOT")

    def execution(self, job_id: str, thing: str) -> dict[str, Any]:
        return self.iot.describe_job_execution(jobId=job_id, thingName=thing)["execution"]

    def reported(self, thing: str) -> dict[str, Any]:
        shadow = self.backend.client("iot-data").get_thing_shadow(thingName=thing)
        return json.loads(shadow["payload"].read())["state"]["reported"]

    async def link(self, upstream: tuple[str, int], device: str, address: str, service_port: int) -> LinkProxy:
        """A runtime link proxy in front of `upstream` that knows `device` by its source `address`."""
        proxy = LinkProxy(f"{device}->{upstream[1]}", upstream, service_port=service_port,
                          device_of=lambda ip: device if ip == address else ip)
        await proxy.start()
        self.proxies.append(proxy)
        return proxy

    @property
    def gateway_address(self) -> tuple[str, int]:
        gateway = self.backend.gateway
        assert gateway is not None and gateway.port is not None
        return gateway.host, gateway.port

    def identity(self, thing: str) -> Any:
        """A certificate for the thing (created if need be), registered, attached, as the
        tracker's TLS context."""
        iot = self.backend.moto.iot_backend()
        if thing not in {t.thing_name for t in iot.things.values()}:
            self.thing(thing)
        pki = self.backend.pki
        issued = pki.device_ca.issue("AWS IoT Certificate")
        arn = self.backend.register_issued_certificate(issued)["certificateArn"]
        iot.attach_thing_principal(thing, arn)
        certificate, key = pki.write_identity(f"tracker-{thing}", issued)
        return client_context(pki.ca_file, certificate, key)

    def tracker(self, name: str, **options: Any) -> Tracker:
        options.setdefault("s3_endpoint", self.moto_address)
        options.setdefault("tls", self.identity(name))
        host, port = self.gateway_address
        tracker = Tracker(name, mqtt_host=host, mqtt_port=port, clock=self.clock,
                          mqtt_server_name=DATA_ENDPOINT, **options)
        self.trackers.append(tracker)
        return tracker


async def event(tracker: Tracker, prefix: str, timeout: float = 3600.0) -> float:
    """Wait (virtual time) for the tracker's next event starting with `prefix`; its epoch."""
    future: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def listen(text: str) -> None:
        if text.startswith(prefix) and not future.done():
            future.set_result(None)

    tracker.listeners.append(listen)
    try:
        async with asyncio.timeout(timeout):
            await future
    finally:
        tracker.listeners.remove(listen)
    return tracker.events[-1][0]


async def started(tracker: Tracker) -> Tracker:
    await tracker.connect()
    return tracker


def texts(tracker: Tracker) -> list[str]:
    return [text for _, text in tracker.events]


def run_scenario(body: Callable[[World], Awaitable[T]], timeout: float = 3600.0,
                 real_time_limit: float = 30.0) -> T:
    """Run `body(world)` on a VirtualEventLoop, letting virtual time pass until it is done;
    the clock gives up after ``real_time_limit`` real seconds without a quiet moment."""
    clock = VirtualClock(real_time_limit=real_time_limit)
    loop = VirtualEventLoop(clock)

    async def main() -> T:
        broker = MosquittoBroker()
        await broker.start()
        clock.add_quiet_probe(broker.flush)
        backend = AwsIotBackend(clock)
        moto_probe = backend.moto.wait_quiet  # holds the clock while moto's threads serve a request
        world: World | None = None
        try:
            await backend.start(broker.host, broker.port, broker.service_credentials)
            clock.add_quiet_probe(moto_probe)
            world = World(clock, broker, backend)
            task = asyncio.ensure_future(body(world))
            await clock.run_until(task.done, timeout=timeout)
            if not task.done():
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
                raise TimeoutError(f"scenario not finished within {timeout:g} virtual seconds")
            return task.result()
        finally:
            for tracker in world.trackers if world else []:
                await tracker.disconnect()
            for proxy in world.proxies if world else []:
                await proxy.close()
            clock.remove_quiet_probe(moto_probe)
            backend.reset()
            await backend.stop()
            clock.remove_quiet_probe(broker.flush)
            await broker.stop()

    try:
        return loop.run_until_complete(main())
    finally:
        loop.run_until_complete(loop.shutdown_default_executor())
        loop.close()
        clock.close()

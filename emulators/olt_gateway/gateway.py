"""An OLT gateway with field devices behind it.

It listens on ``devices/{id}/+`` for each of its devices (installation instructions, actions,
configuration, errors), and for each installation:

1. downloads the blob into its flash (non-volatile) with Range requests, resuming after a cut
   (``If-Range`` on the ETag) and checking size, sha256 and md5;
2. waits for the maintenance window, if any;
3. pushes the image into the device's slot by the field procedure (Begin, Chunks, Commit, each
   acknowledged or refused by the device);
4. reports every step with PATCH (downloading → downloaded → installing → succeeded | failed),
   with progress ``{cnt, of}`` and details. A 410 means canceled: the job stops quietly.

After a reboot or power cut it asks the API which of its devices' installations are still
active and carries on (the partial download in flash survives; transfers into devices restart).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Protocol

import aiohttp

from otaharness.emulators.olt_gateway.api_client import InstallationGone, OltApiClient, OltApiError
from otaharness.emulators.olt_gateway.device import Ack, Begin, Chunk, Commit, FieldDevice
from otaharness.protocols import olt
from otaharness.runtime import timeline

log = logging.getLogger(__name__)

ACTIVE = ("scheduled", "downloading", "downloaded", "installing")


class Clock(Protocol):
    def epoch(self) -> float: ...


class MqttLike(Protocol):
    async def connect(self) -> None: ...

    async def disconnect(self) -> None: ...

    async def subscribe(self, topic_filter: str, qos: int = 1) -> Any: ...

    async def publish(self, topic: str, payload: Any, qos: int = 0) -> Any: ...

    def add_handler(self, topic_filter: str, handler: Any) -> None: ...


class InstallFailed(Exception):
    """The installation cannot succeed; the message goes into the failed report's details."""


@dataclass(frozen=True)
class InstallJob:
    installation_id: str
    device_id: str
    slot: str
    firmware_id: str
    version: str
    size: int
    hashes: dict[str, str]
    download: str
    maintenance_window: dict[str, str] | None = None
    status: str = "scheduled"

    @classmethod
    def from_instruction(cls, message: dict[str, Any]) -> InstallJob:
        firmware = message["firmware"]
        return cls(message["installationId"], message["deviceId"], message["slot"], firmware["id"],
                   firmware["version"], firmware["size"], firmware["hashes"], firmware["download"],
                   message.get("maintenanceWindow"))

    @classmethod
    def from_api(cls, installation: dict[str, Any], firmware: dict[str, Any]) -> InstallJob:
        return cls(installation["id"], installation["deviceId"], installation["slot"], firmware["id"],
                   firmware["version"], firmware["blob"]["size"], firmware["blob"]["hashes"],
                   firmware["links"]["download"], installation.get("maintenanceWindow"),
                   installation["status"])

    @property
    def path(self) -> str:
        return f"/v1/devices/{self.device_id}/firmware-installations/{self.installation_id}"


class OltGateway:
    def __init__(self, gateway_id: str, api: OltApiClient, mqtt: MqttLike, clock: Clock, *,
                 devices: Iterable[FieldDevice] = (), chunk_size: int = 1024,
                 retry_delay: float = 5.0, max_attempts: int = 8) -> None:
        self.gateway_id = gateway_id
        self.api = api
        self.mqtt = mqtt
        self.clock = clock
        self.devices = {device.device_id: device for device in devices}
        self.chunk_size = chunk_size
        self.retry_delay = retry_delay
        self.max_attempts = max_attempts
        self.flash: dict[str, bytearray] = {}  # non-volatile: downloads per installation id
        self.results: dict[str, str] = {}  # installation id -> final status reported
        self.errors: list[dict[str, Any]] = []  # what arrived on devices/{id}/errors
        self.download_requests: list[dict[str, str]] = []  # headers of each blob GET, for tests
        self.instructions: list[dict[str, Any]] = []  # install/cancel instructions received
        self._jobs: dict[str, asyncio.Task[None]] = {}
        self._running = False
        mqtt.add_handler("devices/+/+", self._on_message)

    @property
    def resumed_at(self) -> list[int]:
        """Byte offsets at which a blob download went on from the flash (`Range: bytes=N-`)."""
        return [int(request["Range"].removeprefix("bytes=").split("-", 1)[0])
                for request in self.download_requests if "Range" in request]

    # -- power -------------------------------------------------------------------------------------
    async def start(self) -> None:
        await self.api.open()
        await self.mqtt.connect()
        for device_id in self.devices:
            await self.mqtt.subscribe(olt.device_filter(device_id), qos=1)
        self._running = True
        await self._recover()

    async def stop(self) -> None:
        self._running = False
        jobs = list(self._jobs.values())
        for job in jobs:
            job.cancel()
        await asyncio.gather(*jobs, return_exceptions=True)
        self._jobs.clear()
        await self.mqtt.disconnect()
        await self.api.close()

    async def add_device(self, device: FieldDevice) -> None:
        """Connect one more field device (listening for its instructions at once if running)."""
        self.devices[device.device_id] = device
        if self._running:
            await self.mqtt.subscribe(olt.device_filter(device.device_id), qos=1)

    async def reboot(self) -> None:
        await self.stop()
        await self.start()

    async def power_cut(self) -> None:
        """RAM is lost (jobs, token, transfers into devices); flash and device slots remain. The
        broker sees the connection drop, with no DISCONNECT."""
        for device in self.devices.values():
            device.power_cut()
        self.mqtt.abort()
        await self.stop()
        await self.start()

    async def wait_idle(self) -> None:
        """Until no installation job is running (tests and steps)."""
        while self._jobs:
            await asyncio.gather(*self._jobs.values(), return_exceptions=True)

    # -- device → cloud ------------------------------------------------------------------------------
    async def report(self, device_id: str, kind: str, value: dict[str, Any]) -> None:
        await self.mqtt.publish(olt.DATA_INGEST, {"deviceId": device_id, "type": kind,
                                                     "value": value}, qos=1)

    async def send_event(self, device_id: str, event: str, payload: dict[str, Any],
                         action_id: str | None = None) -> None:
        message: dict[str, Any] = {"deviceId": device_id, "event": event, "payload": payload}
        if action_id is not None:
            message["actionId"] = action_id
        await self.mqtt.publish(olt.EVENT_INGEST, message, qos=1)

    # -- cloud → device ------------------------------------------------------------------------------
    async def _on_message(self, topic: str, payload: bytes) -> None:
        _, device_id, kind = topic.split("/")
        device = self.devices.get(device_id)
        if device is None or not self._running:
            return
        try:
            message = olt.decode_json_object(payload, topic)
        except olt.TopicError as exc:
            log.warning("%s: %s", self.gateway_id, exc)
            return
        if kind == "firmware-installations":
            self._on_instruction(message)
        elif kind == "actions":
            answer = await device.on_action(message.get("action", ""), message.get("payload", {}))
            if answer is not None:
                await self.send_event(device_id, answer[0], answer[1], message.get("actionId"))
        elif kind == "configuration":
            device.configuration.update(message)
            await self.report(device_id, "configuration", message)
        elif kind == "errors":
            self.errors.append(message)

    def _on_instruction(self, message: dict[str, Any]) -> None:
        self.instructions.append(message)
        installation_id = message.get("installationId", "")
        if message.get("operation") == "cancel":
            task = self._jobs.get(installation_id)
            if task is not None:
                task.cancel()
            self.flash.pop(installation_id, None)
            self.results[installation_id] = "canceled"
            return
        try:
            job = InstallJob.from_instruction(message)
        except (KeyError, TypeError) as exc:
            log.warning("%s: malformed instruction (%s): %s", self.gateway_id, exc, message)
            return
        self._start_job(job)

    def _start_job(self, job: InstallJob) -> None:
        if job.installation_id in self._jobs or job.installation_id in self.results:
            return  # QoS 1 may deliver twice
        task = asyncio.get_running_loop().create_task(self._install(job))
        self._jobs[job.installation_id] = task
        task.add_done_callback(lambda _: self._jobs.pop(job.installation_id, None))

    async def _recover(self) -> None:
        for device_id in self.devices:
            page = await self.api.call("GET", f"/v1/devices/{device_id}/firmware-installations"
                                              "?pageSize=100")
            for installation in page:
                if installation["status"] in ACTIVE and "instructedAt" in installation:
                    firmware = await self.api.call("GET", f"/v1/firmwares/{installation['firmwareId']}")
                    self._start_job(InstallJob.from_api(installation, firmware))

    # -- one installation ----------------------------------------------------------------------------
    async def _install(self, job: InstallJob) -> None:
        try:
            if job.status in ("scheduled", "downloading"):
                await self._download(job)
                await self._patch(job, "downloaded", details=[f"{job.size} bytes, hashes verified"])
            image = bytes(self.flash.get(job.installation_id, b""))
            if len(image) != job.size:
                raise InstallFailed("the downloaded image is no longer in flash")
            if job.status != "installing":
                await self._wait_for_window(job)
            await self._patch(job, "installing", progress=(0, job.size))
            await self._push(job, image)
            await self._patch(job, "succeeded", details=[f"{job.slot} slot now holds {job.version}"])
            self._finish(job, "succeeded")
        except InstallationGone:
            log.info("%s: installation %s is no longer active", self.gateway_id, job.installation_id)
            self._finish(job, "canceled")
        except InstallFailed as exc:
            self._finish(job, "failed")
            try:
                await self._patch(job, "failed", details=[str(exc)])
            except InstallationGone:
                pass
        except OltApiError as exc:  # the API refused a report: nothing sensible left to do
            log.warning("%s: installation %s stopped: %s", self.gateway_id, job.installation_id, exc)
            self._finish(job, "error")

    def _finish(self, job: InstallJob, result: str) -> None:
        self.results[job.installation_id] = result
        timeline.note(self.api.bind_address or self.gateway_id, "state",
                      f"installation {job.installation_id} ends {result}")
        self.flash.pop(job.installation_id, None)

    async def _patch(self, job: InstallJob, status: str, *, progress: tuple[int, int] | None = None,
                     details: list[str] | None = None) -> None:
        body: dict[str, Any] = {"status": status}
        timeline.note(self.api.bind_address or self.gateway_id, "state",
                      f"installation {job.installation_id}: {status}" + (f" {details}" if details else ""))
        if progress is not None:
            body["progress"] = {"cnt": progress[0], "of": progress[1]}
        if details:
            body["details"] = details
        for attempt in range(1, self.max_attempts + 1):
            try:
                await self.api.call("PATCH", job.path, body)
                return
            except (aiohttp.ClientError, ConnectionError, asyncio.TimeoutError) as exc:
                # The connection broke before the answer. Usually the request never arrived; if it
                # did, the repeat of a status change is refused (409/410) and the job ends there.
                if attempt == self.max_attempts:
                    raise InstallFailed(f"cannot report {status}: {exc!r}") from None
                await asyncio.sleep(self.retry_delay)

    async def _download(self, job: InstallJob) -> None:
        flash = self.flash.setdefault(job.installation_id, bytearray())
        await self._patch(job, "downloading", progress=(len(flash), job.size))
        failures = 0
        while len(flash) < job.size:
            try:
                await self._fetch(job, flash)
            except (aiohttp.ClientError, ConnectionError, asyncio.TimeoutError) as exc:
                failures += 1
                if failures >= self.max_attempts:
                    raise InstallFailed(f"download failed {failures} times, last: {exc!r}") from None
                await asyncio.sleep(self.retry_delay)
                await self._patch(job, "downloading", progress=(len(flash), job.size),
                                  details=[f"resuming at byte {len(flash)} after {type(exc).__name__}"])
        self._verify(job, flash)

    async def _fetch(self, job: InstallJob, flash: bytearray) -> None:
        headers = {}
        if flash:  # resume; the server's ETag is the quoted sha256 of the blob
            headers["Range"] = f"bytes={len(flash)}-"
            headers["If-Range"] = f'"{job.hashes["sha256"]}"'
        self.download_requests.append(headers)
        async with self.api.download(job.download, headers) as response:
            if response.status == 404:
                raise InstallationGone(404, "the firmware is no longer available to this gateway")
            if response.status == 200:
                flash.clear()  # a whole representation: start over
            elif response.status == 206:
                first = int(response.headers["Content-Range"].split()[1].split("-")[0])
                if first != len(flash):
                    raise InstallFailed(f"asked for byte {len(flash)}, got a range from {first}")
            else:
                raise OltApiError(response.status, await response.text())
            async for chunk in response.content.iter_chunked(64 * 1024):
                flash += chunk
                if len(flash) > job.size:
                    raise InstallFailed(f"the download is longer than the announced {job.size} bytes")

    def _verify(self, job: InstallJob, flash: bytearray) -> None:
        for name in ("sha256", "md5"):
            digest = hashlib.new(name, flash).hexdigest()
            if digest != job.hashes[name]:
                self.flash.pop(job.installation_id, None)
                raise InstallFailed(f"{name} mismatch: expected {job.hashes[name]}, got {digest}")

    async def _wait_for_window(self, job: InstallJob) -> None:
        while wait := olt.seconds_until_window(self.clock.epoch(), job.maintenance_window):
            await asyncio.sleep(wait)

    async def _push(self, job: InstallJob, image: bytes) -> None:
        """The field procedure: Begin, Chunks (progress reported at each quarter), Commit."""
        device = self.devices[job.device_id]
        sha256 = hashlib.sha256(image).hexdigest()
        self._check(await device.field(Begin(job.slot, len(image), sha256, job.version)))
        offsets = range(0, len(image), self.chunk_size)
        quarter = max(1, len(offsets) // 4)
        for index, offset in enumerate(offsets, 1):
            data = image[offset:offset + self.chunk_size]
            self._check(await device.field(Chunk(job.slot, offset, data)))
            if index % quarter == 0 and index < len(offsets):
                await self._patch(job, "installing", progress=(offset + len(data), len(image)))
        self._check(await device.field(Commit(job.slot)))

    @staticmethod
    def _check(answer: Any) -> None:
        if not isinstance(answer, Ack):
            raise InstallFailed(f"device refused at {answer.step}: {answer.reason}")


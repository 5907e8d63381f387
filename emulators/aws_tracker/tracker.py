"""An nRF9160 asset tracker as AWS IoT Jobs sees it: MQTT jobs and shadow traffic, and the FOTA
download from S3. Thousands run in one process: no thread and no periodic timer per tracker
(MQTT keepalive timers sit on a shared grid; a task exists only while a tracker works).

Two modes:

* **autonomous** — the nRF `aws_fota` library (sdk-nrf `subsys/net/lib/aws_fota`; the flow in
  shared/protocols/aws-iot-jobs.md §4.2). On connect: subscribe `jobs/notify-next` and
  `jobs/$next/get/#`, publish `{"clientToken": ""}` to `jobs/$next/get`. An execution offered on
  `$next/get/accepted` or `notify-next` (ignored while another job is handled): subscribe
  `jobs/<jobId>/update/#`, update IN_PROGRESS with `expectedVersion` as a JSON *string*, download
  (`download.py`), store the image in flash and reboot into it. After the boot the same
  execution is offered again; the tracker sees it booted that job's image and updates it
  SUCCEEDED, then reports `state.reported.dev.v.appV` in its shadow. (Newer aws_fota reports
  SUCCEEDED just before rebooting; confirming after the boot lets a harness tell a booted image
  from a downloaded one.) A bad document, a 404, a size mismatch or a download timeout: FAILED
  with `statusDetails.reason`, then `$next/get` for the next job.
* **step-driven** — the tracker does nothing by itself; `start_next_job`, `describe_job`,
  `update_job` and `report_state` are what test steps do (the asset tracker E2E steps use
  start-next).

Device faults (runtime contract): `reboot()` and `power_cut()` lose RAM and keep flash, then boot
after `reboot_seconds` and connect again. What survives in `Flash`: the installed version, the
slot with whatever bytes were written, a complete image pending for the next boot, and the job
whose image is running but not yet confirmed. The download offset is RAM: after a power cut in
the middle of a download the tracker finds the job still IN_PROGRESS on `$next/get` and starts
its download again from byte 0, as an nRF without saved DFU progress does.
"""

from __future__ import annotations

import asyncio
import collections
import enum
import hashlib
import itertools
import json
import logging
import random
import ssl
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from otaharness.emulators.aws_tracker.download import DownloadFailed, RangeDownload
from otaharness.emulators.aws_tracker.job_document import FirmwareJob, JobDocumentError
from otaharness.runtime import timeline
from otaharness.runtime.mqtt import MqttClient, MqttError
from otaharness.runtime.tasks import BackgroundTasks

log = logging.getLogger(__name__)

# Loop-time seconds to wait for an accepted/rejected response.
RESPONSE_TIMEOUT = 30.0
# Reconnection after a lost MQTT connection: first delay, doubling up to the maximum.
RECONNECT_FIRST_DELAY = 5.0
RECONNECT_MAX_DELAY = 300.0
MAX_STATUS_DETAIL_CHARS = 1024  # iot-jobs-data DetailsValue
NEXT = "$next"

# Shadow `dev` values of the asset tracker (asset-tracker-cloud-firmware-aws, json_protocol_names).
MODEM_FIRMWARE = "mfw_nrf9160_1.3.5"
BOARD_VERSION = "thingy91_nrf9160"


class TrackerError(Exception):
    """A request the tracker could not make or got no answer to."""


class RequestRejected(Exception):
    """A request answered on `.../rejected`."""

    def __init__(self, code: Any, message: str, payload: dict[str, Any]) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.payload = payload


class JobRejected(RequestRejected):
    """A jobs request rejected with a jobs error code (e.g. `VersionMismatch`)."""


class ShadowRejected(RequestRejected):
    """A shadow update rejected with an HTTP-like numeric code (e.g. 409)."""


@dataclass(frozen=True)
class FirmwareImage:
    job_id: str
    version: str
    data: bytes


@dataclass
class Flash:
    """Non-volatile state: survives reboots and power cuts."""

    installed_version: str
    slot: bytearray = field(default_factory=bytearray)  # secondary slot: bytes written so far
    pending: FirmwareImage | None = None  # complete and checked: swapped in at the next boot
    booted_job: str | None = None  # the job whose image runs now, not yet confirmed SUCCEEDED


class JobOutcome(enum.Enum):
    ENDED = "ended"  # a terminal status was reported: ask for the next job
    REBOOT = "reboot"  # a new image waits in flash
    STALLED = "stalled"  # an update was rejected: wait for notify-next (aws_fota raises an error)


@dataclass
class CurrentJob:
    """RAM: the execution being handled and the version the tracker expects it at."""

    job_id: str
    version_number: int
    document: Any
    status: str = "QUEUED"


def imei_of(thing_name: str) -> str:
    """A stable 15-digit IMEI per thing name, with its Luhn check digit (3GPP TS 23.003 §6.2.1)."""
    digest = hashlib.sha256(thing_name.encode()).digest()
    body = "35" + str(int.from_bytes(digest[:8], "big"))[-12:].zfill(12)
    total = 0
    for index, char in enumerate(reversed(body)):
        digit = int(char) * (2 if index % 2 == 0 else 1)
        total += digit - 9 if digit > 9 else digit
    return body + str((10 - total % 10) % 10)


class Tracker:
    # The download client's class (a load run's subclass reports each range request).
    range_download: type[RangeDownload] = RangeDownload

    def __init__(
        self,
        thing_name: str,
        *,
        mqtt_host: str,
        mqtt_port: int,
        clock: Any,
        s3_endpoint: tuple[str, int] | None,
        bind_address: str | None = None,
        app_version: str = "1.0.0",
        autonomous: bool = True,
        fragment_size: int = 2048,
        reboot_seconds: float = 10.0,
        download_timeout: float = 60.0,
        rng: random.Random | None = None,
        tls: ssl.SSLContext | None = None,
        mqtt_server_name: str | None = None,
    ) -> None:
        """``tls``: the tracker's TLS context (its certificate and key, the CA it trusts) for
        MQTT over mutual TLS and HTTPS downloads; ``mqtt_server_name``: the host name the
        broker's certificate is checked for (the account's ATS endpoint)."""
        self.thing_name = thing_name
        self.tls = tls
        self.mqtt_server_name = mqtt_server_name
        self.mqtt_host = mqtt_host
        self.mqtt_port = mqtt_port
        self.clock = clock
        self.s3_endpoint = s3_endpoint
        self.bind_address = bind_address
        self.autonomous = autonomous
        self.fragment_size = fragment_size
        self.reboot_seconds = reboot_seconds
        self.download_timeout = download_timeout
        self.rng = rng or random.Random(thing_name)
        self.imei = imei_of(thing_name)
        self.flash = Flash(installed_version=app_version)
        self.events: list[tuple[float, str]] = []
        # Emulator bookkeeping (not device state: survives reboots): range_requests, reboots.
        self.counters: collections.Counter[str] = collections.Counter()
        # Byte offsets at which a download went on after a broken connection (same bookkeeping).
        self.resumed_at: list[int] = []
        # Called with each event's text as it happens (tests wait on these).
        self.listeners: list[Callable[[str], None]] = []
        self._jobs = f"$aws/things/{thing_name}/jobs"
        self._shadow_update = f"$aws/things/{thing_name}/shadow/update"
        self._tokens = itertools.count(1)
        self._client: MqttClient | None = None
        self._want_connected = False
        self._reconnect_delay = RECONNECT_FIRST_DELAY
        self._reconnect_timer: asyncio.TimerHandle | None = None
        self._tasks = BackgroundTasks(thing_name, on_error=self._task_failed)
        self._job_task: asyncio.Task[Any] | None = None
        self._boot()

    def __repr__(self) -> str:
        return f"<Tracker {self.thing_name} {self.app_version} {'online' if self.connected else 'offline'}>"

    # ------------------------------------------------------------------ state

    def _boot(self) -> None:
        """Start from flash: RAM is fresh; a pending image becomes the running one."""
        pending = self.flash.pending
        if pending is not None:
            self.flash.installed_version = pending.version
            self.flash.booted_job = pending.job_id
            self.flash.pending = None
        self.app_version = self.flash.installed_version
        self.current_job: CurrentJob | None = None
        self.download: RangeDownload | None = None
        self._pending: dict[tuple[str, str], asyncio.Future[tuple[bool, dict[str, Any]]]] = {}
        self._subscribed: set[str] = set()

    @property
    def connected(self) -> bool:
        return self._client is not None and self._client.is_connected

    @property
    def download_offset(self) -> int:
        """Bytes of the current download received so far (RAM)."""
        return self.download.offset if self.download is not None else 0

    def _download_resumes(self, offset: int, why: str) -> None:
        self.resumed_at.append(offset)
        self._event(f"download resumes at byte {offset} after: {why}")

    def _event(self, text: str) -> None:
        self.events.append((self.clock.epoch(), text))
        log.info("%s: %s", self.thing_name, text)
        timeline.note(self.bind_address or self.thing_name, "state", text)
        for listener in list(self.listeners):
            listener(text)

    # ------------------------------------------------------------------ connection

    async def connect(self) -> None:
        """Connect to the broker and subscribe what the mode needs (autonomous: ask for `$next`)."""
        self._want_connected = True
        await self._connect_now()

    async def power_on(self) -> None:
        """As a device switched on: try to connect; a refused or failed connection is an event,
        and the tracker tries again with backoff (as it does after losing a connection)."""
        self._want_connected = True
        await self._try_connect()

    async def disconnect(self) -> None:
        """Leave cleanly: no task, timer or connection left behind."""
        self._want_connected = False
        await self._go_down(graceful=True)

    async def _connect_now(self) -> None:
        client = MqttClient(self.thing_name, self.mqtt_host, self.mqtt_port, bind_address=self.bind_address,
                            tls=self.tls, server_hostname=self.mqtt_server_name)
        client.add_handler(f"$aws/things/{self.thing_name}/#", self._on_message)
        client.on_disconnect = self._on_connection_lost
        self._client = client
        self._subscribed = set()
        await client.connect()
        self._reconnect_delay = RECONNECT_FIRST_DELAY
        self._event(f"connected to {self.mqtt_host}:{self.mqtt_port} running {self.app_version}")
        await self._subscribe(f"{self._shadow_update}/accepted", f"{self._shadow_update}/rejected")
        if self.autonomous:
            # aws_fota on CONNACK: notify-next, then $next/get/#; on the SUBACK, $next/get.
            await self._subscribe(f"{self._jobs}/notify-next", f"{self._jobs}/{NEXT}/get/#")
            await self._ask_next()

    async def _subscribe(self, *topic_filters: str) -> None:
        for topic_filter in topic_filters:
            if topic_filter not in self._subscribed:
                await self._mqtt().subscribe(topic_filter, qos=1)
                self._subscribed.add(topic_filter)

    def _mqtt(self) -> MqttClient:
        if self._client is None or not self._client.is_connected:
            raise TrackerError(f"{self.thing_name} is not connected")
        return self._client

    def _on_connection_lost(self, error: MqttError) -> None:
        self._event(f"MQTT connection lost: {error}")
        self._fail_pending(TrackerError(f"{self.thing_name}: connection lost"))
        self._schedule_reconnect()

    def _schedule_reconnect(self) -> None:
        if not self._want_connected or self._reconnect_timer is not None:
            return
        delay = self._reconnect_delay * (1 + 0.2 * self.rng.random())  # jitter: no thundering herd
        self._reconnect_delay = min(self._reconnect_delay * 2, RECONNECT_MAX_DELAY)
        loop = asyncio.get_running_loop()
        self._reconnect_timer = loop.call_later(delay, self._reconnect)

    def _reconnect(self) -> None:
        self._reconnect_timer = None
        self._tasks.spawn(self._try_connect())

    async def _try_connect(self) -> None:
        if self._client is not None:
            await self._client.disconnect()  # cancels the old client's handler tasks
        try:
            await self._connect_now()
        except (MqttError, TrackerError) as error:
            self._event(f"connection failed: {error}")
            self._schedule_reconnect()

    def _fail_pending(self, error: Exception) -> None:
        pending, self._pending = self._pending, {}
        for future in pending.values():
            if not future.done():
                future.set_exception(error)

    # ------------------------------------------------------------------ device faults

    async def reboot(self) -> None:
        """Orderly reset: MQTT DISCONNECT, RAM lost, flash kept; returns once booted and connected."""
        await self._restart("reboot", graceful=True)

    async def power_cut(self) -> None:
        """Power lost: connections die without a goodbye, RAM lost, flash kept; power comes back at
        once and the tracker boots (`reboot_seconds`); returns once booted and connected."""
        await self._restart("power cut", graceful=False)

    async def _restart(self, why: str, *, graceful: bool) -> None:
        self._event(f"{why}: going down")
        await self._go_down(graceful=graceful)
        self.counters["reboots"] += 1
        await asyncio.sleep(self.reboot_seconds)
        self._boot()
        self._event(f"booted {self.app_version}")
        if self._want_connected:
            await self._try_connect()

    async def _go_down(self, *, graceful: bool) -> None:
        if self._reconnect_timer is not None:
            self._reconnect_timer.cancel()
            self._reconnect_timer = None
        await self._tasks.cancel_all()  # closes any HTTP session too
        self._fail_pending(TrackerError(f"{self.thing_name} went down"))
        client, self._client = self._client, None
        if client is not None:
            client.on_disconnect = None
            if not graceful:
                client.abort()
            await client.disconnect()

    def _task_failed(self, error: BaseException) -> None:
        log.error("%s: task failed", self.thing_name, exc_info=error)
        self._event(f"internal error: {error!r}")

    # ------------------------------------------------------------------ requests and responses

    def _on_message(self, topic: str, payload: bytes) -> None:
        last = topic.rsplit("/", 1)[-1]
        if last not in ("accepted", "rejected", "notify-next"):
            return  # our own requests echoed by `#` subscriptions, and shadow events
        try:
            body = json.loads(payload)
        except ValueError:
            self._event(f"unreadable message on {topic}")
            return
        if not isinstance(body, dict):
            return
        if last == "notify-next":
            self._offer(body.get("execution"))
            return
        request_topic = topic[: -len(last) - 1]
        future = self._pending.pop((request_topic, str(body.get("clientToken", ""))), None)
        if future is not None and not future.done():
            future.set_result((last == "accepted", body))
        elif request_topic == f"{self._jobs}/{NEXT}/get" and last == "accepted":
            self._offer(body.get("execution"))  # the autonomous flow's unawaited $next/get

    async def _request(self, topic: str, body: dict[str, Any], *, token: str | None = None,
                       rejected: type[RequestRejected] = JobRejected,
                       replies: tuple[str, ...] = ("#",)) -> dict[str, Any]:
        """Publish a request and wait for the accepted/rejected reply carrying its clientToken.

        `replies`: the filters under the request topic to subscribe first (a plain broker, unlike
        AWS, delivers responses only to subscribers); `#` as aws_fota does."""
        if token is None:
            token = f"{self.thing_name[:40]}-{next(self._tokens)}"
        body = {**body, "clientToken": token}
        await self._subscribe(*(f"{topic}/{reply}" for reply in replies))
        key = (topic, token)
        if key in self._pending:
            raise TrackerError(f"a request on {topic} with clientToken {token!r} is already waiting")
        future: asyncio.Future[tuple[bool, dict[str, Any]]] = asyncio.get_running_loop().create_future()
        self._pending[key] = future
        try:
            await self._mqtt().publish(topic, body, qos=1)
            async with asyncio.timeout(RESPONSE_TIMEOUT):
                accepted, reply = await future
        except TimeoutError:
            raise TrackerError(f"{self.thing_name}: no reply on {topic} within {RESPONSE_TIMEOUT:g} s") from None
        except MqttError as error:
            raise TrackerError(f"{self.thing_name}: {error}") from error
        finally:
            if self._pending.get(key) is future:
                del self._pending[key]
        if not accepted:
            raise rejected(reply.get("code"), str(reply.get("message", "")), reply)
        return reply

    # ------------------------------------------------------------------ step-driven actions

    async def start_next_job(self, status_details: dict[str, str] | None = None,
                             step_timeout_minutes: int | None = None) -> dict[str, Any] | None:
        """StartNextPendingJobExecution; the execution started (None when nothing is pending)."""
        body: dict[str, Any] = {}
        if status_details is not None:
            body["statusDetails"] = status_details
        if step_timeout_minutes is not None:
            body["stepTimeoutInMinutes"] = step_timeout_minutes
        reply = await self._request(f"{self._jobs}/start-next", body)
        execution = reply.get("execution")
        if execution is not None:
            self.current_job = CurrentJob(execution["jobId"], int(execution["versionNumber"]),
                                          execution.get("jobDocument"), execution["status"])
        return execution

    async def describe_job(self, job_id: str = NEXT) -> dict[str, Any] | None:
        """DescribeJobExecution (jobId may be `$next`); the execution, None when there is none."""
        reply = await self._request(f"{self._jobs}/{job_id}/get", {"includeJobDocument": True})
        return reply.get("execution")

    async def update_job(self, job_id: str, status: str, *, expected_version: int | str | None = None,
                         status_details: dict[str, str] | None = None) -> dict[str, Any]:
        """UpdateJobExecution; the accepted payload (with executionState)."""
        body: dict[str, Any] = {"status": status, "includeJobExecutionState": True}
        if expected_version is not None:
            body["expectedVersion"] = expected_version
        if status_details is not None:
            body["statusDetails"] = status_details
        reply = await self._request(f"{self._jobs}/{job_id}/update", body)
        if self.current_job is not None and self.current_job.job_id == job_id:
            self.current_job.status = status
            self.current_job.version_number += 1
        return reply

    async def report_state(self, reported: dict[str, Any]) -> dict[str, Any]:
        """Shadow update of `state.reported`; the accepted payload."""
        return await self._request(self._shadow_update, {"state": {"reported": reported}},
                                   rejected=ShadowRejected, replies=("accepted", "rejected"))

    def device_info(self) -> dict[str, Any]:
        """`dev` as the asset tracker reports it (DeviceUpdateShadow.feature.md); ts in ms."""
        return {
            "v": {"imei": self.imei, "iccid": "89" + self.imei + "01", "modV": MODEM_FIRMWARE,
                  "brdV": BOARD_VERSION, "appV": self.app_version},
            "ts": int(self.clock.epoch() * 1000),
        }

    # ------------------------------------------------------------------ autonomous FOTA (aws_fota)

    async def _ask_next(self) -> None:
        """`$next/get` with an empty clientToken; the reply comes to `_on_message` unawaited."""
        await self._mqtt().publish(f"{self._jobs}/{NEXT}/get", {"clientToken": ""}, qos=1)

    def _offer(self, execution: Any) -> None:
        if not self.autonomous or not isinstance(execution, dict):
            return  # "No queued jobs for this device"
        if self._job_task is not None:
            return  # aws_fota: "Job already being handled, ignore message"
        self._job_task = self._tasks.spawn(self._handle_job(execution))

    async def _handle_job(self, execution: dict[str, Any]) -> None:
        outcome = JobOutcome.STALLED
        try:
            outcome = await self._run_job(execution)
        except (TrackerError, MqttError, RequestRejected) as error:
            self._event(f"job {execution.get('jobId')} interrupted: {error}")
        finally:
            self._job_task = None
            self.current_job = None
        if outcome is JobOutcome.REBOOT:
            version = self.flash.pending.version if self.flash.pending else self.app_version
            await self._restart(f"rebooting into {version}", graceful=True)
        elif outcome is JobOutcome.ENDED and self.connected:
            await self._ask_next()

    async def _run_job(self, execution: dict[str, Any]) -> JobOutcome:
        """One execution, nRF style."""
        job = CurrentJob(str(execution.get("jobId")), int(execution.get("versionNumber", 0)),
                         execution.get("jobDocument"), str(execution.get("status")))
        self.current_job = job
        await self._subscribe(f"{self._jobs}/{job.job_id}/update/#")
        if self.flash.booted_job == job.job_id:
            return await self._confirm(job)
        try:
            firmware = FirmwareJob.from_document(job.document)
        except JobDocumentError as error:
            return await self._fail(job, f"invalid job document: {error}")
        try:
            await self._update(job, "IN_PROGRESS")
        except JobRejected as rejection:
            self._event(f"job {job.job_id} update to IN_PROGRESS rejected: {rejection}")
            return JobOutcome.STALLED
        try:
            image = await self._download(job, firmware)
        except DownloadFailed as failure:
            return await self._fail(job, failure.reason)
        self.flash.pending = FirmwareImage(job.job_id, firmware.fwversion, image)
        return JobOutcome.REBOOT

    async def _update(self, job: CurrentJob, status: str, details: dict[str, str] | None = None) -> None:
        """aws_jobs_update_job_execution: expectedVersion as a JSON string, clientToken ""."""
        body: dict[str, Any] = {"status": status, "expectedVersion": str(job.version_number)}
        if details is not None:
            body["statusDetails"] = details
        await self._request(f"{self._jobs}/{job.job_id}/update", body, token="")
        job.version_number += 1  # aws_fota counts accepted updates itself
        job.status = status
        self._event(f"job {job.job_id} {status} (version {job.version_number})")

    async def _fail(self, job: CurrentJob, reason: str) -> JobOutcome:
        self._event(f"job {job.job_id} failed: {reason}")
        try:
            await self._update(job, "FAILED", {"reason": reason[:MAX_STATUS_DETAIL_CHARS]})
        except JobRejected as rejection:
            self._event(f"job {job.job_id} update to FAILED rejected: {rejection}")
        return JobOutcome.ENDED

    async def _confirm(self, job: CurrentJob) -> JobOutcome:
        """Running the job's image after the boot: SUCCEEDED, then the new version in the shadow."""
        outcome = JobOutcome.ENDED
        try:
            await self._update(job, "SUCCEEDED")
        except JobRejected as rejection:
            self._event(f"job {job.job_id} update to SUCCEEDED rejected: {rejection}")
            outcome = JobOutcome.STALLED
        self.flash.booted_job = None
        await self.report_state({"dev": self.device_info()})
        self._event(f"reported appV {self.app_version}")
        return outcome

    async def _download(self, job: CurrentJob, firmware: FirmwareJob) -> bytes:
        secure = self.tls is not None and firmware.protocol == "https"
        endpoint = self.s3_endpoint or (firmware.host, 443 if secure else 80)
        marks = {25, 50, 75}

        def progress(offset: int, size: int) -> None:
            percent = offset * 100 // size
            for mark in sorted(m for m in marks if m <= percent):
                marks.discard(mark)
                self._event(f"download {mark}%")

        self.download = self.range_download(
            endpoint=endpoint, host=firmware.host, path=firmware.path, sink=self.flash.slot,
            fragment_size=self.fragment_size, expected_size=firmware.size,
            timeout=self.download_timeout, bind_address=self.bind_address, on_progress=progress,
            on_resume=self._download_resumes,
            tls=self.tls if secure else None,
        )
        self._event(f"download of {firmware.host}/{firmware.path} started")
        try:
            image = await self.download.run()
        finally:
            self.counters["range_requests"] += self.download.requests
        self._event(f"download complete: {len(image)} bytes in {self.download.requests} requests")
        return image

"""The ACS's state machine: device registry, tasks (Download, Reboot), upgrade batches and
their 30-minute version checks, Connection Requests. No HTTP here except the outgoing
Connection Request; the CWMP endpoint (cwmp_endpoint.py) turns wire messages into calls.

Batch semantics (seed 002, fact sheet §10; the open questions answered as the brief decided):

* a batch lists the group's devices whose SoftwareVersion is the original version (at creation
  and on "find new devices");
* a listed device is upgraded at an Inform (any, or only one carrying ``1 BOOT``) whose time in
  the batch's time zone is on one of its days and in one of its hours, while fewer than
  ``max_devices_per_day`` devices started that local day and attempts remain;
* the version check runs ``check_delay`` (30 min) after the TransferComplete, or after the
  Download when none comes: SoftwareVersion == new version -> ready, else error; a failed
  TransferComplete is an error at once; an error is retried at a later Inform while attempts
  remain. "Force upgrade" ignores window, event, cap and attempts and sends a Connection Request.
"""

from __future__ import annotations

import asyncio
import fnmatch
import logging
import random
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import quote

import aiohttp
from yarl import URL

from otaharness.protocols.cwmp import (
    EVENT_BOOT,
    CwmpError,
    FIRMWARE_UPGRADE_IMAGE,
    Download,
    DownloadResponse,
    Fault,
    Inform,
    Reboot,
    Rpc,
    TransferComplete,
)
from otaharness.protocols.http_digest import NONCE_LIFETIME, DigestClient

from .schedule import (
    ScheduleError,
    in_window,
    known_zone,
    local_day_bounds,
    parse_days,
    parse_hours,
)
from .store import Store

log = logging.getLogger(__name__)

SOFTWARE_VERSION_SUFFIX = ".DeviceInfo.SoftwareVersion"
CONNECTION_REQUEST_URL_SUFFIX = ".ManagementServer.ConnectionRequestURL"
BATCH_EVENTS = ("Boot", "Inform")
# Batch device states; "error" is retried while attempts remain.
QUEUED, DOWNLOADING, INSTALLED, READY, ERROR, DISCARDED = (
    "queued", "downloading", "installed", "ready", "error", "discarded")
IN_PROGRESS = (DOWNLOADING, INSTALLED)


class AcsError(ValueError):
    """A request to the ACS that cannot be carried out."""


class NotFound(AcsError):
    """The request names a device, file, group or batch the ACS does not have."""


class Clock(Protocol):  # the part of otaharness.runtime.clock.Clock the ACS reads
    def epoch(self) -> float: ...


@dataclass
class AcsConfig:
    auth_mode: str = "none"  # CPE -> ACS: none / basic / digest / any
    users: dict[str, str] = field(default_factory=dict)
    strict_nc: bool = True  # refuse non-increasing Digest nonce counts (replays)
    # Devices allowed to reuse a Digest nonce count (cwmp-sim sends nc=00000001 every time):
    # "oui:E48D8C" or "serial:<glob>" each; none by default.
    nc_reuse_devices: tuple[str, ...] = ()
    nonce_lifetime: float = NONCE_LIFETIME  # seconds; then a stale=true re-challenge
    realm: str = "otaharness ACS"
    max_sessions: int = 100_000  # open CWMP sessions at once; more Informs get 503
    session_idle_timeout: float = 30.0  # GenieACS cwmp.sessionTimeout
    max_session_duration: float = 300.0  # GenieACS MAX_SESSION_DURATION
    max_body_bytes: int = 1 << 20
    hold_requests: bool = False  # HoldRequests until the ACS has sent its RPCs
    # Sends of one task's RPC without an answer (the session died, or the ACS did) before the
    # task fails, so a task a device never answers cannot block the ones queued behind it.
    max_task_attempts: int = 3
    check_delay: float = 1800.0  # the seed's "after 30 minutes"
    connection_request_username: str = ""
    connection_request_password: str = ""
    connection_request_timeout: float = 2.0  # GenieACS cwmp.connectionRequestTimeout
    file_auth_mode: str = "none"  # what the file server demands: none / basic / digest / any
    file_users: dict[str, str] = field(default_factory=dict)
    download_username: str = ""  # what the ACS puts in Download (may differ: a test's wrong creds)
    download_password: str = ""
    files_url: str = ""  # public prefix of the file server; set when it starts


NC_REUSE_KINDS = ("oui", "serial")


def nc_reuse_problem(pattern: str) -> str | None:
    """Why ``pattern`` cannot name devices allowed to reuse nonce counts, or None."""
    kind, colon, value = pattern.partition(":")
    if not colon or kind not in NC_REUSE_KINDS or not value:
        return f"{pattern!r}: expected oui:<OUI> or serial:<pattern, * and ? as wildcards>"
    if value.strip("*?") == "":
        return f"{pattern!r} matches every device: name an OUI or a serial number pattern"
    return None


def nc_reuse_allowed(patterns: tuple[str, ...], oui: str, serial_number: str) -> bool:
    """Whether a device (by OUI or serial number) may reuse a Digest nonce count."""
    for pattern in patterns:
        kind, _, value = pattern.partition(":")
        if kind == "oui" and value.upper() == oui.upper():
            return True
        if kind == "serial" and fnmatch.fnmatchcase(serial_number, value):
            return True
    return False


def device_id_of(oui: str, product_class: str, serial_number: str) -> str:
    """GenieACS's device ID form: OUI-ProductClass-SerialNumber, each part URL-encoded."""
    return "-".join(quote(part, safe="") for part in (oui, product_class, serial_number))


class Acs:
    def __init__(self, store: Store, clock: Clock, config: AcsConfig, rng: random.Random) -> None:
        self.store = store
        self.clock = clock
        self.config = config
        self.rng = rng
        self._checks: dict[tuple[int, str], asyncio.TimerHandle] = {}
        self._http: aiohttp.ClientSession | None = None

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self) -> None:
        """Re-arm the version checks a previous run left pending."""
        for entry in self.store.batch_devices():
            if entry["state"] in IN_PROGRESS and entry["check_due"] is not None:
                self._arm_check(entry["batch_id"], entry["device_id"], entry["check_due"])
        for task in self.store.tasks(state="sent"):  # lost with the old process's sessions
            self.task_returned(task["id"], reason="the ACS stopped before the CPE answered")

    async def stop(self) -> None:
        for handle in self._checks.values():
            handle.cancel()
        self._checks.clear()
        if self._http is not None:
            await self._http.close()
            self._http = None

    def now(self) -> float:
        return self.clock.epoch()

    # -- Inform --------------------------------------------------------------------------------
    def inform(self, inform: Inform, peer_host: str) -> str:
        """Register the device and its parameters; queue batch work due at this Inform."""
        ident = inform.device_id
        device_id = device_id_of(ident.oui, ident.product_class, ident.serial_number)
        now = self.now()
        known = self.store.device(device_id)
        parameters = dict(known["parameters"]) if known else {}
        parameters.update({p.name: p.value for p in inform.parameter_list})
        values: dict[str, Any] = {
            "oui": ident.oui, "product_class": ident.product_class,
            "serial_number": ident.serial_number, "manufacturer": ident.manufacturer,
            "parameters": parameters, "last_inform": now,
            "last_events": [[e.event_code, e.command_key] for e in inform.event],
        }
        for name, value in parameters.items():
            if name.endswith(SOFTWARE_VERSION_SUFFIX):
                values["software_version"] = value
            elif name.endswith(CONNECTION_REQUEST_URL_SUFFIX):
                values["connection_request_url"] = value
        if known is None:
            values["registered"] = now
        with self.store.transaction():
            self.store.save_device(device_id, **values)
            self.store.add_event(device_id, now, "inform", events=values["last_events"],
                                 software_version=values.get("software_version"),
                                 peer=peer_host, retry_count=inform.retry_count)
            self._start_due_batch_upgrade(device_id, inform.event_codes, now)
        return device_id

    def _start_due_batch_upgrade(self, device_id: str, events: tuple[str, ...], now: float) -> None:
        if self._has_open_download(device_id):
            return
        device = self.store.device(device_id)
        for entry in self.store.batch_devices(device_id=device_id):
            batch = self.store.batch(entry["batch_id"])
            if batch is None or not self._may_start(batch, entry, device, events, now):
                continue
            self._start_batch_download(batch, device_id, now)
            return  # one upgrade at a time

    def _may_start(self, batch: dict[str, Any], entry: dict[str, Any], device: dict[str, Any] | None,
                   events: tuple[str, ...], now: float) -> bool:
        if entry["state"] not in (QUEUED, ERROR) or entry["attempts"] >= batch["max_attempts"]:
            return False
        if device is None or device["software_version"] != batch["original_version"]:
            return False
        if batch["event"] == "Boot" and EVENT_BOOT not in events:
            return False
        if not in_window(now, batch["days"], batch["hours"], batch["timezone"]):
            return False
        cap = batch["max_devices_per_day"]
        if cap:
            started = self.store.devices_started_between(
                batch["id"], *local_day_bounds(now, batch["timezone"]))
            if device["id"] not in started and len(started) >= cap:
                return False
        return True

    def _has_open_download(self, device_id: str) -> bool:
        return any(t["kind"] == "download" and t["state"] in ("pending", "sent")
                   for t in self.store.tasks(device_id=device_id))

    def _start_batch_download(self, batch: dict[str, Any], device_id: str, now: float) -> int:
        task_id = self.store.add_task(device_id, "download", {"file": batch["file"]}, now,
                                      batch_id=batch["id"])
        entry = self.store.batch_device(batch["id"], device_id)
        self.store.update_batch_device(
            batch["id"], device_id, state=DOWNLOADING, attempts=entry["attempts"] + 1,  # type: ignore[index]
            command_key=self._command_key(task_id), download_sent=None, transfer_complete=None,
            check_due=None, last_fault=None, updated=now)
        self.store.record_start(batch["id"], device_id, now)
        self.store.add_event(device_id, now, "batch-upgrade-started", batch=batch["id"],
                             task=task_id)
        return task_id

    @staticmethod
    def _command_key(task_id: int) -> str:
        return f"otaharness-{task_id}"  # unique, <= 32 characters (fact sheet §5 point 5)

    # -- what the ACS sends in a session -------------------------------------------------------
    def pending_tasks(self, device_id: str) -> list[dict[str, Any]]:
        return self.store.tasks(device_id=device_id, state="pending")

    def next_rpc(self, device_id: str) -> tuple[int, Rpc] | None:
        """The next task's RPC; the task is marked sent (the session owns it until answered)."""
        for task in self.pending_tasks(device_id):
            rpc = self._rpc_for(task)
            if rpc is None:
                continue
            now = self.now()
            command_key = self._command_key(task["id"])
            with self.store.transaction():
                self.store.update_task(task["id"], state="sent", command_key=command_key,
                                       attempts=task["attempts"] + 1)
                self.store.add_event(device_id, now, f"{rpc.TYPE_NAME}-sent", task=task["id"],
                                     command_key=command_key)
                if task["batch_id"] is not None:
                    check_due = now + self.config.check_delay
                    self.store.update_batch_device(task["batch_id"], device_id,
                                                   download_sent=now, check_due=check_due)
                    self._arm_check(task["batch_id"], device_id, check_due)
            return task["id"], rpc
        return None

    def _rpc_for(self, task: dict[str, Any]) -> Rpc | None:
        key = self._command_key(task["id"])
        if task["kind"] == "reboot":
            return Reboot(command_key=key)
        file = self.store.file(task["args"]["file"])
        if file is None:  # deleted since: fail the task rather than send a dead URL
            self.store.update_task(task["id"], state="failed", result={"error": "file deleted"})
            return None
        download = Download(
            command_key=key, file_type=file["file_type"] or FIRMWARE_UPGRADE_IMAGE,
            url=self.download_url(file["name"]),
            username=self.config.download_username, password=self.config.download_password,
            file_size=file["size"], target_file_name=file["name"],
            delay_seconds=int(task["args"].get("delay_seconds", 0)))
        try:  # the admin API checks all of this; a state directory from elsewhere may not have
            download.validate()
        except CwmpError as error:
            self.store.update_task(task["id"], state="failed",
                                   result={"error": f"cannot send this Download: {error}"})
            return None
        return download

    def download_url(self, name: str) -> str:
        return f"{self.config.files_url}/{quote(name, safe='')}"

    def task_returned(self, task_id: int,
                      reason: str = "the session ended before the CPE answered") -> None:
        """The task's RPC went unanswered: send it again at the next session, or fail it once
        it was sent ``max_task_attempts`` times, so the tasks behind it proceed."""
        task = self.store.task(task_id)
        if task is None or task["state"] != "sent":
            return
        if task["attempts"] < self.config.max_task_attempts:
            self.store.update_task(task_id, state="pending")
            return
        error = f"no answer after {task['attempts']} attempts; the last: {reason}"
        device_id = task["device_id"]
        with self.store.transaction():
            self.store.update_task(task_id, state="failed", result={"error": error})
            self.store.add_event(device_id, self.now(), "task-failed", task=task_id, error=error)
            if task["batch_id"] is not None:
                self._batch_failed(task["batch_id"], device_id, {"reason": error})

    def task_answered(self, task_id: int, answer: Rpc) -> None:
        task = self.store.task(task_id)
        if task is None:
            return
        now = self.now()
        device_id = task["device_id"]
        with self.store.transaction():
            if isinstance(answer, Fault):
                fault = {"code": answer.fault_code, "string": answer.fault_string}
                self.store.update_task(task_id, state="failed", result={"fault": fault})
                self.store.add_event(device_id, now, "rpc-fault", task=task_id, **fault)
                if task["batch_id"] is not None:
                    self._batch_failed(task["batch_id"], device_id, fault)
            elif isinstance(answer, DownloadResponse):
                done = answer.status == 0
                self.store.update_task(task_id, state="done" if done else "transferring",
                                       result={"status": answer.status})
                self.store.add_event(device_id, now, "download-response", task=task_id,
                                     status=answer.status)
                if done and task["batch_id"] is not None:
                    self._batch_installed(task["batch_id"], device_id, now)
            else:
                self.store.update_task(task_id, state="done", result={"answer": answer.TYPE_NAME})
                self.store.add_event(device_id, now, f"{answer.TYPE_NAME}", task=task_id)

    # -- TransferComplete ----------------------------------------------------------------------
    def transfer_complete(self, device_id: str, message: TransferComplete) -> None:
        """Correlate by CommandKey (never by Inform events); unknown keys and repeats are
        acknowledged and logged (fact sheet, design consequence 5)."""
        now = self.now()
        fault = {"code": message.fault_struct.fault_code,
                 "string": message.fault_struct.fault_string}
        task = self.store.task_by_key(message.command_key)
        with self.store.transaction():
            self.store.add_event(device_id, now, "transfer-complete",
                                 command_key=message.command_key, **fault,
                                 start_time=message.start_time.isoformat(),
                                 complete_time=message.complete_time.isoformat())
            if task is None or task["device_id"] != device_id or task["kind"] != "download":
                self.store.add_event(device_id, now, "transfer-complete-unknown-key",
                                     command_key=message.command_key)
            elif task["state"] in ("sent", "transferring", "pending"):
                failed = fault["code"] != 0
                self.store.update_task(task["id"], state="failed" if failed else "done",
                                       result={"transfer_complete": fault})
                if task["batch_id"] is not None:
                    if failed:
                        self._batch_failed(task["batch_id"], device_id, fault)
                    else:
                        self._batch_installed(task["batch_id"], device_id, now)

    # -- batch transitions ---------------------------------------------------------------------
    def _batch_installed(self, batch_id: int, device_id: str, now: float) -> None:
        entry = self.store.batch_device(batch_id, device_id)
        if entry is None or entry["state"] not in IN_PROGRESS:
            return
        check_due = now + self.config.check_delay
        self.store.update_batch_device(batch_id, device_id, state=INSTALLED,
                                       transfer_complete=now, check_due=check_due, updated=now)
        self._arm_check(batch_id, device_id, check_due)

    def _batch_failed(self, batch_id: int, device_id: str, fault: dict[str, Any]) -> None:
        entry = self.store.batch_device(batch_id, device_id)
        if entry is None or entry["state"] not in IN_PROGRESS:
            return
        self._cancel_check(batch_id, device_id)
        self.store.update_batch_device(batch_id, device_id, state=ERROR, check_due=None,
                                       last_fault=fault, updated=self.now())

    def _arm_check(self, batch_id: int, device_id: str, due: float) -> None:
        self._cancel_check(batch_id, device_id)
        delay = max(0.0, due - self.now())
        loop = asyncio.get_running_loop()
        self._checks[(batch_id, device_id)] = loop.call_later(
            delay, self.run_check, batch_id, device_id)

    def _cancel_check(self, batch_id: int, device_id: str) -> None:
        handle = self._checks.pop((batch_id, device_id), None)
        if handle is not None:
            handle.cancel()

    def run_check(self, batch_id: int, device_id: str) -> None:
        """The seed's check: the version on the device is up to date -> ready, else error."""
        self._checks.pop((batch_id, device_id), None)
        entry = self.store.batch_device(batch_id, device_id)
        batch = self.store.batch(batch_id)
        device = self.store.device(device_id)
        if entry is None or batch is None or entry["state"] not in IN_PROGRESS:
            return
        now = self.now()
        version = device["software_version"] if device else None
        with self.store.transaction():
            if version == batch["new_version"]:
                self.store.update_batch_device(batch_id, device_id, state=READY, check_due=None,
                                               updated=now)
            else:
                self.store.update_batch_device(
                    batch_id, device_id, state=ERROR, check_due=None, updated=now,
                    last_fault={"reason": f"version is {version!r}, not {batch['new_version']!r}"})
                for task in self.store.tasks(device_id=device_id):  # no TransferComplete came
                    if task["batch_id"] == batch_id and task["state"] in ("sent", "transferring"):
                        self.store.update_task(task["id"], state="failed",
                                               result={"error": "version check failed"})
            self.store.add_event(device_id, now, "batch-check", batch=batch_id, version=version)

    # -- batches (admin) -----------------------------------------------------------------------
    def create_batch(self, spec: dict[str, Any]) -> int:
        values = self._batch_values(spec, require_all=True)
        values["created"] = self.now()
        with self.store.transaction():
            batch_id = self.store.add_batch(**values)
            self._find_new_devices(batch_id)
        return batch_id

    def update_batch(self, batch_id: int, spec: dict[str, Any]) -> None:
        self._batch(batch_id)
        values = self._batch_values(spec, require_all=False)
        if values:  # an empty PATCH changes nothing
            self.store.update_batch(batch_id, **values)

    def _batch_values(self, spec: dict[str, Any], *, require_all: bool) -> dict[str, Any]:
        required = ("group", "original_version", "file", "new_version")
        if require_all:
            missing = [name for name in required if not spec.get(name)]
            if missing:
                raise AcsError(f"a batch needs {', '.join(missing)}")
        unknown = set(spec) - {*required, "days", "hours", "event", "max_attempts",
                               "max_devices_per_day", "timezone"}
        if unknown:
            raise AcsError(f"unknown batch fields: {', '.join(sorted(unknown))}")
        values: dict[str, Any] = {}
        if "group" in spec:
            if self.store.group(spec["group"]) is None:
                raise NotFound(f"no group {spec['group']!r}")
            values["group_name"] = spec["group"]
        if "file" in spec and self.store.file(spec["file"]) is None:
            raise NotFound(f"no file {spec['file']!r}")
        for name in ("original_version", "file", "new_version"):
            if name in spec:
                values[name] = str(spec[name])
        for name, parse in (("days", parse_days), ("hours", parse_hours)):
            if require_all or name in spec:
                try:
                    values[name] = parse(spec.get(name))
                except ScheduleError as error:
                    raise ScheduleError(f"$.{name}: {error}") from None
        if require_all or "event" in spec:
            event = str(spec.get("event", "Inform")).capitalize()
            if event not in BATCH_EVENTS:
                raise AcsError(f"event must be Boot or Inform, not {spec.get('event')!r}")
            values["event"] = event
        for name, default, low in (("max_attempts", 1, 1), ("max_devices_per_day", 0, 0)):
            if require_all or name in spec:
                number = spec.get(name, default)
                if not isinstance(number, int) or isinstance(number, bool) or number < low:
                    raise AcsError(f"{name} must be an integer >= {low}")
                values[name] = number
        if require_all or "timezone" in spec:
            try:
                values["timezone"] = known_zone(spec.get("timezone"))
            except ScheduleError as error:
                raise ScheduleError(f"$.timezone: {error}") from None
        return values

    def _batch(self, batch_id: int) -> dict[str, Any]:
        batch = self.store.batch(batch_id)
        if batch is None:
            raise NotFound(f"no batch {batch_id}")
        return batch

    def find_new_devices(self, batch_id: int) -> list[str]:
        with self.store.transaction():
            added = self._find_new_devices(batch_id)
        return added

    def _find_new_devices(self, batch_id: int) -> list[str]:
        batch = self._batch(batch_id)
        listed = {entry["device_id"] for entry in self.store.batch_devices(batch_id)}
        added = []
        for device_id in self.store.group_devices(batch["group_name"]):
            device = self.store.device(device_id)
            if (device_id not in listed and device is not None
                    and device["software_version"] == batch["original_version"]):
                self.store.add_batch_device(batch_id, device_id, self.now())
                added.append(device_id)
        return added

    def batch_view(self, batch_id: int) -> dict[str, Any]:
        batch = self._batch(batch_id)
        batch["devices"] = self.store.batch_devices(batch_id)
        return batch

    async def force_upgrade(self, batch_id: int, device_id: str) -> bool:
        """Start now, whatever the window, event, cap and attempts; returns whether the
        Connection Request reached the device (else it upgrades at its next Inform)."""
        batch = self._batch(batch_id)
        if self.store.batch_device(batch_id, device_id) is None:
            raise NotFound(f"device {device_id!r} is not in batch {batch_id}")
        with self.store.transaction():
            self._cancel_open_batch_tasks(batch_id, device_id)
            self.store.update_batch_device(batch_id, device_id, forced=1)
            self._start_batch_download(batch, device_id, self.now())
        return await self.connection_request(device_id)

    def discard_upgrade(self, batch_id: int, device_id: str) -> None:
        self._batch(batch_id)
        if self.store.batch_device(batch_id, device_id) is None:
            raise NotFound(f"device {device_id!r} is not in batch {batch_id}")
        with self.store.transaction():
            self._cancel_open_batch_tasks(batch_id, device_id)
            self._cancel_check(batch_id, device_id)
            self.store.update_batch_device(batch_id, device_id, state=DISCARDED, check_due=None,
                                           updated=self.now())

    def delete_batch(self, batch_id: int) -> None:
        self._batch(batch_id)
        with self.store.transaction():
            for entry in self.store.batch_devices(batch_id):
                self._cancel_open_batch_tasks(batch_id, entry["device_id"])
                self._cancel_check(batch_id, entry["device_id"])
            self.store.delete_batch(batch_id)

    def _cancel_open_batch_tasks(self, batch_id: int, device_id: str) -> None:
        for task in self.store.tasks(device_id=device_id, state="pending"):
            if task["batch_id"] == batch_id:
                self.store.update_task(task["id"], state="cancelled")

    # -- actions outside batches -----------------------------------------------------------
    async def upgrade_devices(self, device_ids: list[str], file_name: str,
                              delay_seconds: int = 0) -> dict[str, bool]:
        """The Devices page's mass "Upgrade" action: a Download of ``file_name`` to each."""
        if self.store.file(file_name) is None:
            raise NotFound(f"no file {file_name!r}")
        self._known_devices(device_ids)
        now = self.now()
        with self.store.transaction():
            for device_id in device_ids:
                self.store.add_task(device_id, "download",
                                    {"file": file_name, "delay_seconds": delay_seconds}, now)
        return await self._connection_requests(device_ids)

    async def reboot(self, device_id: str) -> bool:
        self._known_devices([device_id])
        self.store.add_task(device_id, "reboot", {}, self.now())
        return await self.connection_request(device_id)

    async def _connection_requests(self, device_ids: list[str]) -> dict[str, bool]:
        results = await asyncio.gather(*(self.connection_request(d) for d in device_ids))
        return dict(zip(device_ids, results))

    def _known_devices(self, device_ids: list[str]) -> None:
        unknown = [d for d in device_ids if self.store.device(d) is None]
        if unknown:
            raise NotFound(f"unknown devices: {', '.join(unknown)}")

    def files_for_group(self, group: str | None) -> list[dict[str, Any]]:
        """Files whose OUI/ProductClass (empty = any) fit a device of the group."""
        files = self.store.files()
        if group is None:
            return files
        if self.store.group(group) is None:
            raise NotFound(f"no group {group!r}")
        devices = [self.store.device(d) for d in self.store.group_devices(group)]
        kinds = {(d["oui"], d["product_class"]) for d in devices if d is not None}
        return [f for f in files if any(f["oui"] in ("", None, oui)
                                        and f["product_class"] in ("", None, product_class)
                                        for oui, product_class in kinds)]

    # -- Connection Request (TR-069 §3.2.2) ------------------------------------------------
    async def connection_request(self, device_id: str) -> bool:
        """HTTP GET to the device's ConnectionRequestURL, answering a Digest challenge.
        200/204 = the device will open a session; anything else = offline (it comes later)."""
        device = self.store.device(device_id)
        url = device["connection_request_url"] if device else None
        if not url:
            return False
        if self._http is None:
            self._http = aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True))
        digest = DigestClient(self.config.connection_request_username,
                              self.config.connection_request_password)
        outcome = "failed"
        try:
            async with asyncio.timeout(self.config.connection_request_timeout):
                for _ in range(2):
                    headers = {}
                    if digest.has_challenge:
                        headers["Authorization"] = digest.authorization(
                            "GET", URL(url).raw_path_qs)
                    async with self._http.get(url, headers=headers) as response:
                        await response.read()
                        if response.status in (200, 204):
                            outcome = "accepted"
                            break
                        challenge = response.headers.get("WWW-Authenticate", "")
                        outcome = f"HTTP {response.status}"
                        if response.status != 401 or not digest.accept_challenge(challenge):
                            break
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            outcome = f"unreachable: {type(exc).__name__}"
        self.store.add_event(device_id, self.now(), "connection-request", outcome=outcome)
        return outcome == "accepted"

"""AWS IoT job-execution state machine, shared by the MQTT and HTTPS data planes and by
moto's control plane (through moto_gaps): ONE store, moto's `IoTBackend.job_executions`.

Statuses and transitions follow the AWS IoT developer guide (`jobs-devices`, `jobs-mqtt-api`)
and the `iot-jobs-data` API reference; see shared/protocols/aws-iot-jobs.md §2.4:
  device:  QUEUED -> IN_PROGRESS (start-next or update) -> IN_PROGRESS (progress)
           QUEUED | IN_PROGRESS -> SUCCEEDED | FAILED | REJECTED
  service: IN_PROGRESS -> TIMED_OUT (step timer or job inProgressTimeoutInMinutes),
           QUEUED | IN_PROGRESS(force) -> CANCELED, QUEUED | IN_PROGRESS -> REMOVED
versionNumber starts at 1 and counts device updates ("incremented each time they are updated by a
device"); executionNumber is 1 (no retry configuration yet).

Staged rollout: a job created with `jobExecutionsRolloutConfig.maximumPerMinute` (CreateJob; AWS
allows 1-1000) queues, and so notifies, at most that many things at once, the next ones a minute
later on the harness clock; the job completes only when every thing has had its execution.
`exponentialRate` is not modelled (such a job rolls out at `maximumPerMinute` if given, else all
at once).

moto's HTTP handlers call in here from its server threads while the bridges run on the asyncio
loop: every access happens under `lock`, and `on_change` is called after the lock is released.
"""

from __future__ import annotations

import asyncio
import collections
import itertools
import math
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, Protocol

from moto.iot.models import FakeJob, FakeJobExecution, FakeThingGroup, IoTBackend

from otaharness.protocols.aws_iot_jobs import (
    NEXT_JOB_ID,
    DescribeRequest,
    JobExecutionStatus,
    JobExecutionView,
    JobsRejection,
    RejectedCode,
    StartNextRequest,
    UpdateRequest,
    notify,
    notify_next,
    notify_next_topic,
    notify_topic,
)

Status = JobExecutionStatus


class Clock(Protocol):
    def epoch(self) -> float: ...


class TimerHandle(Protocol):
    def cancel(self) -> None: ...


class Scheduler(Protocol):
    def schedule(self, delay_s: float, fn: Callable[[], None]) -> TimerHandle: ...


class LoopScheduler:
    """Timers on the asyncio loop (virtual time in harness mode), armable from any thread."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop

    def _on_loop(self) -> bool:
        try:
            return asyncio.get_running_loop() is self.loop
        except RuntimeError:
            return False

    def schedule(self, delay_s: float, fn: Callable[[], None]) -> TimerHandle:
        timer = _LoopTimer(self, delay_s, fn)
        self.run_on_loop(timer.arm)
        return timer

    def run_on_loop(self, fn: Callable[[], None]) -> None:
        if self._on_loop():
            fn()
        else:
            self.loop.call_soon_threadsafe(fn)


class _LoopTimer:
    def __init__(self, scheduler: LoopScheduler, delay_s: float, fn: Callable[[], None]) -> None:
        self._scheduler = scheduler
        self._delay_s = delay_s
        self._fn = fn
        self._handle: asyncio.TimerHandle | None = None
        self._cancelled = False

    def arm(self) -> None:
        if not self._cancelled:
            self._handle = self._scheduler.loop.call_later(self._delay_s, self._fn)

    def cancel(self) -> None:
        self._cancelled = True
        self._scheduler.run_on_loop(self._disarm)

    def _disarm(self) -> None:
        if self._handle is not None:
            self._handle.cancel()


class JobExecutionRecord(FakeJobExecution):
    """moto's execution object with the state the data plane needs; moto's control-plane
    responses (describe/list) read it through to_get_dict()/to_dict()."""

    def __init__(
        self, job_id: str, thing_arn: str, thing_name: str, queued_at: int, sequence: int, clock: Clock,
        tally: collections.Counter[str] | None = None,
    ) -> None:
        self._tally: collections.Counter[str] | None = None
        super().__init__(job_id, thing_arn)
        self._tally = tally  # the job's executions per status, kept as each status changes
        if tally is not None:
            tally[self._status] += 1
        self.thing_name = thing_name
        self.sequence = sequence  # creation order: the pending list is FIFO
        self.clock = clock
        # Epoch seconds rather than moto's datetimes: its JSON serialiser sends either as a number.
        self.queued_at: int = queued_at  # type: ignore[assignment]
        self.started_at: int | None = None  # type: ignore[assignment]
        self.last_updated_at: int = queued_at  # type: ignore[assignment]
        self.execution_number = 1
        self.version_number = 1
        self.status_details_map: dict[str, str] = {}
        self.timers: dict[str, tuple[float, TimerHandle]] = {}  # kind -> (deadline, handle)

    @property  # type: ignore[override]
    def status(self) -> str:
        return self._status

    @status.setter
    def status(self, value: str) -> None:
        if self._tally is not None:
            self._tally[self._status] -= 1
            self._tally[value] += 1
        self._status = value

    def leave_tally(self) -> None:
        """The execution is deleted: it no longer counts for its job."""
        if self._tally is not None:
            self._tally[self._status] -= 1
            self._tally = None

    @property
    def execution_status(self) -> Status:
        return Status(self.status)

    @property  # type: ignore[override]
    def approximate_seconds_before_time_out(self) -> int | None:
        if not self.timers:
            return None
        deadline = min(deadline for deadline, _ in self.timers.values())
        return max(0, math.ceil(deadline - self.clock.epoch()))

    @approximate_seconds_before_time_out.setter
    def approximate_seconds_before_time_out(self, _value: int) -> None:
        """moto's constructor assigns a constant 123; the value is derived from the timers."""


class JobsService:
    def __init__(
        self,
        backend: Callable[[], IoTBackend],
        clock: Clock,
        scheduler: Scheduler,
        on_change: Callable[[str], None] | None = None,
    ) -> None:
        self._backend = backend
        self._clock = clock
        self._scheduler = scheduler
        self._on_change = on_change or (lambda thing_name: None)
        self.lock = threading.RLock()
        self._depth = 0
        self._changed: dict[str, None] = {}  # ordered set of thing names
        self._notified: dict[str, tuple[tuple[tuple[str, str], ...], str | None]] = {}
        self._sequence = itertools.count(1)
        self._timers: dict[int, TimerHandle] = {}  # id -> handle: handles need not be hashable
        # Our executions by thing and by job, beside moto's dict keyed by both, so that a device's
        # request and a job's counters cost the same with 10 things as with 10,000. An entry
        # counts only while moto's dict holds that very record (a reset or delete drops it there).
        self._of_thing: dict[str, dict[str, JobExecutionRecord]] = collections.defaultdict(dict)
        self._of_job: dict[str, dict[str, JobExecutionRecord]] = collections.defaultdict(dict)
        self._tallies: dict[str, collections.Counter[str]] = {}  # job id -> executions per status
        self._rollout_waiting: dict[str, int] = {}  # job id -> things not yet queued (staged rollout)

    def set_on_change(self, on_change: Callable[[str], None]) -> None:
        """`on_change(thing_name)`: something that notify/notify-next report may have changed."""
        self._on_change = on_change

    # ---------------------------------------------------------------- plumbing

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """Hold the lock; report changed things once the outermost transaction ends."""
        changed: list[str] = []
        with self.lock:
            self._depth += 1
            try:
                yield
            finally:
                self._depth -= 1
                if self._depth == 0:
                    changed, self._changed = list(self._changed), {}
        for thing_name in changed:
            self._on_change(thing_name)

    def now(self) -> int:
        return int(self._clock.epoch())

    def reset(self) -> None:
        """Forget everything outside moto (timers, notification memory) between scenarios."""
        with self.lock:
            for timer in self._timers.values():
                timer.cancel()
            self._timers.clear()
            self._notified.clear()
            self._changed.clear()
            self._of_thing.clear()
            self._of_job.clear()
            self._tallies.clear()
            self._rollout_waiting.clear()

    def _touch(self, record: JobExecutionRecord) -> None:
        record.last_updated_at = self.now()
        self._changed[record.thing_name] = None

    @staticmethod
    def _current(backend: IoTBackend, records: dict[str, JobExecutionRecord]) -> list[JobExecutionRecord]:
        return [r for r in records.values() if backend.job_executions.get((r.job_id, r.thing_name)) is r]

    def _records_of_thing(self, backend: IoTBackend, thing_name: str) -> list[JobExecutionRecord]:
        return self._current(backend, self._of_thing.get(thing_name, {}))

    def _records_of_job(self, backend: IoTBackend, job_id: str) -> list[JobExecutionRecord]:
        return self._current(backend, self._of_job.get(job_id, {}))

    def _forget(self, record: JobExecutionRecord) -> None:
        """After deleting ``record`` from moto's dict."""
        record.leave_tally()
        self._of_thing.get(record.thing_name, {}).pop(record.job_id, None)
        self._of_job.get(record.job_id, {}).pop(record.thing_name, None)

    def _record(self, backend: IoTBackend, job_id: str, thing_name: str) -> JobExecutionRecord:
        record = backend.job_executions.get((job_id, thing_name))
        if not isinstance(record, JobExecutionRecord):
            raise JobsRejection(
                RejectedCode.RESOURCE_NOT_FOUND,
                f"No job execution of job {job_id!r} for thing {thing_name!r}",
            )
        return record

    def _require_thing(self, backend: IoTBackend, thing_name: str) -> None:
        arn = f"arn:aws:iot:{backend.region_name}:{backend.account_id}:thing/{thing_name}"
        known = (
            arn in backend.things  # moto keys things by ARN: the common case without a scan
            or any(t.thing_name == thing_name for t in backend.things.values())
            or any(name == thing_name for _, name in backend.job_executions)
        )
        if not known:
            raise JobsRejection(RejectedCode.RESOURCE_NOT_FOUND, f"Thing {thing_name!r} not found")

    def _pending(self, backend: IoTBackend, thing_name: str) -> list[JobExecutionRecord]:
        """IN_PROGRESS first, then QUEUED, each in creation order: `$next` is the head."""
        pending = [r for r in self._records_of_thing(backend, thing_name) if not r.execution_status.is_terminal]
        return sorted(pending, key=lambda r: (r.status != Status.IN_PROGRESS, r.sequence))

    def _view(self, backend: IoTBackend, record: JobExecutionRecord) -> JobExecutionView:
        job = backend.jobs.get(record.job_id)
        return JobExecutionView(
            job_id=record.job_id,
            thing_name=record.thing_name,
            status=record.execution_status,
            queued_at=record.queued_at,
            last_updated_at=record.last_updated_at,
            version_number=record.version_number,
            execution_number=record.execution_number,
            status_details=dict(record.status_details_map),
            started_at=record.started_at,
            approximate_seconds_before_timed_out=record.approximate_seconds_before_time_out,
            job_document=job.document if job is not None else None,
        )

    # ---------------------------------------------------------------- timers

    def _arm(self, backend: IoTBackend, record: JobExecutionRecord, kind: str, minutes: int) -> None:
        self._disarm(record, kind)
        delay_s = minutes * 60.0
        handle: TimerHandle | None = None

        def fire() -> None:
            self._time_out(backend, record, kind, handle)

        handle = self._scheduler.schedule(delay_s, fire)
        record.timers[kind] = (self._clock.epoch() + delay_s, handle)
        self._timers[id(handle)] = handle

    def _disarm(self, record: JobExecutionRecord, kind: str | None = None) -> None:
        kinds = list(record.timers) if kind is None else [kind]
        for each in kinds:
            entry = record.timers.pop(each, None)
            if entry is not None:
                entry[1].cancel()
                self._timers.pop(id(entry[1]), None)

    def _time_out(
        self, backend: IoTBackend, record: JobExecutionRecord, kind: str, handle: TimerHandle | None
    ) -> None:
        with self.transaction():
            entry = record.timers.get(kind)
            current = backend.job_executions.get((record.job_id, record.thing_name)) is record
            if entry is None or entry[1] is not handle or not current:
                return  # re-armed, cancelled or deleted meanwhile
            if record.execution_status.is_terminal:
                return
            self._finish(backend, record, Status.TIMED_OUT)

    def _finish(self, backend: IoTBackend, record: JobExecutionRecord, status: Status) -> None:
        record.status = str(status)
        self._disarm(record)
        self._touch(record)
        self._refresh_job(backend, record.job_id)

    def _start(self, backend: IoTBackend, record: JobExecutionRecord) -> None:
        """QUEUED -> IN_PROGRESS; the job's inProgressTimeoutInMinutes starts now."""
        record.status = str(Status.IN_PROGRESS)
        record.started_at = self.now()
        job = backend.jobs.get(record.job_id)
        timeout = (job.timeout_config or {}).get("inProgressTimeoutInMinutes") if job else None
        if timeout:
            self._arm(backend, record, "in-progress", int(timeout))

    # ---------------------------------------------------------------- data plane

    def get_pending(self, thing_name: str) -> tuple[list[JobExecutionView], list[JobExecutionView]]:
        with self.transaction():
            backend = self._backend()
            self._require_thing(backend, thing_name)
            views = [self._view(backend, r) for r in self._pending(backend, thing_name)]
        in_progress = [v for v in views if v.status is Status.IN_PROGRESS]
        return in_progress, [v for v in views if v.status is Status.QUEUED]

    def start_next(self, thing_name: str, request: StartNextRequest) -> JobExecutionView | None:
        with self.transaction():
            backend = self._backend()
            self._require_thing(backend, thing_name)
            pending = self._pending(backend, thing_name)
            if not pending:
                return None
            record = pending[0]
            if record.status == Status.QUEUED:  # an IN_PROGRESS head is returned unchanged
                self._start(backend, record)
                if request.status_details is not None:
                    record.status_details_map = dict(request.status_details)
                if request.step_timeout_minutes is not None:
                    self._arm(backend, record, "step", request.step_timeout_minutes)
                record.version_number += 1
                self._touch(record)
                self._refresh_job(backend, record.job_id)
            return self._view(backend, record)

    def describe(self, thing_name: str, request: DescribeRequest) -> JobExecutionView | None:
        with self.transaction():
            backend = self._backend()
            self._require_thing(backend, thing_name)
            if request.job_id == NEXT_JOB_ID:
                pending = self._pending(backend, thing_name)
                return self._view(backend, pending[0]) if pending else None
            record = self._record(backend, request.job_id, thing_name)
            self._check_execution_number(record, request.execution_number)
            if record.execution_status.is_terminal:
                raise JobsRejection(
                    RejectedCode.TERMINAL_STATE_REACHED,
                    f"Job execution {request.job_id!r} is {record.status}",
                )
            return self._view(backend, record)

    def update(self, thing_name: str, request: UpdateRequest) -> JobExecutionView:
        with self.transaction():
            backend = self._backend()
            self._require_thing(backend, thing_name)
            record = self._record(backend, request.job_id, thing_name)
            self._check_execution_number(record, request.execution_number)
            state = self._view(backend, record).state
            if record.execution_status.is_terminal:
                raise JobsRejection(
                    RejectedCode.INVALID_STATE_TRANSITION,
                    f"Job execution is {record.status}; cannot change it to {request.status}",
                    execution_state=state,
                )
            if request.expected_version is not None and request.expected_version != record.version_number:
                raise JobsRejection(
                    RejectedCode.VERSION_MISMATCH,
                    f"expectedVersion {request.expected_version} but the current version is "
                    f"{record.version_number}",
                    execution_state=state,
                )
            if record.status == Status.QUEUED and request.status is Status.IN_PROGRESS:
                self._start(backend, record)
            if request.status_details is not None:
                record.status_details_map = dict(request.status_details)
            record.version_number += 1
            if request.status.is_terminal:
                self._finish(backend, record, request.status)
            else:
                record.status = str(request.status)
                if request.step_timeout_minutes is not None:
                    if request.step_timeout_minutes < 0:
                        self._disarm(record, "step")
                    else:
                        self._arm(backend, record, "step", request.step_timeout_minutes)
                self._touch(record)
                self._refresh_job(backend, record.job_id)
            return self._view(backend, record)

    @staticmethod
    def _check_execution_number(record: JobExecutionRecord, execution_number: int | None) -> None:
        if execution_number is not None and execution_number != record.execution_number:
            raise JobsRejection(
                RejectedCode.RESOURCE_NOT_FOUND,
                f"No execution number {execution_number} of job {record.job_id!r}",
            )

    # ---------------------------------------------------------------- notifications

    def take_notifications(self, thing_name: str) -> list[tuple[str, dict[str, Any]]]:
        """notify / notify-next messages due since the last call for this thing.

        JobExecutionsChanged when the pending list (job and status) changes; NextJobExecutionChanged
        only when the jobId at its head changes (jobs-comm-notifications)."""
        with self.lock:
            backend = self._backend()
            pending = [self._view(backend, r) for r in self._pending(backend, thing_name)]
            signature = tuple((v.job_id, str(v.status)) for v in pending)
            head = pending[0] if pending else None
            last_signature, last_head = self._notified.get(thing_name, ((), None))
            head_id = head.job_id if head else None
            self._notified[thing_name] = (signature, head_id)
        now = self.now()
        messages: list[tuple[str, dict[str, Any]]] = []
        if signature != last_signature:
            messages.append((notify_topic(thing_name), notify(pending, now)))
        if head_id != last_head:
            messages.append((notify_next_topic(thing_name), notify_next(head, now)))
        return messages

    # ---------------------------------------------------------------- control plane (moto_gaps)

    def _group_and_descendants(self, backend: IoTBackend, group: FakeThingGroup) -> list[FakeThingGroup]:
        found = [group]
        for candidate in backend.thing_groups.values():
            if candidate.parent_group_name == group.thing_group_name:
                found.extend(self._group_and_descendants(backend, candidate))
        return found

    def resolve_targets(self, backend: IoTBackend, targets: list[str]) -> dict[str, str]:
        """Job targets (thing and thing-group ARNs) -> {thing name: thing ARN}; a group stands
        for its member things, including those of its child groups."""
        things: dict[str, str] = {}
        for arn in targets:
            if ":thinggroup/" in arn:
                group = backend.thing_groups.get(arn)
                if group is None:
                    raise JobsRejection(RejectedCode.RESOURCE_NOT_FOUND, f"Thing group {arn} not found")
                for each in self._group_and_descendants(backend, group):
                    for thing in each.things.values():
                        things.setdefault(thing.thing_name, thing.arn)
            else:
                things.setdefault(arn.split(":")[-1].split("/")[-1], arn)
        return things

    def _queue(self, backend: IoTBackend, job_id: str, thing_name: str, thing_arn: str) -> None:
        record = JobExecutionRecord(
            job_id, thing_arn, thing_name, self.now(), next(self._sequence), self._clock,
            self._tallies.setdefault(job_id, collections.Counter()),
        )
        backend.job_executions[(job_id, thing_name)] = record
        self._of_thing[thing_name][job_id] = record
        self._of_job[job_id][thing_name] = record
        self._changed[thing_name] = None

    def queue_job(self, backend: IoTBackend, job: FakeJob, things: dict[str, str]) -> None:
        """After moto stored a new job: one QUEUED execution per target thing."""
        with self.transaction():
            for key in [k for k in backend.job_executions if k[0] == job.job_id]:
                del backend.job_executions[key]  # moto's own, keyed by group names
            # A new job (an id may come again after a reset or a delete): counted from nothing.
            self._tallies[job.job_id] = collections.Counter()
            self._of_job.pop(job.job_id, None)
            job.status = "IN_PROGRESS"  # AWS: a job is IN_PROGRESS from creation
            job.created_at = self.now()  # type: ignore[assignment]  # harness clock, not moto's utcnow
            per_minute = (getattr(job, "job_executions_rollout_config", None) or {}).get("maximumPerMinute")
            self._roll_out(backend, job, list(things.items()), int(per_minute) if per_minute else None)

    def _roll_out(self, backend: IoTBackend, job: FakeJob, waiting: list[tuple[str, str]],
                  per_minute: int | None) -> None:
        """Queue the next `per_minute` things (all without a rate); the rest a minute later."""
        now, later = (waiting, []) if per_minute is None else (waiting[:per_minute], waiting[per_minute:])
        for thing_name, thing_arn in now:
            self._queue(backend, job.job_id, thing_name, thing_arn)
        self._rollout_waiting[job.job_id] = len(later)
        self._refresh_job(backend, job.job_id)
        if not later:
            return
        handle: TimerHandle | None = None

        def next_minute() -> None:
            with self.transaction():
                self._timers.pop(id(handle), None)
                if backend.jobs.get(job.job_id) is not job or job.status != "IN_PROGRESS":
                    self._rollout_waiting.pop(job.job_id, None)  # cancelled or deleted: no more
                    return
                self._roll_out(backend, job, later, per_minute)

        handle = self._scheduler.schedule(60.0, next_minute)
        self._timers[id(handle)] = handle

    def things_joined_group(self, backend: IoTBackend, thing_name: str) -> None:
        """CONTINUOUS jobs reach things added to their target groups later."""
        with self.transaction():
            for job in list(backend.jobs.values()):
                if job.target_selection != "CONTINUOUS" or job.status != "IN_PROGRESS":
                    continue
                if (job.job_id, thing_name) in backend.job_executions:
                    continue
                things = self.resolve_targets(backend, [t for t in job.targets if t in backend.thing_groups])
                if thing_name in things:
                    self._queue(backend, job.job_id, thing_name, things[thing_name])
                    self._refresh_job(backend, job.job_id)

    def things_left_group(self, backend: IoTBackend, thing_name: str) -> None:
        """A thing leaving the groups of a CONTINUOUS job: its pending execution is REMOVED."""
        with self.transaction():
            for job in list(backend.jobs.values()):
                if job.target_selection != "CONTINUOUS":
                    continue
                record = backend.job_executions.get((job.job_id, thing_name))
                if not isinstance(record, JobExecutionRecord) or record.execution_status.is_terminal:
                    continue
                things = self.resolve_targets(backend, [t for t in job.targets if t in backend.thing_groups])
                direct = any(t.endswith(f"/{thing_name}") for t in job.targets if ":thing/" in t)
                if thing_name not in things and not direct:
                    self._finish(backend, record, Status.REMOVED)

    def cancel_job(
        self, backend: IoTBackend, job_id: str, reason_code: str | None, comment: str | None, force: bool
    ) -> FakeJob:
        """CancelJob: QUEUED executions -> CANCELED, IN_PROGRESS ones too with force."""
        with self.transaction():
            job = self._job(backend, job_id)
            if job.status == "COMPLETED":
                raise JobsRejection(RejectedCode.INVALID_STATE_TRANSITION, f"Job {job_id} is COMPLETED")
            job.status = "CANCELED"
            job.reason_code = reason_code if reason_code is not None else job.reason_code
            job.comment = comment if comment is not None else job.comment
            job.force = bool(force) or job.force
            for record in self._records_of_job(backend, job_id):
                if record.status == Status.QUEUED or (record.status == Status.IN_PROGRESS and force):
                    record.force_canceled = record.status == Status.IN_PROGRESS
                    self._finish(backend, record, Status.CANCELED)
            self._refresh_job(backend, job_id)
            return job

    def delete_job(self, backend: IoTBackend, job_id: str, force: bool) -> None:
        """DeleteJob: an IN_PROGRESS job needs force; its executions go with it."""
        with self.transaction():
            job = self._job(backend, job_id)
            if job.status == "IN_PROGRESS" and not force:
                raise JobsRejection(
                    RejectedCode.INVALID_STATE_TRANSITION,
                    f"Job {job_id} is IN_PROGRESS; deleting it needs force",
                )
            for record in self._records_of_job(backend, job_id):
                self._disarm(record)
                del backend.job_executions[(job_id, record.thing_name)]
                self._forget(record)
                self._changed[record.thing_name] = None
            del backend.jobs[job_id]
            self._tallies.pop(job_id, None)
            self._rollout_waiting.pop(job_id, None)

    def cancel_execution(self, backend: IoTBackend, job_id: str, thing_name: str, force: bool) -> None:
        with self.transaction():
            record = self._record(backend, job_id, thing_name)
            if record.execution_status.is_terminal:
                raise JobsRejection(
                    RejectedCode.INVALID_STATE_TRANSITION, f"Job execution is {record.status}"
                )
            if record.status == Status.IN_PROGRESS and not force:
                raise JobsRejection(
                    RejectedCode.INVALID_STATE_TRANSITION,
                    "Job execution is IN_PROGRESS; canceling it needs force",
                )
            record.force_canceled = record.status == Status.IN_PROGRESS
            self._finish(backend, record, Status.CANCELED)

    def delete_execution(
        self, backend: IoTBackend, job_id: str, thing_name: str, execution_number: int, force: bool
    ) -> None:
        """DeleteJobExecution: only terminal executions unless force."""
        with self.transaction():
            record = self._record(backend, job_id, thing_name)
            self._check_execution_number(record, execution_number)
            if not record.execution_status.is_terminal and not force:
                raise JobsRejection(
                    RejectedCode.INVALID_STATE_TRANSITION,
                    f"Job execution is {record.status}; deleting it needs force",
                )
            self._disarm(record)
            del backend.job_executions[(job_id, thing_name)]
            self._forget(record)
            self._changed[thing_name] = None
            self._refresh_job(backend, job_id)

    def _job(self, backend: IoTBackend, job_id: str) -> FakeJob:
        job = backend.jobs.get(job_id)
        if job is None:
            raise JobsRejection(RejectedCode.RESOURCE_NOT_FOUND, f"Job {job_id} not found")
        return job

    def _refresh_job(self, backend: IoTBackend, job_id: str) -> None:
        """jobProcessDetails counters; a SNAPSHOT job COMPLETES when every execution ended."""
        job = backend.jobs.get(job_id)
        if job is None:
            return
        tally = self._tallies.get(job_id, collections.Counter())
        counters = {
            "numberOfQueuedThings": Status.QUEUED,
            "numberOfInProgressThings": Status.IN_PROGRESS,
            "numberOfSucceededThings": Status.SUCCEEDED,
            "numberOfFailedThings": Status.FAILED,
            "numberOfRejectedThings": Status.REJECTED,
            "numberOfCanceledThings": Status.CANCELED,
            "numberOfRemovedThings": Status.REMOVED,
            "numberOfTimedOutThings": Status.TIMED_OUT,
        }
        for name, status in counters.items():
            job.job_process_details[name] = tally[status]
        done = (sum(tally.values()) > 0 and all(Status(s).is_terminal for s, n in tally.items() if n)
                and not self._rollout_waiting.get(job_id))
        if job.status == "IN_PROGRESS" and job.target_selection != "CONTINUOUS" and done:
            job.status = "COMPLETED"
            job.completed_at = self.now()  # type: ignore[assignment]
        job.last_updated_at = self.now()  # type: ignore[assignment]

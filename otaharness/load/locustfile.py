"""The Locust file of ``otaharness load`` (loaded by Locust in the load processes only).

Roles, as Locust runs them:

* a **worker** (or a local run) owns one device host (``host.py``): a child process running the
  worker's devices on an asyncio loop. Each Locust user is a thin handle on one device: its
  ``on_start`` asks the host to start device number ``worker_index * STRIDE + n`` and its
  ``on_stop`` to stop it. Two greenlets carry everything else: one writes commands to the
  host's stdin from a gevent queue, one drains the host's stdout and fires Locust's request
  events (the round trips and each upgrade, whose response time is the time to upgrade) and
  counts outcomes, sent to the master with every stats report (``report_to_master``).
* the **master** adds up the workers' fleet counters (``worker_report``), sends reboot waves to
  the workers (a custom message), notices lost workers, stops the run once every device upgraded
  (``--until-upgraded``), shows a Fleet tab in the web UI and writes ``--fleet-report``.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from collections import Counter
from typing import Any

import gevent
import gevent.lock
import gevent.queue
import gevent.subprocess
import locust.runners
from locust import User, constant, events, task
from locust.runners import (
    STATE_MISSING,
    STATE_RUNNING,
    STATE_SPAWNING,
    LocalRunner,
    MasterRunner,
    WorkerRunner,
)

from otaharness.load.fleet import STRIDE, device_number
from otaharness.load.options import (
    WORKER_OWN_OPTIONS,
    add_load_options,
    host_options,
    missing_options,
)

log = logging.getLogger("otaharness.load")

REBOOT_MESSAGE = "otaharness-reboot-wave"
CANNOT_START_MESSAGE = "otaharness-cannot-start"  # worker -> master: its devices cannot start
CANNOT_START_EXIT = 2  # as a run refused for its options
UPGRADE = "upgrade"  # the request entry whose response time is the time to upgrade
FLEET_LOG_SECONDS = 5.0
HOST_CLOSE_SECONDS = 30.0
# A pipe that always has data never blocks, so a greenlet reading or writing it would never
# switch: the worker's heartbeat greenlet starved behind a flood of device events (issue #20).
LINES_PER_YIELD = 64


@events.init_command_line_parser.add_listener
def _options(parser: Any) -> None:
    add_load_options(parser)


# -- worker side ------------------------------------------------------------------------------


class DeviceHost:
    """The gevent side of a worker's device host: commands out, events in, never blocking."""

    def __init__(self, environment: Any) -> None:
        self.environment = environment
        self.process: gevent.subprocess.Popen | None = None
        self.commands: gevent.queue.Queue = gevent.queue.Queue()
        self.greenlets: list[gevent.Greenlet] = []
        self._opening = gevent.lock.BoundedSemaphore()
        # read now: the master's options replace the worker's own at the first spawn message
        self.own_options = {name: getattr(environment.parsed_options, name, None)
                            for name in WORKER_OWN_OPTIONS}
        self.command_line = host_options(environment.parsed_options)
        self.closing = False
        self.free: list[int] = []  # device slots given back by stopped users, reused first
        self.next_slot = 1
        self.numbers: set[int] = set()
        self.kind = ""
        self.started = 0
        self.succeeded = 0
        self.failed: Counter[str] = Counter()
        self.bytes = 0
        self.connected = 0
        self.in_progress = 0

    @property
    def worker_index(self) -> int:
        return max(0, int(getattr(self.environment.runner, "worker_index", 0) or 0))

    def open(self) -> None:
        with self._opening:  # Popen yields to other users' greenlets: one host only
            if self.process is None:
                self._open()

    def _open(self) -> None:
        options = self.environment.parsed_options
        if isinstance(self.environment.runner, WorkerRunner):
            self._warn_of_replaced_options()
        self.kind = options.kind
        settings = {"kind": self.kind, "worker_index": self.worker_index,
                    "options": host_options(options, self.own_options)}
        self.process = gevent.subprocess.Popen(
            [sys.executable, "-m", "otaharness.load.host"],
            stdin=gevent.subprocess.PIPE, stdout=gevent.subprocess.PIPE, bufsize=0)
        # the first line, not an argument: every user's process list shows arguments (tokens)
        self.process.stdin.write(json.dumps(settings).encode() + b"\n")
        self.greenlets = [gevent.spawn(self._write), gevent.spawn(self._drain)]
        log.info("worker %d: device host pid %d for %s devices", self.worker_index,
                 self.process.pid, self.kind)

    def _warn_of_replaced_options(self) -> None:
        """Fleet options given to a worker are silently replaced by the master's (Locust copies
        them with each spawn message): say which, by name only (values may be tokens)."""
        import argparse

        parser = argparse.ArgumentParser()
        add_load_options(parser)
        defaults = vars(parser.parse_args([]))
        master = host_options(self.environment.parsed_options)
        replaced = sorted("--" + name.replace("_", "-") for name, value in self.command_line.items()
                          if name not in WORKER_OWN_OPTIONS and value != defaults.get(name)
                          and value != master.get(name))
        if replaced:
            log.warning("worker %d: %s given here replaced by the master's: fleet options go to "
                        "the master (only --cr-host is each worker's own)", self.worker_index,
                        ", ".join(replaced))

    def add_device(self) -> int:
        self.open()
        slot = min(self.free) if self.free else self.next_slot
        if self.free:
            self.free.remove(slot)
        else:
            self.next_slot += 1
        number = device_number(self.worker_index, slot)
        self.numbers.add(number)
        self.commands.put({"add": number})
        return number

    def remove_device(self, number: int) -> None:
        if number in self.numbers:
            self.numbers.discard(number)
            self.free.append(number % STRIDE)
            self.commands.put({"remove": number})

    def reboot_wave(self, wave: int, percent: float) -> None:
        """Reboot every k-th device (k = 100 / percent), a different slice each wave."""
        period = max(1, round(100 / percent))
        chosen = sorted(n for n in self.numbers if n % period == wave % period)
        if chosen:
            log.info("worker %d: reboot wave %d, %d devices", self.worker_index, wave,
                     len(chosen))
            self.commands.put({"reboot": chosen})

    def _write(self) -> None:
        assert self.process is not None and self.process.stdin is not None
        written = 0
        while True:
            command = self.commands.get()
            written += 1
            if written % LINES_PER_YIELD == 0:
                gevent.sleep(0)
            try:
                self.process.stdin.write(json.dumps(command).encode() + b"\n")
            except (BrokenPipeError, OSError):
                return
            if command.get("close"):
                self.process.stdin.close()
                return

    def _drain(self) -> None:
        assert self.process is not None and self.process.stdout is not None
        fire = self.environment.events.request.fire
        for read, line in enumerate(self.process.stdout, 1):
            if read % LINES_PER_YIELD == 0:
                gevent.sleep(0)
            record = json.loads(line)
            if "r" in record:
                request_type, name, elapsed, length, error, device = record["r"]
                fire(request_type=self.kind, name=f"{request_type} {name}",
                     response_time=elapsed, response_length=length,
                     exception=DeviceFailure(device, error) if error else None,
                     context={"device": device})
            elif "o" in record:
                device, ok, reason, elapsed, length = record["o"]
                if ok:
                    self.succeeded += 1
                else:
                    self.failed[reason] += 1
                self.bytes += length
                fire(request_type=self.kind, name=UPGRADE, response_time=elapsed,
                     response_length=length,
                     exception=None if ok else DeviceFailure(device, reason),
                     context={"device": device})
            elif "s" in record:
                self.started += 1
            elif "g" in record:
                self.connected = record["g"]["connected"]
                self.in_progress = record["g"]["in_progress"]
            elif "n" in record:
                log.info("worker %d host: %s", self.worker_index, record["n"])
            elif "x" in record:
                gevent.spawn(self._cannot_start, record["x"])
        code = self.process.wait()
        if code not in (0, None) and not self.closing:
            log.error("worker %d: device host ended with status %s", self.worker_index, code)

    def _cannot_start(self, reason: str) -> None:
        """The host could not open (a missing key file, a CA that does not load, ...): every
        device would fail alike, so the run ends with that reason rather than run idle."""
        log.error("worker %d: the %s devices cannot start: %s", self.worker_index, self.kind,
                  reason)
        environment = self.environment
        environment.process_exit_code = CANNOT_START_EXIT
        if isinstance(environment.runner, WorkerRunner):
            environment.runner.send_message(CANNOT_START_MESSAGE, {
                "worker_index": self.worker_index, "kind": self.kind, "reason": reason})
        _end_run(environment)

    def report(self) -> dict[str, Any]:
        """Counters since the last report, and the gauges now (then the counters restart)."""
        data = {"kind": self.kind, "worker_index": self.worker_index,
                "started": self.started, "succeeded": self.succeeded,
                "failed": dict(self.failed), "bytes": self.bytes,
                # the host's last gauges, bounded by the devices this worker still has
                "connected": min(self.connected, len(self.numbers)),
                "in_progress": min(self.in_progress, len(self.numbers)),
                "devices": len(self.numbers),
                # distinct device identifiers this worker ever started (slots are reused first)
                "identities": self.next_slot - 1}
        self.started = self.succeeded = self.bytes = 0
        self.failed = Counter()
        return data

    def close(self) -> None:
        """Stop every device and wait for the host to exit (it is killed if it hangs)."""
        if self.process is None:
            return
        self.closing = True
        self.commands.put({"close": True})
        try:
            self.process.wait(timeout=HOST_CLOSE_SECONDS)
        except gevent.subprocess.TimeoutExpired:
            log.error("worker %d: device host did not stop in %.0f s; killed", self.worker_index,
                      HOST_CLOSE_SECONDS)
            self.process.kill()
            self.process.wait()
        gevent.joinall(self.greenlets, timeout=5)
        self.process = None


class DeviceFailure(Exception):
    """A failed round trip or upgrade, naming the device (Locust's failures table shows it)."""

    def __init__(self, device: str, reason: str) -> None:
        super().__init__(f"{device}: {reason}")


# -- master side ------------------------------------------------------------------------------


class FleetTotals:
    """The fleet across workers: counters summed, gauges per worker, lost workers kept."""

    def __init__(self) -> None:
        self.kind = ""
        self.started = 0
        self.succeeded = 0
        self.failed: Counter[str] = Counter()
        self.bytes = 0
        self.gauges: dict[str, dict[str, int]] = {}
        self.lost: list[dict[str, Any]] = []
        self.returned: list[dict[str, Any]] = []
        self.reboot_waves = 0
        self.fleet_asked = 0  # the most users the run asked for at once
        self.identities: dict[str, int] = {}  # per worker: device identifiers it ever started

    def add(self, client_id: str, data: dict[str, Any]) -> None:
        self.kind = data["kind"] or self.kind
        self.started += data["started"]
        self.succeeded += data["succeeded"]
        self.failed.update(data["failed"])
        self.bytes += data["bytes"]
        self.identities[client_id] = max(self.identities.get(client_id, 0),
                                         data.get("identities", 0))
        if client_id not in {lost["worker"] for lost in self.lost}:
            before = self.gauges.get(client_id, {})
            self.gauges[client_id] = {
                **{key: data[key] for key in
                   ("worker_index", "connected", "in_progress", "devices")},
                "most_devices": max(data["devices"], before.get("most_devices", 0))}

    def worker_lost(self, client_id: str, index: int, quit: bool = False) -> dict[str, Any]:
        """A worker gone missing (no heartbeat) or ``quit`` (it stopped: SIGTERM or Ctrl-C on
        its host): its devices no longer count."""
        last = self.gauges.pop(client_id, {"connected": 0, "in_progress": 0, "devices": 0})
        self.gauges[client_id + " (lost)"] = {"worker_index": index, "connected": 0,
                                              "in_progress": 0, "devices": 0,
                                              "most_devices": last.get("most_devices", 0)}
        lost = {"worker": client_id, "worker_index": index, "devices": last["devices"],
                "connected": last["connected"], "in_progress": last["in_progress"],
                "quit": quit}
        self.lost.append(lost)
        return lost

    def worker_returned(self, client_id: str) -> dict[str, Any]:
        """A worker marked missing answered again (it was starved, not dead): its gauges count
        again; Locust gives it users anew."""
        lost = next(lost for lost in self.lost if lost["worker"] == client_id)
        self.lost.remove(lost)
        self.gauges.pop(client_id + " (lost)", None)
        self.returned.append(lost)
        return lost

    def identities_beyond_fleet(self) -> int:
        """Devices started with new identifiers beyond the fleet asked for: Locust re-spawns a
        missing worker's users on the others, as new devices (an identifier belongs to the
        worker that started it, whose host may still run it), so a back end that registers
        devices (things, stations, CPEs) then holds more than the fleet."""
        return max(0, sum(self.identities.values()) - self.fleet_asked)

    def summary(self, environment: Any) -> dict[str, Any]:
        stats = environment.runner.stats
        upgrade = stats.entries.get((UPGRADE, self.kind))
        percentiles = {}
        if upgrade is not None and upgrade.num_requests:
            percentiles = {f"p{int(q * 100)}_ms": upgrade.get_response_time_percentile(q)
                           for q in (0.5, 0.95, 0.99)}
        requests = {f"{entry.method} {entry.name}": {
            "requests": entry.num_requests, "failures": entry.num_failures,
            "per_second": round(entry.current_rps, 2), "bytes": entry.total_content_length}
            for entry in stats.entries.values()}
        return {
            "kind": self.kind,
            "devices": sum(g["devices"] for g in self.gauges.values()),
            "most_devices": sum(g["most_devices"] for g in self.gauges.values()),
            "connected": sum(g["connected"] for g in self.gauges.values()),
            "in_progress": sum(g["in_progress"] for g in self.gauges.values()),
            "started": self.started,
            "succeeded": self.succeeded,
            "failed": dict(self.failed),
            "bytes_downloaded": self.bytes,
            "time_to_upgrade": percentiles,
            "requests": requests,
            "workers": {client_id: gauges for client_id, gauges in self.gauges.items()},
            "lost_workers": self.lost,
            "returned_workers": self.returned,
            "fleet_asked": self.fleet_asked,
            "identities": sum(self.identities.values()),
            "identities_beyond_fleet": self.identities_beyond_fleet(),
            "reboot_waves": self.reboot_waves,
        }

    def line(self, environment: Any) -> str:
        s = self.summary(environment)
        timing = ", ".join(f"{k[:-3]} {v / 1000:.1f} s" for k, v in s["time_to_upgrade"].items())
        failed = sum(s["failed"].values())
        return (f"fleet {s['kind']}: {s['devices']} devices (at most {s['most_devices']}), "
                f"{s['connected']} connected, "
                f"{s['in_progress']} upgrading, {s['succeeded']} upgraded, {failed} failed"
                + (f" ({timing})" if timing else "")
                + (f", {len(s['lost_workers'])} worker(s) lost" if s["lost_workers"] else "")
                + (f", {len(s['returned_workers'])} worker(s) back after going missing"
                   if s["returned_workers"] else "")
                + (f"; {s['identities_beyond_fleet']} devices started with new identifiers "
                   f"beyond the fleet of {s['fleet_asked']} (users re-spawned after a worker "
                   f"went missing or quit)" if s["identities_beyond_fleet"] else ""))


# -- users ------------------------------------------------------------------------------------


class Device(User):
    """One emulated device of the run's kind (the user is only its handle: the device lives in
    the worker's device host)."""

    wait_time = constant(1)
    number = 0

    def on_start(self) -> None:
        self.number = HOST.add_device()

    def on_stop(self) -> None:
        HOST.remove_device(self.number)

    @task
    def live(self) -> None:
        """Nothing to do: the device runs by itself; its round trips arrive as events."""


HOST: DeviceHost
TOTALS = FleetTotals()


@events.init.add_listener
def _init(environment: Any, **_: Any) -> None:
    global HOST
    runner = environment.runner
    missing = missing_options(environment.parsed_options)
    if missing and not isinstance(runner, WorkerRunner):  # workers get them from the master
        # one plain line, as the command line refuses a bad option (not through Locust's logger:
        # its time stamp made this read like a run's event); Locust has logged its start before
        # this first hook after its parse
        print(f"otaharness load {environment.parsed_options.kind} needs {' and '.join(missing)}",
              file=sys.stderr, flush=True)
        sys.exit(2)
    if isinstance(runner, (WorkerRunner, LocalRunner)):
        HOST = DeviceHost(environment)
        runner.register_message(REBOOT_MESSAGE, lambda environment, msg, **kw: HOST.reboot_wave(
            msg.data["wave"], msg.data["percent"]))
    if isinstance(runner, WorkerRunner):
        events.report_to_master.add_listener(
            lambda client_id, data: data.__setitem__("otaharness", HOST.report()))
    if isinstance(runner, (MasterRunner, LocalRunner)):
        events.worker_report.add_listener(
            lambda client_id, data: "otaharness" in data and TOTALS.add(client_id,
                                                                        data["otaharness"]))
        if isinstance(runner, MasterRunner):
            runner.register_message(CANNOT_START_MESSAGE, _worker_cannot_start)
            # read by Locust each time a worker connects or answers (module global, not option)
            liveness = environment.parsed_options.heartbeat_liveness
            locust.runners.HEARTBEAT_LIVENESS = max(1, liveness)
        gevent.spawn(_watch, environment)
        if environment.web_ui is not None:
            _extend_web_ui(environment)


def _end_run(environment: Any) -> None:
    """Stop the run; headless (and on workers) quit, as Locust's --run-time does."""
    options = environment.parsed_options
    if isinstance(environment.runner, WorkerRunner) or options.headless:
        environment.runner.quit()
    else:  # the web UI stays up to show what happened
        environment.runner.stop()


def _worker_cannot_start(environment: Any, msg: Any, **_: Any) -> None:
    log.error("worker %d: the %s devices cannot start: %s; stopping the run",
              msg.data["worker_index"], msg.data["kind"], msg.data["reason"])
    environment.process_exit_code = CANNOT_START_EXIT
    gevent.spawn(_end_run, environment)  # not in the master's message greenlet, which quit kills


@events.quitting.add_listener
def _quitting(environment: Any, **_: Any) -> None:
    runner = environment.runner
    if isinstance(runner, (WorkerRunner, LocalRunner)):
        HOST.close()
    if isinstance(runner, LocalRunner):
        TOTALS.add("local", HOST.report())  # what arrived while the host closed
    if isinstance(runner, (MasterRunner, LocalRunner)):
        # _watch samples it once a second: a run ending sooner would count every device as
        # started beyond a fleet of 0
        TOTALS.fleet_asked = max(TOTALS.fleet_asked, runner.target_user_count or 0)
        print(TOTALS.line(environment), flush=True)
        path = environment.parsed_options.fleet_report
        if path:
            with open(path, "w", encoding="utf-8") as report:
                json.dump(TOTALS.summary(environment), report, indent=2)


def _watch(environment: Any) -> None:
    """The master's (or local run's) loop: gauges of a local run, lost workers, reboot waves,
    the end of an --until-upgraded run, a fleet line now and then."""
    runner, options = environment.runner, environment.parsed_options
    started = time.monotonic()
    last_line = last_wave = started
    beyond_told = 0
    while True:
        gevent.sleep(1.0)
        now = time.monotonic()
        TOTALS.fleet_asked = max(TOTALS.fleet_asked, runner.target_user_count or 0)
        if isinstance(runner, LocalRunner):
            TOTALS.add("local", HOST.report())
        else:
            for client in list(runner.clients.values()):
                if client.state == STATE_MISSING and client.id not in {
                        lost["worker"] for lost in TOTALS.lost}:
                    lost = TOTALS.worker_lost(client.id, runner.get_worker_index(client.id))
                    log.warning("worker %s (index %d) lost: its %d devices (%d connected, %d "
                                "upgrading) are gone; the run goes on with %d worker(s)",
                                client.id, lost["worker_index"], lost["devices"],
                                lost["connected"], lost["in_progress"], runner.worker_count)
                elif client.state != STATE_MISSING and client.id in {
                        lost["worker"] for lost in TOTALS.lost}:
                    back = TOTALS.worker_returned(client.id)
                    log.warning("worker %s (index %d) answered again after going missing "
                                "(starved, not dead; --heartbeat-liveness is %d s): Locust "
                                "gives it users anew", client.id, back["worker_index"],
                                locust.runners.HEARTBEAT_LIVENESS)
            if runner.state in (STATE_SPAWNING, STATE_RUNNING):
                # a worker that quit mid-run (Locust drops it at once): its last gauges would
                # count its stopped devices to the end (at the run's end Locust stops first)
                for client_id in [client_id for client_id in TOTALS.gauges
                                  if client_id not in runner.clients
                                  and not client_id.endswith(" (lost)")]:
                    lost = TOTALS.worker_lost(client_id, TOTALS.gauges[client_id]["worker_index"],
                                              quit=True)
                    log.warning("worker %s (index %d) quit mid-run: its %d devices stopped with "
                                "it; the run goes on with %d worker(s)", client_id,
                                lost["worker_index"], lost["devices"], runner.worker_count)
        beyond = TOTALS.identities_beyond_fleet()
        if beyond > beyond_told:
            beyond_told = beyond
            log.warning("%d devices started with new identifiers beyond the fleet of %d: Locust "
                        "re-spawned the users of a missing or stopped worker on the others; a "
                        "back end that registers devices now holds more than the fleet", beyond,
                        TOTALS.fleet_asked)
        if options.reboot_wave_every and runner.state == STATE_RUNNING and (
                now - last_wave >= options.reboot_wave_every):
            last_wave = now
            TOTALS.reboot_waves += 1
            runner.send_message(REBOOT_MESSAGE, {"wave": TOTALS.reboot_waves,
                                                 "percent": options.reboot_wave_share})
            log.info("reboot wave %d: %g%% of the fleet", TOTALS.reboot_waves,
                     options.reboot_wave_share)
        TOTALS.kind = TOTALS.kind or options.kind  # before any worker reported: not "fleet :"
        if now - last_line >= FLEET_LOG_SECONDS:
            last_line = now
            log.info(TOTALS.line(environment))
        target = runner.target_user_count or 0
        ended = TOTALS.succeeded + sum(TOTALS.failed.values())
        if (options.until_upgraded and runner.state == STATE_RUNNING and target
                and ended >= target and not TOTALS.summary(environment)["in_progress"]):
            log.info("every device's upgrade ended (%d upgraded, %d failed): stopping",
                     TOTALS.succeeded, ended - TOTALS.succeeded)
            runner.quit()
            return


def _extend_web_ui(environment: Any) -> None:
    """A Fleet tab: per worker and for the whole fleet, devices, outcomes, time to upgrade."""
    from flask import request

    web_ui = environment.web_ui
    columns = [("scope", "Scope"), ("devices", "Devices"), ("connected", "Connected"),
               ("in_progress", "Upgrading"), ("succeeded", "Upgraded"), ("failed", "Failed"),
               ("p50", "Upgrade p50 (s)"), ("p95", "p95 (s)"), ("p99", "p99 (s)"),
               ("bytes", "Bytes downloaded")]
    web_ui.template_args["extended_tabs"] = [{"title": "Fleet", "key": "fleet"},
                                            {"title": "Upgrade failures", "key": "reasons"}]
    web_ui.template_args["extended_tables"] = [
        {"key": "fleet", "structure": [{"key": k, "title": t} for k, t in columns]},
        {"key": "reasons", "structure": [{"key": "reason", "title": "Reason"},
                                         {"key": "count", "title": "Devices"}]}]

    def rows() -> list[dict[str, Any]]:
        s = TOTALS.summary(environment)
        timing = {k[:3]: round(v / 1000, 2) for k, v in s["time_to_upgrade"].items()} or {
            "p50": "—", "p95": "—", "p99": "—"}  # no upgrade ended yet: no figure, not 0
        fleet = [{"scope": f"all ({s['kind']})", "devices": s["devices"],
                  "connected": s["connected"], "in_progress": s["in_progress"],
                  "succeeded": s["succeeded"], "failed": sum(s["failed"].values()),
                  "bytes": s["bytes_downloaded"], **timing}]
        for client_id, gauges in sorted(s["workers"].items(), key=lambda i: i[1]["worker_index"]):
            lost = " (lost)" if client_id.endswith(" (lost)") else ""
            fleet.append({"scope": f"worker {gauges['worker_index']}{lost}", **gauges})
        return fleet

    @web_ui.app.after_request
    def _fleet_stats(response: Any) -> Any:
        if request.path != "/stats/requests" or not response.is_json:
            return response
        reasons = [{"reason": r, "count": n} for r, n in TOTALS.failed.most_common(500)]
        response.set_data(json.dumps({**response.json, "extended_stats": [
            {"key": "fleet", "data": rows()}, {"key": "reasons", "data": reasons}]}))
        return response


if os.environ.get("OTAHARNESS_LOAD_SHAPE"):
    from otaharness.load.shapes import StagesShape  # noqa: F401  (Locust picks it up)

"""What an emulated fleet does, told to people and to programs, the same way for every kind that
``otaharness emulate`` runs.

Each kind's CLI turns what its devices do into events of one vocabulary (``EVENTS``: a CPE's
Inform and a tracker's MQTT CONNACK are both ``connected``...), and :class:`FleetReport` keeps
each device's state from them. It then

* with ``-v``, writes one readable line per event (time, device, what happened);
* with ``--json``, streams each event as a JSON line on stdout, its ``time`` in ISO 8601 (UTC,
  milliseconds), then the summary as a last line with ``"event": "summary"``;
* on a terminal, shows the devices by state live (rich), and stops doing so when it closes;
* when it closes (the run's end, Ctrl-C or SIGTERM alike), prints the summary: devices by
  state, failures by reason, times to connect and to upgrade (p50 / p95 / max), faults struck.
"""

from __future__ import annotations

import collections
import json
import math
import re
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TextIO

# Event names shared by every kind, with what they mean.
EVENTS: dict[str, str] = {
    "started": "switched on for the first time",
    "connected": "its server answered (MQTT CONNACK, CWMP session, CUPS answer, LNS router_config)",
    "disconnected": "its connection was lost",
    "connection_failed": "it could not reach its server (the reason in detail)",
    "session_started": "a management session began (CWMP Inform with its events, CUPS check)",
    "download_started": "an image download began",
    "download_progress": "a quarter more of the image arrived (or twice the bytes, size unknown)",
    "download_resumed": "a broken download went on from where it stopped",
    "download_complete": "the whole image arrived",
    "upgraded": "it runs the new version",
    "upgrade_failed": "the upgrade failed (the reason in detail)",
    "fault_armed": "a --fault waits for this device",
    "link_fault": "its link did what the fault says (cut, refused)",
    "power_cut": "it lost power",
    "rebooting": "it restarts in an orderly way (after an upgrade, or when asked)",
    "booted": "it booted again",
    "joined": "a LoRaWAN device joined its network",
    "uplink": "a LoRaWAN device sent a frame",
    "downlink": "a LoRaWAN device received a frame",
    "stopped": "it was switched off at the end of the run (its state stays the one it ended in)",
    "note": "anything else the device tells, in its own words",
}

# Device states, in the order the summary and the live display list them.
STATES = ("starting", "connected", "downloading", "installing", "upgraded", "failed", "offline",
          "powered off")

# Bytes of a download of unknown size at which progress is told: 16 KiB, 32 KiB, 64 KiB, ...
_FIRST_UNSIZED_MILESTONE = 16 * 1024


def iso_time(epoch: float) -> str:
    """ISO 8601 in UTC with milliseconds: ``2026-12-03T23:12:01.123Z``."""
    stamp = datetime.fromtimestamp(epoch, UTC).isoformat(timespec="milliseconds")
    return stamp.replace("+00:00", "Z")


def percentiles(values: list[float]) -> dict[str, float | int]:
    """count, p50, p95 and max (nearest rank) of ``values``, rounded to milliseconds."""
    if not values:
        return {"count": 0}
    ordered = sorted(values)

    def rank(share: float) -> float:
        return ordered[max(0, math.ceil(share * len(ordered)) - 1)]

    return {"count": len(ordered), "p50": round(rank(0.50), 3), "p95": round(rank(0.95), 3),
            "max": round(ordered[-1], 3)}


@dataclass
class DeviceRecord:
    """One device's state and the times its durations come from."""

    state: str = "starting"
    outcome: str | None = None  # "upgraded" or "failed": kept through reconnects and reboots
    started: float | None = None  # when the fleet added it; None if it appeared by an event
    connected: float | None = None
    download_started: float | None = None
    upgraded: float | None = None
    download_total: int | None = None
    next_milestone: int = 0
    events: collections.Counter[str] = field(default_factory=collections.Counter)


def _as_tuple(address: str) -> str:
    """host:port as Python shows a socket address: ('host', port)."""
    host, _, port = address.rpartition(":")
    return f"({host.strip('[]')!r}, {port})"


class FleetReport:
    """Events in, device states, log lines, JSON lines, a live display and a summary out.

    ``human`` takes the readable lines and the summary (default: stderr with ``--json``, else
    stdout); ``json_out`` the JSON lines; ``live`` None shows the live display when ``human`` is
    a terminal. ``clock`` gives wall-clock seconds (events are stamped with it).
    """

    def __init__(self, kind: str, *, verbose: bool = False, json_out: TextIO | None = None,
                 human: TextIO | None = None, live: bool | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.kind = kind
        self.verbose = verbose
        self.json_out = json_out
        self.human = human or (sys.stderr if json_out is not None else sys.stdout)
        self.clock = clock
        self.devices: dict[str, DeviceRecord] = {}
        self.failures: collections.Counter[str] = collections.Counter()
        self.totals: dict[str, Any] = {}  # kind-specific counts added to the summary
        self.faults: dict[str, Any] = {}  # what the fleet's faults were and how often they struck
        self._began = clock()
        self._closed = False
        self._live: Any = None
        self._console: Any = None
        self._want_live = live
        self._endpoint_of: dict[str, str] = {}  # a local proxy's host:port -> the endpoint's
        self._proxy_address: re.Pattern[str] | None = None

    def name_proxy(self, proxy: str, endpoint: str) -> None:
        """Say ``endpoint`` (host:port, as the command line named it) wherever a device's error
        names the local proxy in front of it (``proxy``, host:port): a TLS or connection error
        showed the proxy's port, one the user never typed."""
        self._endpoint_of[proxy] = endpoint
        # asyncio's "Connect call failed" names it as a tuple: ('127.0.0.1', 41234)
        self._endpoint_of[_as_tuple(proxy)] = _as_tuple(endpoint)
        self._proxy_address = re.compile(
            "|".join(rf"(?<![\w.]){re.escape(address)}(?!\d)" for address in self._endpoint_of))

    def _named(self, text: str) -> str:
        if self._proxy_address is None:
            return text
        return self._proxy_address.sub(lambda found: self._endpoint_of[found[0]], text)

    # -- devices and events ----------------------------------------------------------------------

    def add(self, device: str) -> None:
        """A device starting now: its time to connect counts from here."""
        record = self.devices.setdefault(device, DeviceRecord())
        if record.started is None and not record.events:
            record.started = self.clock()

    def _record(self, device: str) -> DeviceRecord:
        # a device first seen by an event has no start time (its time to connect is unknown,
        # not 0: a figure made of such devices would read "p50 -0.000 s")
        return self.devices.setdefault(device, DeviceRecord())

    def event(self, device: str, event: str, detail: str = "", **fields: Any) -> None:
        """``device`` did ``event`` (a name of ``EVENTS``); ``detail`` says it in words,
        ``fields`` carry values for programs (bytes, version, reason...)."""
        if event not in EVENTS:
            raise ValueError(f"unknown fleet event {event!r}; known: {', '.join(EVENTS)}")
        if self._proxy_address is not None:
            detail = self._named(detail)
            fields = {key: self._named(value) if isinstance(value, str) else value
                      for key, value in fields.items()}
        now = self.clock()
        record = self._record(device)
        record.events[event] += 1
        self._advance(record, event, now, fields)
        if event in ("upgrade_failed", "connection_failed"):
            self.failures[_reason(fields.get("reason") or detail)] += 1
        if self.verbose:
            self._say(f"{_clock_text(now)} {device:<16} {event.replace('_', ' ')}"
                      + (f": {detail}" if detail else ""))
        if self.json_out is not None:
            line = {"time": iso_time(now), "kind": self.kind, "device": device, "event": event,
                    "state": record.state, **({"detail": detail} if detail else {}), **fields}
            self.json_out.write(json.dumps(line, default=str) + "\n")
            self.json_out.flush()

    def progress(self, device: str, received: int, total: int | None = None) -> None:
        """Download progress: told at each quarter of ``total``, or at 16 KiB, 32 KiB, 64 KiB...
        when the size is unknown; the first call of a download tells ``download_started``."""
        record = self._record(device)
        if record.state not in ("downloading", "installing") or record.download_total != total:
            record.download_total = total
            record.next_milestone = (total + 3) // 4 if total else _FIRST_UNSIZED_MILESTONE
            self.event(device, "download_started",
                       f"{_size(total)} image" if total else "", **({"size": total} if total else {}))
        if total:
            while record.next_milestone < total and received >= record.next_milestone:
                percent = 100 * record.next_milestone // total
                self.event(device, "download_progress", f"{percent}% ({_size(received)} of "
                           f"{_size(total)})", bytes=received, size=total, percent=percent)
                record.next_milestone += (total + 3) // 4
            if received >= total and record.state == "downloading":
                self.event(device, "download_complete", f"{_size(total)}", bytes=received)
        else:
            while received >= record.next_milestone:
                self.event(device, "download_progress", f"{_size(received)} so far", bytes=received)
                record.next_milestone *= 2

    def _advance(self, record: DeviceRecord, event: str, now: float, fields: dict[str, Any]) -> None:
        if event == "started" and record.started is None:
            record.started = now
        elif event == "upgraded":
            record.outcome = record.state = "upgraded"
            record.upgraded = now
        elif event == "upgrade_failed":
            record.outcome = record.state = "failed"
        elif event in ("download_started", "download_progress", "download_resumed"):
            if record.state != "downloading" and event == "download_started":
                record.download_started = record.download_started or now
                record.outcome = None
            record.state = "downloading"
        elif event == "download_complete":
            record.state = "installing"
        elif event == "power_cut":
            record.state = "powered off"
        elif event == "booted":
            record.state = record.outcome or "starting"
        elif event in ("connected", "joined"):
            record.connected = record.connected or now
            if record.state not in ("downloading", "installing"):
                record.state = record.outcome or "connected"
        elif event in ("disconnected", "connection_failed") and record.state != "powered off":
            record.state = record.outcome or "offline"

    # -- what the fleet looks like -----------------------------------------------------------------

    def states(self) -> dict[str, int]:
        counts = collections.Counter(record.state for record in self.devices.values())
        return {state: counts[state] for state in sorted(counts, key=_state_order)}

    def summary(self) -> dict[str, Any]:
        connect = [r.connected - r.started for r in self.devices.values()
                   if r.connected is not None and r.started is not None
                   and r.connected >= r.started]
        upgrade = [r.upgraded - r.download_started for r in self.devices.values()
                   if r.upgraded and r.download_started and r.upgraded >= r.download_started]
        return {"time": iso_time(self.clock()), "kind": self.kind, "event": "summary",
                "seconds": round(self.clock() - self._began, 3), "devices": len(self.devices),
                "states": self.states(), "failures": dict(self.failures.most_common()),
                "durations": {"connect": percentiles(connect), "upgrade": percentiles(upgrade)},
                **({"faults": self.faults} if self.faults else {}),
                **({"totals": self.totals} if self.totals else {})}

    # -- output ----------------------------------------------------------------------------------

    def start(self) -> None:
        """Show the live display, on a terminal only (or when asked with ``live=True``)."""
        from rich.console import Console
        from rich.live import Live

        self._console = Console(file=self.human, highlight=False, soft_wrap=True)
        live = self._want_live if self._want_live is not None else self._console.is_terminal
        if live:
            self._live = Live(get_renderable=self._render, console=self._console,
                              refresh_per_second=4, transient=True, redirect_stdout=False,
                              redirect_stderr=False)
            self._live.start()

    def close(self, *, summary: bool = True) -> dict[str, Any]:
        """Stop the live display; print the summary (human, and JSON with ``--json``) once, unless
        ``summary`` is False."""
        figures = self.summary()
        if self._closed:
            return figures
        self._closed = True
        if self._live is not None:
            self._live.stop()
            self._live = None
        if not summary:
            return figures
        for line in format_summary(figures):
            self._say(line)
        if self.json_out is not None:
            self.json_out.write(json.dumps(figures, default=str) + "\n")
            self.json_out.flush()
        return figures

    def _say(self, line: str) -> None:
        if self._console is not None:
            self._console.print(line, markup=False, emoji=False, highlight=False)
        else:
            self.human.write(line + "\n")
            self.human.flush()

    def _render(self) -> Any:
        from rich.table import Table

        table = Table(title=f"{len(self.devices)} emulated {self.kind} devices, "
                            f"{self.clock() - self._began:.0f} s", title_justify="left")
        table.add_column("state")
        table.add_column("devices", justify="right")
        for state, count in self.states().items():
            table.add_row(state, str(count))
        if self.failures:
            table.add_row("failures", ", ".join(f"{reason}: {count}" for reason, count
                                                in self.failures.most_common(3)))
        return table


def format_summary(summary: dict[str, Any]) -> list[str]:
    """The summary as lines for people."""
    lines = [(f"{summary['devices']} emulated {summary['kind']} devices after "
              f"{summary['seconds']:.1f} s"),
             "  devices by state: " + (", ".join(f"{state} {count}" for state, count
                                                 in summary["states"].items()) or "none")]
    failures = summary["failures"]
    lines.append("  failures by reason: " + ("none" if not failures else ""))
    lines += [f"    {count} x {reason}" for reason, count in failures.items()]
    for name, label in (("connect", "time to connect"), ("upgrade", "time to upgrade")):
        figures = summary["durations"][name]
        if figures["count"]:
            lines.append(f"  {label}: p50 {figures['p50']:.3f} s, p95 {figures['p95']:.3f} s, "
                         f"max {figures['max']:.3f} s ({figures['count']} devices)")
    if "faults" in summary:
        lines.append("  faults: " + ", ".join(f"{key} {value}" for key, value
                                             in summary["faults"].items()))
    if "totals" in summary:
        lines.append("  totals: " + ", ".join(f"{key} {value}" for key, value
                                             in summary["totals"].items()))
    return lines


def _state_order(state: str) -> int:
    return STATES.index(state) if state in STATES else len(STATES)


def _reason(text: str) -> str:
    """A failure's reason as the summary groups it: one line, at most 120 characters."""
    line = " ".join(str(text).split()) or "no reason given"
    return line if len(line) <= 120 else line[:117] + "..."


def _clock_text(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%H:%M:%S.%f")[:-3]


def _size(count: int | None) -> str:
    if count is None:
        return "?"
    for unit, scale in (("MiB", 1024 ** 2), ("KiB", 1024)):
        if count >= scale:
            return f"{count / scale:.1f} {unit}"
    return f"{count} bytes"

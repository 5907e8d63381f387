"""The run's HTML report: one self-contained file (``reports/report.html``) per ``otaharness run``.

Features → scenarios → steps, each step with its status, its scenario time (the scenario's clock,
seconds since the scenario began) and its wall time; a failed scenario open, with its reason;
each scenario's timeline (``timeline.jsonl`` of its artifact folder) plotted, a row per device or
server; its transcripts folded under it; every FUOTA campaign it ran
(:mod:`otaharness.servers.fuota.report`); links to its pcaps and the other files of its artifact
folder. Styles and plots are inline (SVG), no script: the file opens anywhere, also from a CI
artifact store.

How it is made, with or without ``--jobs``: each behave process runs with
``--runner otaharness.bdd.report:ReportingRunner`` (behave's own option; ``otaharness run`` adds
it). The runner adds one observer to behave's formatters — after the user's ``-f``/``-o`` pairs,
so they are untouched — which reads the scenario clock of the scenario's runtime around each step
and rewrites the process's JSON part (``reports/report-parts/``) at the end of each feature. The
parent merges the parts into the report when every process has ended (:func:`build_report`), so
the file is written whatever the scenarios did. A feature whose process ended without its part
(killed, crashed) is listed as such.
"""

from __future__ import annotations

import base64
import datetime as dt
import html
import io
import itertools
import json
import os
import re
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

from behave.model import Rule
from behave.model_core import Status
from behave.runner import Runner

from otaharness.runtime.redaction import redact

RUNNER = "otaharness.bdd.report:ReportingRunner"
PARTS_ENV = "OTAHARNESS_REPORT_PARTS"  # where the processes of a run write their parts
PARTS_FOLDER = Path("reports/report-parts")
REPORT_NAME = "report.html"
PART_VERSION = 1

TRANSCRIPT_SHOWN = 256 * 1024   # characters of a transcript inlined (the file is linked whole)
CAPTURED_SHOWN = 20_000         # characters of a failed scenario's captured output kept (its end)
EVENTS_LISTED = 2_000           # timeline lines in a scenario's event table (the plot has all)
MARKERS_AS_SVG = 1_500          # a timeline with more events has its markers drawn as an image
FILES_LISTED = 300              # files of an artifact folder linked
# behave's statuses that fail a run (Status.has_failed), by name: the parts carry names
FAILED = tuple(status.name for status in Status if status.has_failed())


def parts_folder() -> Path:
    return Path(os.environ.get(PARTS_ENV) or PARTS_FOLDER)


# -- in each behave process: the observer and its JSON part ------------------------------------------


class ReportingRunner(Runner):
    """behave's runner plus the report's observer (``--runner otaharness.bdd.report:ReportingRunner``)."""

    def run_model(self, features=None):
        self.formatters.append(PartWriter(self, parts_folder() / f"part-{os.getpid()}.json"))
        return super().run_model(features)


@dataclass
class _StepTimes:
    wall_s: float
    start_t: float | None  # scenario seconds; None without a scenario runtime (dry run, hook failed)
    end_t: float | None


@dataclass
class _ScenarioFacts:
    """What only the running scenario can tell: its runtime's artifacts, seed, devices, clock."""

    started: float = field(default_factory=time.perf_counter)
    wall_s: float = 0.0
    artifacts: str | None = None
    capture: str | None = None
    seed: int | None = None
    virtual: bool | None = None
    devices: dict[str, str] = field(default_factory=dict)  # name -> DevEUI (LoRaWAN devices)


class PartWriter:
    """A behave formatter in all but name (it writes no stream): behave calls ``match`` before a
    step's hooks and ``result`` after them, while the scenario's runtime is alive."""

    def __init__(self, runner: Runner, path: Path) -> None:
        self.runner = runner
        self.path = path
        self.features: list[Any] = []
        self.scenarios: dict[int, _ScenarioFacts] = {}
        self.steps: dict[int, _StepTimes] = {}
        self._scenario = None
        self._secrets = None
        self._step_began: tuple[float, float | None] | None = None

    # behave's formatter calls
    def uri(self, uri) -> None:
        pass

    def feature(self, feature) -> None:
        self._end_scenario()
        self.features.append(feature)

    def rule(self, rule) -> None:
        pass

    def background(self, background) -> None:
        pass

    def scenario(self, scenario) -> None:
        self._end_scenario()
        if not scenario.should_run(self.runner.config):
            return  # left out by tags, names or lines before it began: not part of this run
        self._scenario = scenario
        self.scenarios[id(scenario)] = _ScenarioFacts()

    def step(self, step) -> None:
        # behave announces the steps after before_scenario: a scenario its hook skipped or failed
        # has its runtime (artifacts, seed) already
        self._learn_runtime()

    def match(self, match) -> None:
        self._step_began = (time.perf_counter(), self._scenario_seconds())

    def result(self, step) -> None:
        began_wall, began_t = self._step_began or (time.perf_counter(), None)
        self._step_began = None
        self.steps[id(step)] = _StepTimes(time.perf_counter() - began_wall, began_t, self._scenario_seconds())
        self._learn_runtime()

    def embedding(self, *args, **kwargs) -> None:
        pass

    def eof(self) -> None:
        self._end_scenario()
        self.write()

    def close(self) -> None:
        self._end_scenario()
        self.write()

    # reading the scenario's runtime
    def _runtime(self):
        return getattr(self.runner.context, "ota", None) if self.runner.context is not None else None

    def _scenario_seconds(self) -> float | None:
        runtime = self._runtime()
        if runtime is None:
            return None
        recorder = getattr(runtime, "recorder", None)
        if recorder is not None and hasattr(recorder, "now"):
            return recorder.now()  # the timeline's own origin: the two line up
        return runtime.clock.monotonic() if runtime.virtual else None

    def _learn_runtime(self) -> None:
        runtime = self._runtime()
        facts = self.scenarios.get(id(self._scenario))
        if runtime is None or facts is None:
            return
        facts.artifacts = str(Path(runtime.artifacts).resolve())
        capture_dir = getattr(runtime.config, "capture_dir", None)
        facts.capture = None if capture_dir is None else str(Path(capture_dir).resolve())
        facts.seed, facts.virtual = runtime.seed, runtime.virtual
        for name, device in runtime.devices.items():
            dev_eui = getattr(getattr(device, "config", None), "dev_eui", None)
            if isinstance(dev_eui, int):
                facts.devices[name] = f"{dev_eui:016X}"

    def _end_scenario(self) -> None:
        if self._scenario is not None:
            facts = self.scenarios[id(self._scenario)]
            facts.wall_s = time.perf_counter() - facts.started
            self._scenario = None

    # the part
    def write(self) -> None:
        # what the part keeps of errors and output is masked like the JUnit files: by shape, and
        # by value with every secret the scenarios issued (the hooks collect them)
        self._secrets = getattr(self.runner.context, "ota_secrets", None) if self.runner.context else None
        features = [self._feature(feature) for feature in self.features]
        # a feature none of whose scenarios was selected (--tags=-docker) was not part of the run
        document = {"version": PART_VERSION, "pid": os.getpid(),
                    "features": [feature for feature in features if feature["scenarios"]]}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        partial = self.path.with_suffix(".tmp")
        partial.write_text(json.dumps(document))
        partial.replace(self.path)  # a reader never sees half a part

    def _feature(self, feature) -> dict[str, Any]:
        scenarios, left_out = [], 0
        for scenario in feature.walk_scenarios():
            facts = self.scenarios.get(id(scenario))
            if facts is None:
                left_out += 1
                continue
            scenarios.append(self._scenario_entry(scenario, facts))
        return {"name": feature.name, "filename": feature.filename, "line": feature.line,
                "status": feature.status.name, "tags": list(feature.tags), "scenarios": scenarios,
                "left_out": left_out}

    def _scenario_entry(self, scenario, facts: _ScenarioFacts) -> dict[str, Any]:
        background = {id(step) for step in (scenario.background_steps or [])}
        steps = []
        for step in scenario.all_steps:
            times = self.steps.get(id(step))
            steps.append({
                "keyword": step.keyword, "name": step.name, "line": step.line, "status": step.status.name,
                "background": id(step) in background, "error": self._masked(step.error_message),
                "wall_s": None if times is None else times.wall_s,
                "start_t": None if times is None else times.start_t,
                "end_t": None if times is None else times.end_t,
                "text": self._masked(step.text),
                "table": None if step.table is None else [
                    [self._masked(cell) for cell in row]
                    for row in [step.table.headings, *(row.cells for row in step.table.rows)]]})
        status = scenario.status.name
        captured = ""
        if status in FAILED:
            captured = self._masked(_text_of(getattr(scenario, "captured", None))[-CAPTURED_SHOWN:])
        return {"name": scenario.name, "line": scenario.line, "tags": list(scenario.effective_tags),
                "rule": _rule_of(scenario), "status": status,
                "error": self._masked(getattr(scenario, "error_message", None)),
                "skip_reason": getattr(scenario, "skip_reason", None) or "",
                "wall_s": facts.wall_s, "artifacts": facts.artifacts, "capture": facts.capture,
                "seed": facts.seed, "virtual": facts.virtual, "devices": facts.devices,
                "captured": captured, "steps": steps}

    def _masked(self, text: str | None) -> str:
        return redact(str(text), self._secrets) if text else ""


def _rule_of(scenario) -> str | None:
    """The name of the Rule a scenario (or its outline) sits in, if any."""
    parent = getattr(scenario, "parent", None)
    while parent is not None:
        if isinstance(parent, Rule):
            return parent.name
        parent = getattr(parent, "parent", None)
    return None


def _text_of(captured) -> str:
    if captured is None:
        return ""
    try:
        return str(captured.output or "")
    except Exception:  # noqa: BLE001 - behave's capture objects differ between versions; the report goes on
        return ""


# -- in the parent: merging the parts into one HTML file ---------------------------------------------


def clear_parts(folder: Path | None = None) -> Path:
    """Empty the parts folder before a run (a part of an earlier run must not join this one)."""
    folder = folder or parts_folder()
    folder.mkdir(parents=True, exist_ok=True)
    for old in [*folder.glob("part-*.json"), *folder.glob("part-*.tmp")]:
        old.unlink()
    return folder


def read_parts(folder: Path) -> tuple[list[dict[str, Any]], list[str]]:
    """Every feature of every part, by file name; and the parts that did not read."""
    features, problems = [], []
    for part in sorted(folder.glob("part-*.json")):
        try:
            document = json.loads(part.read_text())
            features += document["features"]
        except (OSError, ValueError, KeyError, TypeError) as error:
            problems.append(f"{part.name}: {error}")
    features.sort(key=lambda feature: (feature.get("filename") or "", feature.get("line") or 0))
    return features, problems


def build_report(parts: Path, report: Path, *, unreported: Mapping[str, str] | None = None,
                 title: str = "otaharness run", command: str = "") -> Path:
    """Write the HTML report of the parts in ``parts`` to ``report``. ``unreported`` maps feature
    files that left no part to what is known of them (their process's exit, console file)."""
    features, problems = read_parts(parts)
    reported = {os.path.abspath(feature.get("filename") or "") for feature in features}
    missing = {name: note for name, note in (unreported or {}).items() if os.path.abspath(name) not in reported}
    report.parent.mkdir(parents=True, exist_ok=True)
    page = render(features, base=report.parent, missing=missing, problems=problems, title=title, command=command)
    partial = report.with_suffix(".tmp")
    partial.write_text(page, encoding="utf-8")
    partial.replace(report)
    return report


def render(features: list[dict[str, Any]], *, base: Path, missing: Mapping[str, str] | None = None,
           problems: Iterable[str] = (), title: str = "otaharness run", command: str = "") -> str:
    """The report's HTML; links are relative to ``base``, the report's folder."""
    counts = _counts(features)
    body = [f"<h1>{_e(title)}</h1>",
            f"<p class=meta>written {_e(dt.datetime.now(dt.UTC).strftime('%Y-%m-%d %H:%M:%S UTC'))}"
            + (f" · <code>{_e(command)}</code>" if command else "") + "</p>",
            _summary_table(counts)]
    failed = [(feature, scenario) for feature in features for scenario in feature["scenarios"]
              if scenario["status"] in FAILED]
    if failed or missing:
        body.append("<section class=failures><h2>Failures</h2><ul>")
        for feature, scenario in failed:
            body.append(f"<li><a href='#{_anchor(feature, scenario)}'>{_e(feature['name'])} — "
                        f"{_e(scenario['name'])}</a>: {_e(_first_line(_reason(scenario)))}</li>")
        for name, note in (missing or {}).items():
            body.append(f"<li>{_e(name)}: no result ({_e(note)})</li>")
        body.append("</ul></section>")
    for problem in problems:
        body.append(f"<p class=problem>a report part did not read: {_e(problem)}</p>")
    for feature in features:
        body.append(_feature_html(feature, base))
    for name, note in (missing or {}).items():
        body.append(f"<section class='feature failed'><h2>{_e(name)}</h2>"
                    f"<p class=reason>no result from this feature's process: {_e(note)}</p></section>")
    if not features and not missing:
        body.append("<p>No scenario ran.</p>")
    return ("<!DOCTYPE html>\n<html lang=en><head><meta charset=utf-8>"
            "<meta name=viewport content='width=device-width, initial-scale=1'>"
            f"<title>{_e(title)}</title><style>{STYLE}</style></head><body>\n"
            + "\n".join(body) + "\n</body></html>\n")


STYLE = """
body{font:14px/1.4 system-ui,sans-serif;margin:1.5em;color:#222;max-width:1400px}
h1{font-size:1.5em}h2{font-size:1.2em;margin:1.2em 0 .4em}
code,pre{font:12px/1.35 ui-monospace,monospace}pre{background:#f6f6f6;padding:.5em;overflow:auto;max-height:40em}
.meta{color:#666}.problem,.reason{color:#a00}
table{border-collapse:collapse}td,th{padding:2px 8px;border-bottom:1px solid #eee;text-align:left;vertical-align:top}
td.num,th.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
details.scenario{border:1px solid #ddd;border-left:6px solid #999;margin:.4em 0;padding:.2em .6em}
details.scenario>summary{cursor:pointer;font-weight:600}
details.passed{border-left-color:#3a3}details.failed,details.error,details.hook_error,details.undefined,
details.cleanup_error,details.pending{border-left-color:#c33}details.skipped,details.untested{border-left-color:#bbb}
.status{display:inline-block;min-width:5em;font-size:.8em;font-weight:700;text-transform:uppercase}
.s-passed{color:#282}.s-failed,.s-error,.s-hook_error,.s-undefined,.s-cleanup_error,.s-pending{color:#c00}
.s-skipped,.s-untested{color:#888}
tr.step-failed td,tr.step-error td,tr.step-undefined td,tr.step-pending td{background:#fdeaea}
.reason{white-space:pre-wrap;background:#fdeaea;border:1px solid #f3c0c0;padding:.5em;font:12px/1.35 ui-monospace,monospace}
figure{margin:.6em 0}figure svg{max-width:100%;height:auto}figcaption{color:#666;font-size:.9em}
details.fold{margin:.3em 0}details.fold>summary{cursor:pointer;color:#245}
.files li{font-family:ui-monospace,monospace;font-size:12px}
"""


def _counts(features: list[dict[str, Any]]) -> dict[str, dict[str, int]]:
    counts: dict[str, dict[str, int]] = {"features": {}, "scenarios": {}, "steps": {}}
    for feature in features:
        counts["features"][feature["status"]] = counts["features"].get(feature["status"], 0) + 1
        for scenario in feature["scenarios"]:
            counts["scenarios"][scenario["status"]] = counts["scenarios"].get(scenario["status"], 0) + 1
            for step in scenario["steps"]:
                counts["steps"][step["status"]] = counts["steps"].get(step["status"], 0) + 1
    return counts


def _summary_table(counts: dict[str, dict[str, int]]) -> str:
    statuses = sorted({status for kind in counts.values() for status in kind},
                      key=lambda status: (status not in ("passed", "failed"), status))
    rows = ["<table class=summary><tr><th></th>"
            + "".join(f"<th class='num s-{_e(status)}'>{_e(status)}</th>" for status in statuses) + "</tr>"]
    for kind, by_status in counts.items():
        rows.append(f"<tr><th>{kind}</th>" + "".join(
            f"<td class=num>{by_status.get(status, 0)}</td>" for status in statuses) + "</tr>")
    return "".join(rows) + "</table>"


def _feature_html(feature: dict[str, Any], base: Path) -> str:
    heading = (f"<section class='feature {_e(feature['status'])}'><h2>{_e(feature['name'])} "
               f"<span class='status s-{_e(feature['status'])}'>{_e(feature['status'])}</span></h2>"
               f"<p class=meta>{_e(feature['filename'])}"
               + (f" · {feature['left_out']} scenarios not selected (tags, names or lines)"
                  if feature.get("left_out") else "") + "</p>")
    parts = [heading]
    for scenario in feature["scenarios"]:
        parts.append(_scenario_html(feature, scenario, base))
    parts.append("</section>")
    return "\n".join(parts)


def _scenario_html(feature: dict[str, Any], scenario: dict[str, Any], base: Path) -> str:
    status = scenario["status"]
    failed = status in FAILED
    ends = [step["end_t"] for step in scenario["steps"] if step.get("end_t") is not None]
    clock = f" · {_seconds(max(ends))} scenario time" if ends else ""
    rule = f"{_e(scenario['rule'])} › " if scenario.get("rule") else ""
    summary = (f"<summary><span class='status s-{_e(status)}'>{_e(status)}</span> {rule}{_e(scenario['name'])}"
               f" <span class=meta>({_wall(scenario.get('wall_s'))} wall{clock})</span></summary>")
    out = [f"<details class='scenario {_e(status)}' id='{_anchor(feature, scenario)}'{' open' if failed else ''}>",
           summary]
    if failed:
        out.append(f"<div class=reason>{_e(_reason(scenario))}</div>")
    elif scenario.get("skip_reason"):
        out.append(f"<p class=meta>skipped: {_e(scenario['skip_reason'])}</p>")
    meta = [f"{_e(feature['filename'])}:{scenario['line']}"]
    if scenario.get("seed") is not None:
        meta.append(f"seed {scenario['seed']} (replay with <code>-D seed={scenario['seed']}</code>)")
    if scenario.get("tags"):
        meta.append(" ".join(f"@{_e(tag)}" for tag in scenario["tags"]))
    out.append(f"<p class=meta>{' · '.join(meta)}</p>")
    out.append(_steps_table(scenario))
    folder = Path(scenario["artifacts"]) if scenario.get("artifacts") else None
    if folder is not None:
        out.append(_timeline_html(folder, scenario))
        out.append(_campaigns_html(folder, scenario))
        out.append(_transcripts_html(folder, base))
        out.append(_files_html(folder, scenario, base))
    elif status not in ("skipped", "untested"):
        out.append("<p class=meta>No artifact folder: the scenario had no runtime.</p>")
    if scenario.get("captured"):
        out.append("<details class=fold><summary>captured output</summary>"
                   f"<pre>{_e(scenario['captured'])}</pre></details>")
    out.append("</details>")
    return "\n".join(part for part in out if part)


def _steps_table(scenario: dict[str, Any]) -> str:
    rows = [("<table class=steps><tr><th>step</th><th>status</th><th class=num>scenario time</th>"
             "<th class=num>wall time</th></tr>")]
    for step in scenario["steps"]:
        span = ""
        if step.get("start_t") is not None and step.get("end_t") is not None:
            span = f"{_seconds(step['start_t'])} → {_seconds(step['end_t'])}"
        extra = ""
        if step.get("table"):
            extra = "<table class=data>" + "".join(
                "<tr>" + "".join(f"<td>{_e(cell)}</td>" for cell in row) + "</tr>" for row in step["table"]) + "</table>"
        elif step.get("text"):
            extra = f"<pre>{_e(step['text'])}</pre>"
        if step.get("error") and step["status"] in FAILED:
            extra += f"<div class=reason>{_e(step['error'])}</div>"
        background = " <span class=meta>(background)</span>" if step.get("background") else ""
        rows.append(f"<tr class='step-{_e(step['status'])}'><td><b>{_e(step['keyword'])}</b> {_e(step['name'])}"
                    f"{background}{extra}</td><td class='s-{_e(step['status'])}'>{_e(step['status'])}</td>"
                    f"<td class=num>{span}</td><td class=num>{_wall(step.get('wall_s'))}</td></tr>")
    return "".join(rows) + "</table>"


# -- timeline -------------------------------------------------------------------------------------------

# kind -> (marker, colour); other kinds take the next of DEFAULT_MARKERS
KIND_STYLES = {
    "session": ("o", "#4c72b0"), "download": ("s", "#55a868"), "state": ("D", "#8172b2"),
    "fault": ("v", "#dd8452"), "message": (".", "#64b5cd"), "step": ("|", "#999999"),
    "failure": ("X", "#cc0000"),
}
DEFAULT_MARKERS = [("^", "#937860"), ("P", "#da8bc3"), ("*", "#8c8c8c"), ("h", "#ccb974"), ("<", "#64b5cd")]


def read_timeline(path: Path) -> tuple[list[dict[str, Any]], int]:
    """The events of a ``timeline.jsonl`` and how many of its lines did not read."""
    events, bad = [], 0
    with path.open(encoding="utf-8", errors="replace") as lines:
        for line in lines:
            if not line.strip():
                continue
            try:
                event = json.loads(line)
                events.append({"t": float(event["t"]), "actor": str(event.get("actor", "")),
                               "kind": str(event.get("kind", "")), "text": str(event.get("text", ""))})
            except (ValueError, KeyError, TypeError):
                bad += 1
    return events, bad


def timeline_svg(events: list[dict[str, Any]], title: str = "") -> str:
    """A scenario's timeline as inline SVG: a row per actor (in order of first appearance), a
    marker per event by kind, each failure a red cross and a red line across every row."""
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D

    actors = list(dict.fromkeys(event["actor"] for event in events if event["kind"] != "step"))
    styles: dict[str, tuple[str, str]] = {}
    for event in events:
        if event["kind"] not in styles:
            styles[event["kind"]] = KIND_STYLES.get(event["kind"]) or DEFAULT_MARKERS[
                sum(kind not in KIND_STYLES for kind in styles) % len(DEFAULT_MARKERS)]
    rows = {actor: index for index, actor in enumerate(actors)}
    marked: dict[str, list[dict[str, Any]]] = {}  # SVG group -> its events, in marker order
    height = 1.4 + 0.3 * max(len(actors), 1)
    figure = Figure(figsize=(11, height))
    axes = figure.subplots()
    for kind, (marker, colour) in styles.items():
        if kind == "step":  # step boundaries: thin lines across every row
            for event in events:
                if event["kind"] == "step":
                    axes.axvline(event["t"], color="#dddddd", linewidth=0.6, zorder=0)
            continue
        chosen = [event for event in events if event["kind"] == kind]
        # thousands of markers as SVG elements weigh megabytes: drawn as one image inside the
        # SVG instead (the axes, names and legend stay text)
        group = f"events-{len(marked)}"
        marked[group] = chosen
        axes.plot([event["t"] for event in chosen], [rows[event["actor"]] for event in chosen], marker,
                  color=colour, linestyle="none", markersize=9 if kind == "failure" else 6, label=kind,
                  zorder=3 if kind == "failure" else 2, rasterized=len(events) > MARKERS_AS_SVG, gid=group)
        if kind == "failure":
            for event in chosen:
                axes.axvline(event["t"], color="#cc0000", linewidth=1.0, zorder=1)
    axes.set_yticks(range(len(actors)), actors, fontsize=8)
    axes.set_ylim(max(len(actors), 1) - 0.5, -0.5)
    axes.set_xlabel("scenario time (s)", fontsize=8)
    axes.tick_params(axis="x", labelsize=8)
    axes.grid(axis="y", color="#f0f0f0")
    handles = [Line2D([], [], marker=marker, color=colour, linestyle="none" if kind != "step" else "-",
                      label=kind) for kind, (marker, colour) in styles.items()]
    if handles:
        axes.legend(handles=handles, fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0), frameon=False)
    if title:
        axes.set_title(title, fontsize=9, loc="left", parse_math=False)
    figure.subplots_adjust(left=0.16, right=0.88, top=1 - 0.35 / height, bottom=0.5 / height + 0.05)
    return _svg(figure, marked)


_MARKER = re.compile(r"<use [^>]*/>")


def _with_tooltips(svg: str, marked: dict[str, list[dict[str, Any]]]) -> str:
    """Each marker gets its event as a tooltip (an SVG ``<title>``: the browser shows it on
    hover). matplotlib writes a line's markers as ``<use/>`` elements in the line's group, in the
    order of its points; a group whose count differs (markers drawn as an image) is left as is."""
    for group, events in marked.items():
        start = svg.find(f'id="{group}"')
        if start < 0:
            continue
        end = svg.find("</g>", start)  # the end of the clip group holding the markers
        if end < 0:
            continue
        body = svg[start:end]
        markers = _MARKER.findall(body)
        if len(markers) != len(events):
            continue
        titles = iter(f"<title>{_e(_tooltip(event))}</title>" for event in events)
        body = _MARKER.sub(lambda found, titles=titles: f"{found[0][:-2]}>{next(titles)}</use>", body)
        svg = svg[:start] + body + svg[end:]
    return svg


def _tooltip(event: dict[str, Any]) -> str:
    return f"{event['t']:.3f} s  {event['actor']}  {event['kind']}: {event['text']}"


def _svg(figure, marked: dict[str, list[dict[str, Any]]]) -> str:
    """The figure as an inline ``<svg>`` element, its text kept as text (searchable, selectable),
    its markers with their events as tooltips."""
    import matplotlib

    buffer = io.StringIO()
    with matplotlib.rc_context({"svg.fonttype": "none"}):
        figure.savefig(buffer, format="svg", metadata={"Date": None}, dpi=100)
    return inline_svg(_with_tooltips(buffer.getvalue(), marked))


_FIGURES = itertools.count(1)


def inline_svg(document: str) -> str:
    """An SVG document as an element of the page: without its XML prologue, and its ids (and the
    references to them) prefixed with a number of its own, so that the plots of one page never
    share an id (matplotlib names them alike: ``figure_1``, clip paths by their shape)."""
    prefix = f"f{next(_FIGURES)}-"
    element = document[document.index("<svg"):]
    element = re.sub(r'\bid="([^"]+)"', lambda m: f'id="{prefix}{m[1]}"', element)
    element = re.sub(r'(href="#|url\(#)([^")]+)', lambda m: f"{m[1]}{prefix}{m[2]}", element)
    return element


def _timeline_html(folder: Path, scenario: dict[str, Any]) -> str:
    path = folder / "timeline.jsonl"
    if not path.is_file():
        return "<p class='meta no-timeline'>No timeline: the scenario's artifact folder has no timeline.jsonl.</p>"
    events, bad = read_timeline(path)
    unread = f" ({bad} lines did not read)" if bad else ""
    if not events:
        return f"<p class='meta no-timeline'>The timeline is empty{unread}.</p>"
    try:
        plot = timeline_svg(events, title=scenario["name"])
    except Exception as error:  # noqa: BLE001 - a plot that cannot be drawn must not cost the rest
        plot = f"<p class=problem>the timeline could not be plotted: {_e(repr(error))}</p>"
    failures = [event for event in events if event["kind"] == "failure"]
    actors = {event["actor"] for event in events if event["kind"] != "step"}  # the plot's rows
    caption = (f"Timeline: {len(events)} events, {len(actors)} devices and servers"
               + (f"; failure at {_seconds(failures[0]['t'])}" if failures else "") + unread)
    listed = events[:EVENTS_LISTED]
    table = "".join(
        f"<tr class='step-{'failed' if event['kind'] == 'failure' else ''}'><td class=num>{event['t']:.3f}</td>"
        f"<td>{_e(event['actor'])}</td><td>{_e(event['kind'])}</td><td>{_e(event['text'])}</td></tr>"
        for event in listed)
    more = f" (the first {len(listed)})" if len(events) > len(listed) else ""
    return (f"<figure class=timeline>{plot}<figcaption>{_e(caption)}</figcaption></figure>"
            f"<details class=fold><summary>timeline events{more}</summary><table class=events>"
            f"<tr><th class=num>t (s)</th><th>actor</th><th>kind</th><th>text</th></tr>{table}</table></details>")


# -- FUOTA campaigns ------------------------------------------------------------------------------------


def _campaigns_html(folder: Path, scenario: dict[str, Any]) -> str:
    from otaharness.servers.fuota.report import campaign_plot, stored_campaign_reports

    data_dir = folder / "fuota"
    if not data_dir.is_dir():
        return ""
    names = {dev_eui: name for name, dev_eui in (scenario.get("devices") or {}).items()}
    try:
        reports = stored_campaign_reports(data_dir, names)
    except Exception as error:  # noqa: BLE001 - a database the report cannot read is said, not fatal
        return f"<p class=problem>FUOTA campaigns could not be read: {_e(repr(error))}</p>"
    out = []
    for report in reports:
        if "error" in report:
            out.append(f"<p class=problem>FUOTA campaign {report['id']}: {_e(report['error'])}</p>")
            continue
        svg = inline_svg(campaign_plot(report, "svg").decode())
        rows = []
        for device in report["devices"]:
            losses = "; ".join(f"round {loss['round']}: {loss['received']} of {loss['sent']} received"
                               + (f", {loss['lost']} lost" if loss.get("lost") else "")
                               for loss in device["losses"]) or "not reported (no FragSessionStatusAns)"
            reason = "; ".join([device["reason"], *device["rejected"]] if device["reason"] else device["rejected"])
            rows.append(f"<tr><td>{_e(device['label'])}</td><td><code>{_e(device['dev_eui'])}</code></td>"
                        f"<td class='s-{_e(device['status'])}'>{_e(device['status'])}</td><td>{_e(losses)}</td>"
                        f"<td>{_e(reason)}</td></tr>")
        stages = ", ".join(f"{stage['name']}" + (f" (round {stage['round']})" if stage["round"] > 1 else "")
                           for stage in report["stages"])
        out.append(
            f"<section class=campaign><h3>FUOTA campaign {report['id']} {_e(report['name'])}: {_e(report['state'])}</h3>"
            f"<figure>{svg}</figure><p class=meta>stages: {_e(stages) or 'none'}</p>"
            "<table><tr><th>device</th><th>DevEUI</th><th>outcome</th><th>fragments</th><th>reason</th></tr>"
            + "".join(rows) + "</table>"
            + "".join(f"<p class=meta>{_seconds(note['at'])}: {_e(note['text'])}</p>" for note in report["notes"])
            + "</section>")
    return "\n".join(out)


# -- transcripts and files ---------------------------------------------------------------------------------


def _transcripts_html(folder: Path, base: Path) -> str:
    transcripts = sorted((folder / "transcripts").glob("*.txt")) if (folder / "transcripts").is_dir() else []
    out = []
    for path in transcripts:
        text = path.read_text(encoding="utf-8", errors="replace")
        cut = len(text) > TRANSCRIPT_SHOWN
        shown = text[:TRANSCRIPT_SHOWN] + (f"\n… ({len(text) - TRANSCRIPT_SHOWN} more characters in the file)"
                                           if cut else "")
        out.append(f"<details class='fold transcript'><summary>transcript: {_e(path.stem)} "
                   f"<a href='{_href(path, base)}'>{_e(path.name)}</a></summary><pre>{_e(shown)}</pre></details>")
    return "\n".join(out)


def _files_html(folder: Path, scenario: dict[str, Any], base: Path) -> str:
    pcaps: list[Path] = []
    capture = scenario.get("capture")
    if capture and Path(capture).is_dir():
        # --pcap DIR holds <scenario>.pcapng (TCP/IP) and <scenario>-radio.pcap (LoRa), of every scenario
        own = re.compile(re.escape(folder.name) + r"(-radio)?\.pcap(ng)?")
        pcaps += sorted(path for path in Path(capture).iterdir() if own.fullmatch(path.name))
    files = sorted(path for path in folder.rglob("*") if path.is_file()) if folder.is_dir() else []
    pcaps += [path for path in files if path.suffix in (".pcap", ".pcapng")]
    others = [path for path in files if path not in pcaps]
    if not files and not pcaps:
        return f"<p class=meta>Artifact folder {_e(_relative(folder, base))} is empty or absent.</p>"
    items = [f"<li>pcap: <a href='{_href(path, base)}'>{_e(_relative(path, base))}</a> ({_size(path)})</li>"
             for path in pcaps]
    items += [f"<li><a href='{_href(path, base)}'>{_e(_relative(path, folder))}</a> ({_size(path)})</li>"
              for path in others[:FILES_LISTED]]
    more = f"<li>… {len(others) - FILES_LISTED} more files</li>" if len(others) > FILES_LISTED else ""
    return (f"<details class=fold{' open' if pcaps else ''}><summary>artifacts: "
            f"<a href='{_href(folder, base)}/'>{_e(_relative(folder, base))}/</a> ({len(files)} files)</summary>"
            f"<ul class=files>{''.join(items)}{more}</ul></details>")


# -- small helpers ---------------------------------------------------------------------------------------


def _reason(scenario: dict[str, Any]) -> str:
    """Why a scenario failed: its failing step and that step's error, else its hook's error."""
    for step in scenario["steps"]:
        if step["status"] in FAILED:
            if step["status"] == "undefined":
                return f"undefined step: {step['keyword']} {step['name']}"
            return f"{step['keyword']} {step['name']}\n{step['error']}".strip()
    return scenario.get("error") or f"the scenario {scenario['status']}"


def _first_line(text: str) -> str:
    lines = [line for line in text.splitlines() if line.strip()]
    # the step, then the first line of its error: what a reader needs to pick a failure to open
    return " — ".join(lines[:2])[:300]


def _anchor(feature: dict[str, Any], scenario: dict[str, Any]) -> str:
    return "s-" + base64.urlsafe_b64encode(
        f"{feature['filename']}:{scenario['line']}:{scenario['name']}".encode()).decode().rstrip("=")


def _relative(path: Path, base: Path) -> str:
    return os.path.relpath(Path(path).resolve(), Path(base).resolve())


def _href(path: Path, base: Path) -> str:
    return quote(_relative(path, base).replace(os.sep, "/"))


def _size(path: Path) -> str:
    size = path.stat().st_size
    return f"{size} B" if size < 1024 else f"{size / 1024:.1f} KiB" if size < 1024 * 1024 else \
        f"{size / 1024 / 1024:.1f} MiB"


def _seconds(value: float) -> str:
    return f"{value:.3f} s" if value < 60 else f"{value:.1f} s ({dt.timedelta(seconds=round(value))})"


def _wall(value: float | None) -> str:
    return "" if value is None else f"{value:.3f} s" if value < 10 else f"{value:.1f} s"


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)

"""Features in parallel: one behave process per feature file, ``jobs`` of them at a time.

Why processes per feature file: a scenario owns a loop, a virtual clock, a broker process and
servers, and a feature's hooks and steps share one behave context, so a feature file is the
smallest unit that runs as it does serially. Each process is a plain behave run of that file with
the caller's behave arguments, writing its own JUnit file into the shared JUnit folder and its
scenarios' artifacts into ``reports/artifacts/<scenario>/`` as a serial run does. Its console
output goes to ``reports/console/<feature>.txt``; the parent prints it in one block when the
process ends (whole for a failure, the progress lines for a pass), then one merged summary.
Longest features start first (last run's JUnit times, else the count of their steps), so the run ends
about when its longest feature does. Each process writes its part of the HTML report
(:mod:`otaharness.bdd.report`), which the caller merges when all have ended.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from collections import Counter
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

# behave's summary lines: "9 scenarios passed, 1 failed, 0 skipped, 2 untested"
_SUMMARY = re.compile(r"^(\d+) (feature|rule|scenario|step)s? passed((?:, \d+ \w+)*)\s*$")
_NOISE = re.compile(r"^(USING RUNNER: |Took \d+min )")
_STATEMENTS = ("feature", "rule", "scenario", "step")
_ALWAYS_SHOWN = ("passed", "failed", "skipped")
# Formatters whose -o is a folder they fill with files of unique names: every feature process
# may add its own to the same folder, so they keep their -o under --jobs.
FOLDER_FORMATTERS = {"allure_behave.formatter:AllureFormatter"}


@dataclass
class FeatureJob:
    """One feature file and the locations of it to run (the file, or ``file:line`` entries)."""

    feature: str
    locations: list[str]
    expected_s: float = 0.0
    console: Path | None = None
    junit: Path | None = None
    returncode: int | None = None
    duration_s: float = 0.0
    counts: dict[str, Counter] = field(default_factory=dict)


def jobs_value(text: str) -> int:
    """``--jobs`` value: a positive number or ``auto`` (the CPUs this process may use)."""
    if text == "auto":
        return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (
            os.cpu_count() or 1)
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        import argparse

        raise argparse.ArgumentTypeError(f"a positive number or auto, not {text!r}")
    return value


def split_paths(behave_args: list[str]) -> tuple[list[str], list[str]]:
    """behave's arguments split into (options, feature paths), using behave's own option table
    to know which options take a value."""
    from behave.configuration import setup_parser

    takes_value: set[str] = set()
    for action in setup_parser()._actions:  # behave's table of options; no public accessor
        if action.nargs != 0 and action.nargs != "?":  # --color[=WHEN] takes its value with =
            takes_value.update(action.option_strings)
    options, paths, value_next, only_paths = [], [], False, False
    for arg in behave_args:
        if value_next:
            options.append(arg)
            value_next = False
        elif only_paths or not arg.startswith("-") or arg == "-":
            paths.append(arg)
        elif arg == "--":
            only_paths = True
        else:
            options.append(arg)  # -Dseed=1, --tags=x and -tx carry their value along
            value_next = arg in takes_value
    return options, paths


def plan(behave_args: list[str], junit_dir: Path) -> tuple[list[str], list[FeatureJob]]:
    """The options every feature process gets, and one job per feature file, longest first."""
    from behave.configuration import Configuration
    from behave.runner_util import collect_feature_locations

    options, paths = split_paths(behave_args)
    config = Configuration(command_args=[*options, *paths], load_config=True)
    for formatter, outfile in _outfiles(options):
        if formatter not in FOLDER_FORMATTERS:
            raise SystemExit(f"otaharness run --jobs: each feature process writes its own "
                             f"console output (reports/console/); -o/--outfile is for one "
                             f"process (--jobs 1), here {outfile} for "
                             f"{formatter or 'the default formatter'}; with --jobs only a "
                             f"formatter that fills a folder keeps its -o "
                             f"({', '.join(sorted(FOLDER_FORMATTERS))})")
    locations = collect_feature_locations(config.paths or ["features"])
    by_file: dict[str, list[str]] = {}
    steps: dict[str, int] = {}
    for location in locations:
        if config.exclude(location.filename):
            continue
        if location.filename not in steps:
            steps[location.filename] = _steps_to_run(location.filename, config)
        if not steps[location.filename]:
            continue  # the tags leave out every scenario of the file (--tags=-docker)
        entries = by_file.setdefault(location.filename, [])
        entry = str(location)
        if entry not in entries:
            entries.append(entry)
    previous = _previous_durations(junit_dir)
    known = {feature: previous[_junit_name(feature)] for feature in by_file
             if _junit_name(feature) in previous}
    counted = sum(steps[feature] for feature in known)
    # a feature without history: its steps at the last run's mean time per step
    per_step = sum(known.values()) / counted if counted else 1.0
    jobs = []
    for feature, entries in by_file.items():
        # a whole file once, or only its chosen lines
        chosen = [feature] if feature in entries else entries
        expected = known.get(feature, steps[feature] * per_step)
        jobs.append(FeatureJob(feature, chosen, expected))
    jobs.sort(key=lambda job: job.expected_s, reverse=True)
    return options, jobs


def _outfiles(options: list[str]) -> list[tuple[str | None, str]]:
    """Each -o/--outfile with the formatter behave pairs it with (the -f of the same rank)."""
    found: dict[str, list[str]] = {"format": [], "outfile": []}
    names = {"-f": "format", "--format": "format", "-o": "outfile", "--outfile": "outfile"}
    for index, arg in enumerate(options):
        for option, name in names.items():
            if arg == option and index + 1 < len(options):
                found[name].append(options[index + 1])
            elif arg.startswith(option + "=") or (len(option) == 2 and arg.startswith(option)
                                                  and arg != option and not arg.startswith("--")):
                found[name].append(arg[len(option):].removeprefix("="))
    formats = found["format"]
    return [(formats[rank] if rank < len(formats) else None, outfile)
            for rank, outfile in enumerate(found["outfile"])]


def _steps_to_run(feature: str, config) -> int:
    """The steps (background included, outlines expanded) of the file's scenarios that the tag
    expression selects: 0 starts no process for it; else a measure of its length."""
    from behave.parser import parse_file

    model = parse_file(feature, language=config.lang)
    if model is None:
        return 0
    return sum(len(list(scenario.all_steps)) for scenario in model.walk_scenarios()
               if scenario.should_run_with_tags(config.tag_expression))


def _junit_name(feature: str) -> str:
    """The file name behave's JUnit reporter gives a feature: its path from behave's base
    folder (the nearest folder up with a steps/ folder or an environment.py), dots for slashes."""
    path = os.path.abspath(feature)
    base = os.path.dirname(path)
    while not (os.path.isdir(os.path.join(base, "steps"))
               or os.path.isfile(os.path.join(base, "environment.py"))):
        if os.path.dirname(base) == base:
            break
        base = os.path.dirname(base)
    relative = os.path.relpath(path, base)
    return "TESTS-" + relative.rsplit(".", 1)[0].replace(os.sep, ".") + ".xml"


def _previous_durations(junit_dir: Path) -> dict[str, float]:
    durations = {}
    for report in junit_dir.glob("TESTS-*.xml"):
        try:
            durations[report.name] = float(ET.parse(report).getroot().get("time", "0"))
        except (ET.ParseError, ValueError):
            continue
    return durations


def run(options: list[str], jobs: list[FeatureJob], workers: int, junit_dir: Path,
        console_dir: Path, out: TextIO = sys.stdout) -> int:
    """Run the jobs, ``workers`` processes at a time; print each when it ends, then the merged
    summary. Non-zero when any feature process failed."""
    console_dir.mkdir(parents=True, exist_ok=True)
    for old in console_dir.glob("*.txt"):
        old.unlink()
    started = time.perf_counter()
    files = f"{len(jobs)} feature file{'' if len(jobs) == 1 else 's'}"
    print(f"running {files}, {workers} at a time (a process each; console "
          f"output per feature in {console_dir}/)", file=out, flush=True)

    def run_one(job: FeatureJob) -> FeatureJob:
        name = _junit_name(job.feature)
        job.junit = junit_dir / name
        job.console = console_dir / (name[len("TESTS-"):-len(".xml")] + ".txt")
        command = [sys.executable, "-m", "behave", "--junit", "--junit-directory",
                   str(junit_dir), *options, *job.locations]
        begin = time.perf_counter()
        with open(job.console, "wb") as console:
            job.returncode = subprocess.run(command, check=False, stdout=console,
                                            stderr=subprocess.STDOUT,
                                            stdin=subprocess.DEVNULL).returncode
        job.duration_s = time.perf_counter() - begin
        return job

    done = 0
    with ThreadPoolExecutor(max_workers=workers) as pool:
        for future in as_completed([pool.submit(run_one, job) for job in jobs]):
            job = future.result()
            done += 1
            _print_job(job, done, len(jobs), out)  # printed by this thread only: no interleaving
    return _print_summary(jobs, time.perf_counter() - started, workers, out)


def _print_job(job: FeatureJob, done: int, total: int, out: TextIO) -> None:
    text = job.console.read_text(errors="replace") if job.console else ""
    lines = text.splitlines()
    for line in lines:
        found = _SUMMARY.match(line)
        if found:
            statuses = Counter({"passed": int(found[1])})
            for part in found[3].split(", ")[1:]:
                count, status = part.split(" ", 1)
                statuses[status] += int(count)
            job.counts[found[2]] = statuses
    failed = job.returncode != 0 or not job.counts
    verdict = "FAILED" if failed else "passed"
    print(f"[{done}/{total}] {job.feature} {verdict} in {job.duration_s:.1f} s"
          + (f" (exit {job.returncode}; all its output follows)" if failed else ""),
          file=out, flush=True)
    shown = lines if failed else [line for line in lines if line.strip()
                                  and not _SUMMARY.match(line) and not _NOISE.match(line)]
    if shown:
        print("\n".join(shown), file=out, flush=True)
    if failed and job.junit and job.junit.exists():
        for reason in _failure_reasons(job.junit):
            print(reason, file=out, flush=True)


def _failure_reasons(report: Path) -> list[str]:
    """What each failed scenario's JUnit entry says: the failing step, its error and the seed
    line (terse formatters such as progress print none of it)."""
    try:
        root = ET.parse(report).getroot()
    except ET.ParseError:
        return []
    reasons = []
    for case in root.iter("testcase"):
        problem = case.find("failure")
        if problem is None:
            problem = case.find("error")
        if problem is None:
            continue
        reasons.append(f"--- {case.get('name')}")
        reasons += [line for line in (problem.text or "").strip().splitlines() if line.strip()]
        output = case.findtext("system-out") or ""
        reasons += [line.strip() for line in output.splitlines()
                    if line.startswith("seed ") and "replay with -D seed=" in line]
    return reasons


def _print_summary(jobs: list[FeatureJob], wall_s: float, workers: int, out: TextIO) -> int:
    totals = {statement: Counter() for statement in _STATEMENTS}
    for job in jobs:
        for statement, statuses in job.counts.items():
            totals[statement].update(statuses)
    print(file=out)
    failed_jobs = [job for job in jobs if job.returncode != 0 or not job.counts]
    # a process that ended without behave's summary (killed, crashed) is a failed feature
    totals["feature"]["failed"] += sum(1 for job in failed_jobs if not job.counts)
    if failed_jobs:
        print("Failing feature files:", file=out)
        for job in failed_jobs:
            summary = "" if job.counts else ", no summary: the process ended early"
            print(f"  {job.feature} (exit {job.returncode}{summary}, output in {job.console})",
                  file=out)
        print(file=out)
    for statement in _STATEMENTS:
        statuses = totals[statement]
        if not statuses and statement == "rule":
            continue
        parts = [f"{statuses[status]} {status}" for status in _ALWAYS_SHOWN[1:]]
        parts += [f"{count} {status}" for status, count in sorted(statuses.items())
                  if status not in _ALWAYS_SHOWN and count]
        name = statement if statuses["passed"] == 1 else statement + "s"
        print(f"{statuses['passed']} {name} passed, " + ", ".join(parts), file=out)
    summed = sum(job.duration_s for job in jobs)
    print(f"Took {wall_s:.1f} s with {workers} processes at a time "
          f"({summed:.1f} s summed over {len(jobs)} feature processes)", file=out, flush=True)
    return 1 if failed_jobs else 0

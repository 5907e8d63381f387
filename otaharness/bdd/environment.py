"""behave hooks: one Runtime per scenario, torn down after it and checked for leftovers.

Our repository's ``environment.py`` re-exports these; another repository's does the same::

    from otaharness.bdd.environment import *  # noqa: F401,F403

Each scenario records a timeline and transcripts (``otaharness.runtime.timeline``). At its end
every scenario keeps ``timeline.jsonl`` in its artifact folder; a failed one (every one with
``-D artifacts=all``) keeps the rest as well: ``timeline.txt``, ``transcripts/``, the servers'
logs and state. Secrets are masked in all of it. A failed scenario prints its reason (the failing
step, the device, what was expected and seen, the seed, the artifact folder) on the console
whatever the formatter, and its JUnit test case carries the seed and the artifact paths as
properties.
"""

from __future__ import annotations

import logging
import re
import shutil
import sys
import time
from pathlib import Path

from otaharness.runtime.redaction import SecretSet, redact, scrub_file
from otaharness.runtime.runtime import Runtime, raise_fd_limit
from otaharness.runtime.targets import load_config

__all__ = [
    "after_all",
    "after_scenario",
    "after_step",
    "before_all",
    "before_scenario",
    "before_step",
]

log = logging.getLogger("otaharness")

# Lines of the broker's log that are the harness's own barrier traffic (runtime/broker.py's flush
# round trips), not the devices': left out of the kept log.
_BARRIER = re.compile(r"otabarrier-|otaharness/barrier/")
REASON_SHOWN = 600  # characters of a failure's reason on the console (all of it in JUnit)


def before_all(context) -> None:
    context.ota_config = load_config(dict(context.config.userdata))
    context.ota_outcomes = []  # (feature, scenario, properties) for the JUnit properties
    context.ota_secrets = SecretSet()  # every scenario's, for the JUnit files at the end
    context.ota_explanations = []  # failed scenarios' reasons, printed at the end
    raise_fd_limit()
    _give_behave_a_real_stopwatch()


def _give_behave_a_real_stopwatch() -> None:
    """behave times steps with time.time(), which follows the scenario's virtual clock (so that
    in-process libraries stamp virtual times); its reports should show real durations."""
    import types

    import behave.model
    import behave.reporter.summary

    behave.model.time = types.SimpleNamespace(time=time.perf_counter)
    behave.reporter.summary.time_now = time.perf_counter


def before_scenario(context, scenario) -> None:
    from otaharness.runtime.docker_targets import scenario_config

    config, no_engine = scenario_config(context.ota_config, scenario.effective_tags)
    name = f"{scenario.feature.name} -- {scenario.name}"
    context.ota = Runtime(config, name=name, record=True)
    if no_engine:
        scenario.skip(no_engine)
    shutil.rmtree(context.ota.artifacts, ignore_errors=True)
    # `@embedded:<flow>` marks scenarios that need server-side control of that flow.
    for tag in scenario.effective_tags:
        flow = tag.removeprefix("embedded:")
        if flow != tag and not config.target(flow).embedded:
            scenario.skip(f"needs server-side control of {flow}, which runs against "
                          f"{'a docker' if config.target(flow).kind == 'docker' else 'an external'}"
                          " target")
    log.info("scenario %r: seed %d (replay with -D seed=%d), %s time", name, context.ota.seed,
             context.ota.seed, "virtual" if context.ota.virtual else "real")


def before_step(context, step) -> None:
    context.ota_step = step
    _note_step(context, step, "begins")


def after_step(context, step) -> None:
    _note_step(context, step, step.status.name)


def _note_step(context, step, what: str) -> None:
    """A step boundary on the timeline: the scenario's own steps only (a declarative step's
    detailed steps, and a "soon" step's retries, run inside it)."""
    runtime: Runtime | None = getattr(context, "ota", None)
    scenario = getattr(context, "scenario", None)
    if runtime is None or runtime.recorder is None or scenario is None:
        return
    if any(step is own for own in scenario.all_steps):
        runtime.recorder.note("scenario", "step", f"{what}: {step.keyword} {step.name}")


def after_scenario(context, scenario) -> None:
    runtime: Runtime | None = getattr(context, "ota", None)
    if runtime is None:
        return
    failed = scenario.status.name in ("failed", "error")
    keep_all = failed or runtime.config.keep_artifacts == "all"
    secrets = runtime.issued_secrets() or SecretSet()
    failure = _failure(scenario, runtime) if failed else None
    if failure is not None and runtime.recorder is not None:
        runtime.recorder.note(failure["device"] or "scenario", "failure", failure["reason"])
    if keep_all:
        _copy_logs(runtime, secrets)
    try:
        leftovers = runtime.close()
    finally:
        context.ota = None
        _write_record(runtime, secrets, keep_all)
        for secret in secrets:
            context.ota_secrets.add(secret)
    if failure is not None:
        _explain(scenario, runtime, failure, secrets, context.ota_explanations)
    if scenario.status.name != "skipped":
        context.ota_outcomes.append((scenario.feature, scenario, _properties(runtime, keep_all)))
    if leftovers:
        raise AssertionError("scenario left things running: " + "; ".join(leftovers))


def _copy_logs(runtime: Runtime, secrets: SecretSet) -> None:
    """The services' logs into the artifact folder (the broker's without the harness's barrier
    traffic), secrets masked; the TLS key log as it is, for Wireshark (session secrets only)."""
    runtime.artifacts.mkdir(parents=True, exist_ok=True)
    for name, log_path in runtime.log_files().items():
        if not log_path.exists():
            continue
        target = runtime.artifacts / f"{name}.log"
        if name == "tls-keys":
            shutil.copy(log_path, target)
            continue
        lines = log_path.read_text(errors="replace").splitlines(keepends=True)
        target.write_text(redact("".join(line for line in lines if not _BARRIER.search(line)),
                                 secrets))


def _write_record(runtime: Runtime, secrets: SecretSet, keep_all: bool) -> None:
    """timeline.jsonl always; timeline.txt and transcripts when the folder is kept whole, and
    then every file in it masked."""
    if runtime.recorder is None:
        return
    if keep_all:
        runtime.recorder.write(runtime.artifacts, secrets)
        for path in sorted(runtime.artifacts.rglob("*")):
            if path.is_file() and path.name != "tls-keys.log":
                scrub_file(path, secrets)
    else:
        runtime.recorder.write_timeline_jsonl(runtime.artifacts, secrets)
        # what the servers left (state a report may read, e.g. FUOTA campaigns) keeps no secret
        for path in sorted(runtime.artifacts.rglob("*")):
            if path.is_file() and path.name != "timeline.jsonl":
                scrub_file(path, secrets)


# -- failures ------------------------------------------------------------------------------------


def _failure(scenario, runtime: Runtime) -> dict:
    """The failing step, its deepest reason, and the device it names."""
    step = next((s for s in scenario.all_steps if s.status.name in ("failed", "error")), None)
    if step is None:  # a hook failed (e.g. things left running)
        text = getattr(scenario, "error_message", None) or "a hook failed"
        return {"step": None, "inner": None, "reason": _deepest_reason(text), "device": None,
                "location": str(scenario.location)}
    message = step.error_message or (str(step.exception) if step.exception else step.status.name)
    if runtime.recorder is not None:  # device addresses as the scenario's names
        message = runtime.recorder.names_in(message)
    inner = _innermost_substep(message)
    reason = _deepest_reason(message)
    return {"step": f"{step.keyword} {step.name}", "inner": inner, "reason": reason,
            "device": _device_named(runtime, f"{step.name} {inner}", reason),
            "location": str(step.location)}


def _device_named(runtime: Runtime, steps: str, reason: str) -> str | None:
    """The device a failure is about: a device of the runtime the steps or reason name, else one
    they call a device (`device "lamp1"`, a device behind a gateway), else the steps' first quoted
    name (not the reason's: there a quoted name is as often a file or a value)."""
    text = f"{steps} {reason}"
    for name in runtime.devices:
        if re.search(rf"(?<![\w-]){re.escape(name)}(?![\w-])", text):
            return name
    called = re.search(r"\b(?:device|router|tracker|station|gateway)s? [\"`']?([\w.-]+)", text)
    if called and called[1] not in ("is", "runs", "of", "the", "a"):
        return called[1]
    quoted = re.search(r"[\"`]([\w.-]+)[\"`]", steps)
    return quoted[1] if quoted else None


def _innermost_substep(message: str) -> str | None:
    found = re.findall(r"(?:FAILED|ERROR) SUB-STEP: (.+)", message)
    return found[-1].strip() if found else None


# An exception's own line in a traceback (`FileNotFoundError: no file …`, a bare `KeyError`):
# frames start with `File "`, and code lines never with an exception's name and a colon.
_EXCEPTION_LINE = re.compile(r"[A-Za-z_][\w.]*(?:Error|Exception|Exit|Interrupt|Warning)(?::\s|$)")


def _deepest_reason(message: str) -> str:
    """What the innermost failing check said: declarative steps nest the detailed ones, and
    behave repeats each level's message."""
    lines = [line.strip() for line in message.splitlines() if line.strip()]
    asserted = [index for index, line in enumerate(lines)
                if line.removeprefix("Substep info: ").startswith("ASSERT FAILED: ")]
    for index in reversed(asserted):
        text = lines[index].removeprefix("Substep info: ").removeprefix("ASSERT FAILED: ")
        if text.startswith("ERROR SUB-STEP:"):
            # a nested step raised: its exception, not the name of the step that raised it
            return next((later for later in lines[index + 1:] if _EXCEPTION_LINE.match(later)),
                        text)
        if not text.startswith("FAILED SUB-STEP:"):
            return text
    if lines and lines[0].startswith("Traceback"):
        return lines[-1]  # an error: the exception's own line
    return lines[0].removeprefix("ASSERT FAILED: ") if lines else "failed"


def _explain(scenario, runtime: Runtime, failure: dict, secrets: SecretSet,
             explanations: list[str]) -> None:
    """The reason for the console, whatever the formatter (progress prints none: printed at the
    end of the run, not inside the formatter's lines), and the seed and artifact folder appended
    to the step's message (JUnit, the parallel run's summary)."""
    folder = runtime.artifacts
    tail = (f"seed {runtime.seed}: replay with -D seed={runtime.seed}; artifacts in {folder}"
            f" (timeline.txt, transcripts/)")
    reason = redact(failure["reason"], secrets)
    shown = reason if len(reason) <= REASON_SHOWN else reason[:REASON_SHOWN] + " …"
    lines = [f"FAILED {scenario.location}  {scenario.name}"]
    if failure["step"]:
        lines.append(f"  step:      {failure['step']}  ({failure['location']})")
    if failure["inner"] and failure["inner"] != failure["step"]:
        lines.append(f"  checked:   {failure['inner']}")
    if failure["device"]:
        lines.append(f"  device:    {failure['device']}")
    lines.append(f"  reason:    {shown}")
    lines.append(f"  {tail}")
    explanations.append("\n".join(lines))
    step = next((s for s in scenario.all_steps if s.status.name in ("failed", "error")), None)
    if step is not None and step.error_message:
        step.error_message = redact(step.error_message, secrets) + f"\n{tail}"


def _properties(runtime: Runtime, kept_all: bool) -> dict[str, str]:
    """A scenario's JUnit properties: its seed and the paths of what it kept."""
    folder = runtime.artifacts
    properties = {"seed": str(runtime.seed), "artifacts": str(folder)}
    kept = {"timeline": "timeline.jsonl", "timeline_text": "timeline.txt",
            "transcripts": "transcripts"}
    for key, name in kept.items():
        if (folder / name).exists():
            properties[key] = str(folder / name)
    return properties


def after_all(context) -> None:
    """JUnit: each scenario's seed and artifact paths as test case properties, and no secret any
    scenario issued. Then the library steps closest to each undefined step (behave's snippets
    follow)."""
    from otaharness.bdd.catalogue import did_you_mean

    _complete_junit(context)
    explanations = getattr(context, "ota_explanations", [])
    if explanations:
        # sys.__stderr__: behave may be capturing the hooks' output, and this is for the reader
        sys.__stderr__.write("\n".join(explanations) + "\n")
        sys.__stderr__.flush()
    runner = getattr(context, "_runner", None)
    undefined = getattr(runner, "undefined_steps", None)
    if undefined:
        # sys.__stderr__: behave may be capturing the hooks' output, and this is for the reader
        sys.__stderr__.write(did_you_mean(undefined, runner.step_registry))
        sys.__stderr__.flush()


def _complete_junit(context) -> None:
    """behave writes a feature's JUnit file when the feature ends, before after_all: add the
    properties to its test cases (matched by name, in order) and mask every secret in it."""
    import xml.etree.ElementTree as ET

    outcomes = getattr(context, "ota_outcomes", None)
    config = context.config
    if not outcomes or not getattr(config, "junit", False):
        return
    reporters = [r for r in getattr(config, "reporters", ()) if hasattr(r, "make_feature_filename")]
    if not reporters:
        return
    by_file: dict[Path, list[tuple[str, dict]]] = {}
    for feature, scenario, properties in outcomes:
        name = f"TESTS-{reporters[0].make_feature_filename(feature)}.xml"
        by_file.setdefault(Path(config.junit_directory) / name, []).append((scenario.name, properties))
    for path, cases in by_file.items():
        if not path.exists():
            continue
        tree = ET.parse(path)
        testcases = list(tree.getroot().iter("testcase"))
        for name, properties in cases:
            case = next((c for c in testcases if c.get("name") == name), None)
            if case is None:
                continue
            testcases.remove(case)
            element = ET.Element("properties")
            for key, value in properties.items():
                ET.SubElement(element, "property", name=key, value=value)
            case.insert(0, element)
        tree.write(path, encoding="UTF-8", xml_declaration=True)
        scrub_file(path, context.ota_secrets)

"""docs/then-steps.md classifies every Then-step of the step library by what it reads (device,
wire, server record, scenario): a step added without a row, or a row left for a step that is
gone, fails here, so new steps get classified (issue #15)."""

import re
from pathlib import Path

from behave.step_registry import registry

from otaharness.bdd import STEP_LIBRARY, load_step_library

DOC = Path(__file__).resolve().parents[2] / "docs" / "then-steps.md"  # the checkout's docs (tests may run on the installed wheel)
# | `` pattern `` | source | why |   or, for a regular-expression step,   | `` example `` (`function`) | …
ROW = re.compile(r"^\| `` (?P<step>.+?) `` (?:\(`(?P<function>\w+)`\) )?\| (?P<source>[^|]+?) \| (?P<why>[^|]*?) \|$")
SOURCES = {"device", "wire", "server record", "scenario"}


def _rows() -> list[dict]:
    rows = [match.groupdict() for line in DOC.read_text().splitlines() if (match := ROW.match(line))]
    assert rows, f"{DOC} has no step rows"
    return rows


def _library_then_steps() -> list[tuple[str, str, bool]]:
    """(pattern, function name, is a regular expression) of every @then in steps/*.py."""
    load_step_library()
    steps = []
    for matcher in registry.steps["then"]:
        if Path(matcher.func.__code__.co_filename).resolve().parent != STEP_LIBRARY:
            continue
        steps.append((matcher.pattern, matcher.func.__name__, "regex" in type(matcher).__name__.lower()))
    return steps


def test_every_then_step_has_a_row():
    rows = _rows()
    patterns = {row["step"] for row in rows if row["function"] is None}
    functions = {row["function"] for row in rows if row["function"]}
    unlisted = [f"{function}: {pattern}" for pattern, function, is_regex in _library_then_steps()
                if (function not in functions if is_regex else pattern not in patterns)]
    assert not unlisted, f"Then-steps without a row in {DOC.name} (say what each reads):\n" + "\n".join(unlisted)


def test_no_row_for_a_step_that_is_gone():
    steps = _library_then_steps()
    patterns = {pattern for pattern, _, is_regex in steps if not is_regex}
    functions = {function for _, function, is_regex in steps if is_regex}
    stale = [row["step"] for row in _rows()
             if (row["function"] not in functions if row["function"] else row["step"] not in patterns)]
    assert not stale, f"rows in {DOC.name} for steps that no longer exist: {stale}"


def test_every_row_names_its_sources_and_why():
    for row in _rows():
        sources = {part.strip() for part in row["source"].split("+")}
        assert sources <= SOURCES, f"{row['step']}: unknown source {row['source']!r} (one of {sorted(SOURCES)})"
        assert row["why"].strip(), f"{row['step']}: say what it reads (and why, for a server record)"

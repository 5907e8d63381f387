"""The step catalogue: every registered step with its flow, docstring and an example line taken
from a feature file that uses it; word search over it; and "did you mean" for undefined steps.

Used by ``otaharness steps`` and by the ``after_all`` hook (``otaharness.bdd.environment``).
"""

from __future__ import annotations

import difflib
import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Iterable

from otaharness.bdd import STEP_LIBRARY

STEP_TYPES = ("given", "when", "then", "step")
FEATURES = STEP_LIBRARY.parent / "features"  # in a checkout, steps/ sits beside features/


@dataclass
class StepEntry:
    keyword: str  # Given / When / Then / Step
    pattern: str
    doc: str  # the docstring on one line
    flow: str  # the step module's name: "common", "aws_iot", … or the user's own module
    location: str  # file:line of the step function
    example: str = ""  # a step line of a feature that uses it, e.g. "When 30 minutes pass"
    example_at: str = ""  # feature:line of that example
    regex: str = ""  # a regular-expression step's expression (its pattern is then its doc's example)

    @property
    def text(self) -> str:
        return f"{self.keyword} {self.pattern}"

    def as_dict(self) -> dict[str, str]:
        return asdict(self)


def _location(matcher) -> tuple[str, str]:
    """(flow, file:line) of a step function: the library's modules are named after their file."""
    code = matcher.func.__code__
    path = Path(code.co_filename)
    try:
        shown = path.resolve().relative_to(STEP_LIBRARY.parent)
    except ValueError:
        shown = path
    return path.stem, f"{shown}:{code.co_firstlineno}"


_DOC_EXAMPLE = re.compile(r"`([^`]+)`")


def registered_steps(registry=None) -> list[StepEntry]:
    """The steps behave knows now (ours and any the user registered), in registration order. A
    regular-expression step shows as its pattern the first `example` of its docstring that it
    matches (one entry per distinct example shown; an expression with no example of its own is
    left out when another of its step's is listed)."""
    if registry is None:
        from behave.step_registry import registry
    entries, seen, listed = [], set(), set()
    for step_type in STEP_TYPES:
        for matcher in registry.steps.get(step_type, []):
            flow, where = _location(matcher)
            doc = " ".join((matcher.func.__doc__ or "").split())
            pattern, regex = matcher.pattern, ""
            if "regex" in type(matcher).__name__.lower():
                examples = [e for e in _DOC_EXAMPLE.findall(doc) if matcher.match(e)]
                if not examples and (step_type, where) in listed:
                    continue  # another expression of the same step is listed with an example
                pattern, regex = (examples[0] if examples else matcher.pattern), matcher.pattern
            key = (step_type, pattern, where)
            if key in seen:
                continue
            seen.add(key)
            listed.add((step_type, where))
            entries.append(StepEntry(step_type.capitalize(), pattern, doc, flow, where, regex=regex))
    return entries


def add_examples(entries: list[StepEntry], feature_dirs: Iterable[Path], registry=None) -> None:
    """Give each entry the first step line (in file order) of these features that it matches;
    the step a ``soon …`` line retries counts as used too."""
    from behave.model import Step
    from behave.parser import parse_file

    if registry is None:
        from behave.step_registry import registry
    by_func = {}  # (step function, keyword) -> entry
    for entry in entries:
        by_func.setdefault((entry.location, entry.keyword.lower()), entry)
    files = sorted({p.resolve() for folder in feature_dirs if folder.is_dir()
                    for p in folder.rglob("*.feature")})
    for path in files:
        try:
            feature = parse_file(str(path))
        except Exception:  # a user's feature that does not parse is not ours to report here
            continue
        if feature is None:
            continue
        for step in _all_steps(feature):
            lines = [(step.step_type, step.name)]
            retried = re.match(r"soon (.+)", step.name)
            if retried:
                lines.append((step.step_type, retried[1]))
            for step_type, name in lines:
                probe = Step(step.filename, step.line, step.keyword, step_type, name)
                matcher = registry.find_step_definition(probe)
                entry = None if matcher is None else by_func.get(
                    (_location(matcher)[1], matcher.step_type))
                if entry is not None and not entry.example:
                    entry.example = f"{step_type.capitalize()} {name}"
                    entry.example_at = f"{_shown(path)}:{step.line}"


def _shown(path: Path) -> str:
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def _all_steps(feature):
    for scenario in feature.walk_scenarios(with_outlines=True):
        yield from scenario.background_steps
        yield from scenario.steps


def catalogue(feature_dirs: Iterable[Path] = ()) -> list[StepEntry]:
    """The whole step library with examples from our features, the working directory's
    `features/` (a user's own) and the given folders."""
    from otaharness.bdd import load_step_library

    load_step_library()
    user_dirs = [Path("features"), *feature_dirs]
    load_user_steps(user_dirs)
    entries = registered_steps()
    add_examples(entries, [FEATURES, *user_dirs])
    return entries


def load_user_steps(feature_dirs: Iterable[Path]) -> None:
    """Register a user's own steps (``<features>/steps/*.py``) as behave does before a run, so
    the catalogue lists them beside ours; a file already executed is not executed again."""
    from behave.runner_util import exec_file

    for folder in feature_dirs:
        for path in sorted((folder / "steps").glob("*.py")):
            path = path.resolve()
            if path.parent == STEP_LIBRARY or path in _EXECUTED_USER_STEPS:
                continue
            _EXECUTED_USER_STEPS.add(path)
            exec_file(str(path), {"__file__": str(path), "__name__": path.stem})


_EXECUTED_USER_STEPS: set[Path] = set()


# -- word search ---------------------------------------------------------------------------------

_WORD = re.compile(r"[a-z0-9]+")
def stem(word: str) -> str:
    """A light stemmer: `uploads`, `uploaded`, `uploading` → `upload`; `resume`, `resumed` →
    `resum`; `passes` → `pass`; words of three letters or fewer stay."""
    word = word.lower()
    if word.endswith("es") and word[:-2].endswith(("s", "x", "z", "ch", "sh")):
        word = word[:-2]
    else:
        for suffix in ("ing", "ed", "s"):
            if word.endswith(suffix) and len(word) - len(suffix) >= 3 and not word.endswith("ss"):
                word = word[: -len(suffix)]
                break
    if word.endswith("e") and len(word) > 3:
        word = word[:-1]
    return word


def _stems(text: str) -> list[str]:
    return [stem(w) for w in _WORD.findall(text.lower())]


def search(entries: list[StepEntry], words: str) -> list[StepEntry]:
    """Entries where every word matches (as a stem, at the start of a word) the pattern, the
    docstring or the flow; best first: a word in the pattern counts three times one in the doc
    or the example line."""
    query = _stems(words)
    if not query:
        return list(entries)
    ranked = []
    for index, entry in enumerate(entries):
        pattern = _stems(entry.pattern + " " + entry.flow)
        doc = _stems(entry.doc + " " + entry.example.partition(" ")[2])
        score = 0
        for word in query:
            in_pattern = sum(1 for w in pattern if w.startswith(word))
            in_doc = sum(1 for w in doc if w.startswith(word))
            if not in_pattern and not in_doc:
                break
            score += 3 * min(in_pattern, 2) + min(in_doc, 2)
        else:
            ranked.append((-score, len(entry.pattern), index, entry))
    return [entry for *_, entry in sorted(ranked, key=lambda r: r[:3])]


# -- did you mean --------------------------------------------------------------------------------

_PLACEHOLDER = re.compile(r"\{[^{}]*\}")
_VALUE = re.compile(r'"[^"]*"|`[^`]*`|\b\d+(?:\.\d+)?\b')


def _shape(text: str) -> str:
    """Step text with its values (quoted names, numbers) and placeholders made alike."""
    return _VALUE.sub("_", _PLACEHOLDER.sub("_", text)).lower()


def closest_steps(step_type: str, text: str, entries: list[StepEntry], n: int = 3) -> list[StepEntry]:
    """The n steps most like an undefined step line, whatever their keyword: the likeness of
    the text (values and placeholders made alike) plus the share of its words the step has."""
    shape = _shape(text)
    words = set(_stems(_VALUE.sub(" ", text)))
    scored = []
    for index, entry in enumerate(entries):
        forms = [entry.pattern] + ([entry.example.split(" ", 1)[1]] if entry.example else [])
        likeness = max(difflib.SequenceMatcher(None, shape, _shape(form)).ratio() for form in forms)
        known = set(_stems(" ".join(forms)))
        shared = len(words & known) / len(words) if words else 0.0
        score = likeness + 0.5 * shared
        if entry.keyword.lower() in (step_type, "step"):
            score += 0.02  # the same keyword breaks near-ties
        scored.append((-score, index, entry))
    return [entry for *_, entry in sorted(scored, key=lambda s: s[:2])[:n]]


def did_you_mean(undefined_steps, registry=None) -> str:
    """A "did you mean" block for behave's undefined steps (each line once), or ""."""
    entries = registered_steps(registry)
    if not entries:
        return ""
    add_examples(entries, [FEATURES, Path("features")], registry)
    blocks, seen = [], set()
    for step in undefined_steps:
        key = (step.step_type, step.name)
        if key in seen:
            continue
        seen.add(key)
        lines = [f"Undefined step: {step.keyword.strip()} {step.name}"
                 f"  ({step.filename}:{step.line})", "  did you mean:"]
        for entry in closest_steps(step.step_type, step.name, entries):
            lines.append(f"    {entry.text}    ({entry.location})")
            if entry.example:
                lines.append(f"        e.g. {entry.example}")
        blocks.append("\n".join(lines))
    return "\n".join(blocks) + "\n" if blocks else ""


# -- output --------------------------------------------------------------------------------------


def by_flow(entries: list[StepEntry]) -> dict[str, list[StepEntry]]:
    grouped: dict[str, list[StepEntry]] = {}
    for entry in entries:
        grouped.setdefault(entry.flow, []).append(entry)
    return grouped


def format_text(entries: list[StepEntry], grouped: bool = True) -> str:
    out = []
    groups = by_flow(entries) if grouped else {"": entries}
    for flow, flow_entries in groups.items():
        if flow:
            out.append(f"== {flow} ==")
        for entry in flow_entries:
            out.append(f"{entry.keyword:5} {entry.pattern}")
            if entry.doc:
                out.append(f"      {entry.doc}")
            if entry.example:
                out.append(f"      e.g. {entry.example}    ({entry.example_at})")
            out.append(f"      ({entry.location})")
        out.append("")
    return "\n".join(out)


def format_markdown(entries: list[StepEntry], grouped: bool = True) -> str:
    out = ["# Step library", ""]
    groups = by_flow(entries) if grouped else {"Matches": entries}
    for flow, flow_entries in groups.items():
        out += [f"## {flow}", ""]
        for entry in flow_entries:
            out.append(f"- **{entry.keyword}** `{entry.pattern}` — {entry.doc}".rstrip(" —"))
            if entry.example:
                out.append(f"  e.g. `{entry.example}` ({entry.example_at})")
        out.append("")
    return "\n".join(out)

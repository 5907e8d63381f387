"""What happened in a scenario, in scenario time, per device and per server.

A :class:`Recorder` belongs to a scenario's runtime (``Runtime(record=True)``, which the behave
hooks use). Servers, emulators and the link proxy report to it through two module functions, one
call per event or exchange, each a no-op when no recorder is attached (``serve``, ``emulate``,
benchmarks outside scenarios):

* :func:`note` ``(actor, kind, text)``: a line of the timeline (a session opened, a download
  cut, a state reached);
* :func:`exchange` ``(actor, peer, what, body, decode)``: a message of the actor's transcript (a
  SOAP body, an MQTT publish, an HTTP request and its answer). The body is kept as it came and
  only decoded and redacted when the scenario's artifacts are written, so recording costs a
  tuple in a bounded deque.

At the end of a scenario the recorder writes ``timeline.jsonl`` (one JSON object a line:
``{"t", "actor", "kind", "text"}``, ``t`` in seconds since the scenario began), ``timeline.txt``
(the same, for people: in order, then per actor) and ``transcripts/<actor>.txt``. Everything
written goes through the one redactor (``otaharness.runtime.redaction``).
"""

from __future__ import annotations

import itertools
import json
import re
from collections import defaultdict, deque
from collections.abc import Callable
from pathlib import Path
from typing import Any

from otaharness.runtime.redaction import SecretSet, redact

EVENTS_KEPT = 20_000          # timeline lines kept (the oldest go first; steps are always kept)
EXCHANGES_KEPT = 2_000        # transcript entries kept per actor
BODY_SHOWN = 16_384           # characters of one body written out
STEP_KINDS = ("step", "failure")


class Recorder:
    """A scenario's timeline and transcripts, in memory until :meth:`write`."""

    def __init__(self, clock: Any, *, device_of: Callable[[str], str] = str) -> None:
        self.clock = clock
        self.started = clock.monotonic()
        self.device_of = device_of  # a device's source address -> its scenario name
        # (t, order, actor, kind, text): the order keeps events of one moment as they came
        self.events: deque[tuple[float, int, str, str, str]] = deque(maxlen=EVENTS_KEPT)
        self.steps: list[tuple[float, int, str, str, str]] = []  # step boundaries and failures
        self._order = itertools.count()
        self.exchanges: dict[str, deque] = defaultdict(lambda: deque(maxlen=EXCHANGES_KEPT))
        self.events_seen = 0

    def now(self) -> float:
        return self.clock.monotonic() - self.started

    def note(self, actor: str, kind: str, text: str) -> None:
        entry = (self.now(), next(self._order), actor, kind, text)
        if kind in STEP_KINDS:
            self.steps.append(entry)
        else:
            self.events_seen += 1
            self.events.append(entry)

    def exchange(self, actor: str, peer: str, what: str, body: Any = None,
                 decode: Callable[[Any], str] | None = None) -> None:
        if decode is None and isinstance(body, (bytes, str)) and len(body) > BODY_SHOWN:
            body = _Cut(body[:BODY_SHOWN], len(body))  # an uploaded image is not kept whole
        self.exchanges[actor].append((self.now(), peer, what, body, decode))

    # -- reading ------------------------------------------------------------------------------
    def timeline(self, secrets: SecretSet | None = None) -> list[dict[str, Any]]:
        """Every kept event in order, names resolved and redacted."""
        merged = sorted([*self.events, *self.steps], key=lambda entry: entry[:2])
        return [{"t": round(t, 6), "actor": self.name_of(actor), "kind": kind,
                 "text": _one_line(redact(self.names_in(text), secrets))}
                for t, _, actor, kind, text in merged]

    def name_of(self, peer: str) -> str:
        """A device's scenario name for its address (``127.1.0.1`` or ``127.1.0.1:40312``)."""
        name = self.device_of(peer)
        if name == peer and ":" in peer:
            host = peer.rsplit(":", 1)[0]
            return self.device_of(host) if self.device_of(host) != host else peer
        return name

    def names_in(self, text: str) -> str:
        """Device source addresses (127.1.x.y) shown as the scenario's device names."""
        return _ADDRESS.sub(lambda m: self.name_of(m[0]), text)

    def transcript(self, actor: str, secrets: SecretSet | None = None) -> str:
        lines = []
        for t, peer, what, body, decode in self.exchanges.get(actor, ()):
            lines.append(f"[{_clock(t)}] {self.name_of(peer)}  {self.names_in(what)}")
            text = _body_text(body, decode)
            if text:
                lines += ["    " + line for line in text.splitlines()]
            lines.append("")
        dropped = "" if len(self.exchanges[actor]) < EXCHANGES_KEPT else \
            f"(only the last {EXCHANGES_KEPT} exchanges are kept)\n\n"
        return redact(dropped + "\n".join(lines), secrets)

    # -- writing ------------------------------------------------------------------------------
    def write_timeline_jsonl(self, folder: Path, secrets: SecretSet | None = None) -> Path:
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / "timeline.jsonl"
        with path.open("w") as out:
            for event in self.timeline(secrets):
                out.write(json.dumps(event) + "\n")
        return path

    def write(self, folder: Path, secrets: SecretSet | None = None) -> list[Path]:
        """timeline.jsonl, timeline.txt and transcripts/<actor>.txt into ``folder``."""
        written = [self.write_timeline_jsonl(folder, secrets)]
        events = self.timeline(secrets)
        text = folder / "timeline.txt"
        text.write_text(format_timeline(events, dropped=self.events_seen - len(self.events)))
        written.append(text)
        for actor in sorted(self.exchanges):
            path = folder / "transcripts" / f"{_file_name(actor)}.txt"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(self.transcript(actor, secrets))
            written.append(path)
        return written


_ADDRESS = re.compile(r"\b127\.1\.\d{1,3}\.\d{1,3}(?::\d+)?\b")


def format_timeline(events: list[dict[str, Any]], *, dropped: int = 0) -> str:
    """The timeline for people: everything in order, then one section per actor."""
    width = max((len(event["actor"]) for event in events), default=5)
    lines = ["Scenario timeline: seconds of scenario time since the scenario began.", ""]
    if dropped:
        lines += [f"({dropped} earlier events were not kept; steps all are.)", ""]
    for event in events:
        lines.append(f"{_clock(event['t'])}  {event['actor']:<{width}}  {event['kind']:<8} "
                     f"{event['text']}")
    by_actor: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for event in events:
        if event["kind"] not in STEP_KINDS:
            by_actor[event["actor"]].append(event)
    for actor in sorted(by_actor):
        lines += ["", f"== {actor} =="]
        lines += [f"{_clock(event['t'])}  {event['kind']:<8} {event['text']}"
                  for event in by_actor[actor]]
    return "\n".join(lines) + "\n"


def _clock(seconds: float) -> str:
    return f"{seconds:10.3f}"


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def _file_name(actor: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", actor).strip("-.") or "actor"


class _Cut:
    """The beginning of a long body, and how long it was."""

    __slots__ = ("head", "length")

    def __init__(self, head: bytes | str, length: int) -> None:
        self.head, self.length = head, length


def _body_text(body: Any, decode: Callable[[Any], str] | None) -> str:
    if body is None:
        return ""
    if isinstance(body, _Cut):
        shown = _body_text(body.head, None)
        if shown.startswith("(") and shown.endswith("bytes of binary)"):
            return f"({body.length} bytes of binary)"
        return shown + f"\n… ({body.length - len(body.head)} more)"
    try:
        text = decode(body) if decode is not None else body
    except Exception as error:  # noqa: BLE001 - a transcript never fails a scenario; say what it could not read
        return f"(not decoded: {error})"
    if isinstance(text, (bytes, bytearray, memoryview)):
        raw = bytes(text)
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            return f"({len(raw)} bytes of binary)"
        if "\x00" in text:
            return f"({len(raw)} bytes of binary)"
    text = _indented_xml(str(text))
    if len(text) > BODY_SHOWN:
        text = text[:BODY_SHOWN] + f"\n… ({len(text) - BODY_SHOWN} more characters)"
    return text


_XML_TOKEN = re.compile(r"<[^>]*>|[^<]+")


def _indented_xml(text: str) -> str:
    """A SOAP body one element a line (an element holding only text on one line), for reading:
    display only, nothing parsed or expanded; anything else, or XML with a DTD or comments, as
    it came."""
    if not text.lstrip().startswith("<") or "<!" in text:
        return text
    tokens = _XML_TOKEN.findall(text.strip())
    lines, depth, index = [], 0, 0
    while index < len(tokens):
        token = tokens[index]
        if token.startswith("</"):
            depth = max(depth - 1, 0)
            lines.append("  " * depth + token)
        elif token.startswith("<?"):
            lines.append(token)
        elif token.startswith("<"):
            following = tokens[index + 1:index + 3]
            if len(following) == 2 and not following[0].startswith("<") \
                    and following[1].startswith("</"):
                lines.append("  " * depth + token + following[0] + following[1])  # <a>text</a>
                index += 3
                continue
            if following and following[0].startswith("</") and not token.endswith("/>"):
                lines.append("  " * depth + token + following[0])  # <a></a>
                index += 2
                continue
            lines.append("  " * depth + token)
            if not token.endswith("/>"):
                depth += 1
        elif token.strip():
            lines.append("  " * depth + token.strip())
        index += 1
    return "\n".join(lines)


# -- the hooks servers and emulators call ---------------------------------------------------------

_active: Recorder | None = None


def attach(recorder: Recorder | None) -> None:
    """Make ``recorder`` the one the hooks report to (``None``: none); the runtime owns it."""
    global _active
    _active = recorder


def detach(recorder: Recorder) -> None:
    """Stop reporting to ``recorder`` if the hooks still do."""
    global _active
    if _active is recorder:
        _active = None


def recording() -> bool:
    """Whether a recorder listens (to skip building an expensive text otherwise)."""
    return _active is not None


def note(actor: str, kind: str, text: str) -> None:
    """A timeline line of ``actor`` (a device's or server's scenario name, or a device's source
    address, resolved when written)."""
    recorder = _active
    if recorder is not None:
        recorder.note(actor, kind, text)


def exchange(actor: str, peer: str, what: str, body: Any = None,
             decode: Callable[[Any], str] | None = None) -> None:
    """A message of ``actor``'s transcript with ``peer`` (a name or a source address): ``what``
    is its heading (``→ POST /cwmp``, ``← 200``, ``PUBLISH $aws/things/t1/jobs/get``), ``body`` the
    message as it came, ``decode`` turns it into text when the transcript is written."""
    recorder = _active
    if recorder is not None:
        recorder.exchange(actor, peer, what, body, decode)

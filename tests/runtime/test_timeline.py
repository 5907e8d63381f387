"""The scenario recorder: the hooks are no-ops without one, keep bounded memory with one, and write
timeline.jsonl (the HTML report's contract), timeline.txt and transcripts, names resolved and
secrets redacted."""

import json

from otaharness.runtime import timeline
from otaharness.runtime.clock import VirtualClock
from otaharness.runtime.redaction import MARK, SecretSet
from otaharness.runtime.timeline import EVENTS_KEPT, EXCHANGES_KEPT, Recorder


def _recorder():
    clock = VirtualClock()
    names = {"127.1.0.1": "cpe1"}
    recorder = Recorder(clock, device_of=lambda address: names.get(address, address))
    return clock, recorder


def test_hooks_do_nothing_without_a_recorder():
    timeline.attach(None)
    assert not timeline.recording()
    timeline.note("acs", "session", "nobody listens")  # no error, nothing kept anywhere
    timeline.exchange("acs", "127.1.0.1", "→ POST /", b"<soap/>")


def test_the_timeline_in_scenario_time_names_resolved_and_redacted(tmp_path):
    clock, recorder = _recorder()
    timeline.attach(recorder)
    try:
        timeline.note("scenario", "step", "begins: Given a router")
        clock._now += 30.5  # the clock's own reading moves as a jump would move it
        timeline.note("acs", "http", "127.1.0.1:40312 POST / → 200")
        timeline.note("127.1.0.1", "state", "installed Authorization: Bearer abcdefghijklmnop12345")
        timeline.exchange("acs", "127.1.0.1", "→ POST /", b"<Inform/>")
        timeline.exchange("acs", "127.1.0.1", "← 200", bytes(range(256)))
        timeline.exchange("aws-iot", "127.1.0.1:5555", "→", ("topic", b"payload"),
                          lambda item: f"PUBLISH {item[0]}\n{item[1].decode()}")
    finally:
        timeline.detach(recorder)
    secrets = SecretSet()
    written = recorder.write(tmp_path, secrets)
    assert {path.name for path in written} == {"timeline.jsonl", "timeline.txt", "acs.txt",
                                                "aws-iot.txt"}
    events = [json.loads(line) for line in (tmp_path / "timeline.jsonl").read_text().splitlines()]
    assert all(set(event) == {"t", "actor", "kind", "text"} for event in events)
    assert [(e["t"], e["actor"], e["kind"]) for e in events] == [
        (0.0, "scenario", "step"), (30.5, "acs", "http"), (30.5, "cpe1", "state")]
    assert events[1]["text"] == "cpe1 POST / → 200"
    assert "abcdefghijklmnop12345" not in events[2]["text"] and MARK in events[2]["text"]
    human = (tmp_path / "timeline.txt").read_text()
    assert "== cpe1 ==" in human and "== acs ==" in human
    acs = (tmp_path / "transcripts" / "acs.txt").read_text()
    assert "[    30.500] cpe1  → POST /\n    <Inform/>" in acs
    assert "(256 bytes of binary)" in acs
    assert "cpe1  →\n    PUBLISH topic\n    payload" in (tmp_path / "transcripts" / "aws-iot.txt").read_text()


def test_memory_is_bounded_and_steps_are_always_kept(tmp_path):
    _, recorder = _recorder()
    recorder.note("scenario", "step", "begins: Given a fleet")
    for index in range(EVENTS_KEPT + 10):
        recorder.note("acs", "http", f"request {index}")
    for index in range(EXCHANGES_KEPT + 10):
        recorder.exchange("acs", "127.1.0.1", f"→ POST /{index}", b"x")
    assert len(recorder.events) == EVENTS_KEPT
    assert len(recorder.exchanges["acs"]) == EXCHANGES_KEPT
    recorder.write(tmp_path)
    events = (tmp_path / "timeline.jsonl").read_text().splitlines()
    assert json.loads(events[0])["text"] == "begins: Given a fleet"  # the oldest event, kept
    assert "10 earlier events were not kept" in (tmp_path / "timeline.txt").read_text()
    assert f"only the last {EXCHANGES_KEPT} exchanges" in \
        (tmp_path / "transcripts" / "acs.txt").read_text()


def test_soap_bodies_are_shown_one_element_a_line_without_passwords(tmp_path):
    _, recorder = _recorder()
    soap = ("<?xml version='1.0' encoding='UTF-8'?><Envelope><Body><SetParameterValues>"
            "<ParameterValueStruct><Name>Device.ManagementServer.ConnectionRequestPassword</Name>"
            '<Value type="xsd:string">s3cr3t-pw</Value></ParameterValueStruct>'
            "</SetParameterValues></Body></Envelope>")
    recorder.exchange("acs", "127.1.0.1", "← 200", soap.encode())
    recorder.write(tmp_path)
    transcript = (tmp_path / "transcripts" / "acs.txt").read_text()
    assert "\n      <Body>\n" in transcript  # indented, one element a line
    assert "s3cr3t-pw" not in transcript and MARK in transcript


def test_a_long_body_is_kept_only_in_part(tmp_path):
    _, recorder = _recorder()
    recorder.exchange("acs-admin", "127.0.0.1", "→ PUT /files/big.bin", bytes(range(256)) * 4096)
    recorder.exchange("olt", "127.0.0.1", "→ POST /v1/notes", b"a" * (timeline.BODY_SHOWN + 5))
    assert all(len(entry[3].head) == timeline.BODY_SHOWN
               for entries in recorder.exchanges.values() for entry in entries)
    recorder.write(tmp_path)
    assert "(1048576 bytes of binary)" in (tmp_path / "transcripts" / "acs-admin.txt").read_text()
    assert "… (5 more)" in (tmp_path / "transcripts" / "olt.txt").read_text()

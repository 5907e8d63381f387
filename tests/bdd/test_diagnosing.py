"""A deliberately broken scenario in each flow explains itself: its console line (the README's
command, `otaharness run --jobs auto --format progress`), its artifact folder (timeline.jsonl and
timeline.txt in scenario time, transcripts of the exchanges) and its JUnit properties; and no
secret the runtime issued appears in any artifact or JUnit file."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from otaharness.runtime.broker import find_mosquitto
from otaharness.runtime.runtime import slug

pytestmark = pytest.mark.skipif(find_mosquitto() is None and os.environ.get("CI") != "true",
                                reason="Debian mosquitto is not installed (CI installs it)")

# Each flow: a scenario that upgrades a device and then expects a version it was never given:
# (feature, device, the version expected, the version it runs (as the flow's check words it),
# the server whose transcript is checked, a text that transcript holds).
BROKEN = {
    "aws": ("""\
        Feature: broken aws
          Scenario: A tracker is expected on a version it was never given
            Given 2 trackers running version 1.0.0
            And firmware 1.0.1 is available
            When I upgrade t1 to 1.0.1
            Then soon t1 runs version 1.0.2
        """, "t1", "1.0.2", "1.0.1", "aws-iot", "t1"),
    "tr069": ("""\
        @embedded:tr069
        Feature: broken tr069
          Scenario: A router is expected on a version it was never given
            Given a MikroTik router "cpe1" running RouterOS 6.48
            And RouterOS 6.48.4 is available
            When I upgrade cpe1 to version 6.48.4
            Then soon cpe1 runs version 6.48.3
        """, "cpe1", "6.48.3", "6.48.4", "acs", "cpe1"),
    "olt": ("""\
        @embedded:olt
        Feature: broken olt
          Scenario: A device is expected on a version it was never given
            Given a device "lamp1" of type "switch" running version 2.0.0
            And firmware 2.1.0 of 48 KiB is available
            When I upgrade lamp1 to version 2.1.0
            Then soon lamp1 runs version 2.2.0
        """, "lamp1", "2.2.0", "2.1.0", "olt", "lamp1"),
    "cups": ("""\
        @embedded:cups
        Feature: broken cups
          Scenario: A station is expected on a package it was never given
            Given a Basics station "gw1" running package v0
            And firmware v1 is available
            When I upgrade gw1 to version v1
            And 1 day passes
            Then soon gw1 runs version v2
        """, "gw1", "v2", "v1", "cups", "gw1"),
    "fuota": ("""\
        @embedded:fuota
        Feature: broken fuota
          Scenario: A device is expected on a version it was never given
            Given the devices a and b run version 1.0.0
            And firmware 1.1.0 of 3 KiB is available
            When I start a campaign to version 1.1.0 without FEC, a success threshold of 100% and at most 1 round
            Then the campaign ends finished
            And b runs version 1.2.0
        """, "b", "1.2.0", "0x01010000", "fuota", "POST /campaigns"),
}

# The test's own hooks: ours, plus a dump of what the runtime issued, gathered independently of
# the redactor (the running APIs' tokens, the PKI's private keys as files, a station's credential
# files), before teardown.
ENVIRONMENT = '''\
import json, os
from pathlib import Path
from otaharness.bdd import environment as ota_environment
from otaharness.bdd.environment import *  # noqa

def after_scenario(context, scenario):
    runtime = context.ota
    issued = {"tokens": list(runtime.running_tokens().values()), "keys": []}
    pki = getattr(runtime, "_pki", None)
    if pki is not None:
        for path in Path(pki.directory).rglob("*"):
            if path.is_file() and "PRIVATE KEY" in path.read_text(errors="replace"):
                issued["keys"].append(path.read_text())
    # a Basics Station's credential files (client key or token) as the station holds them
    issued["station_credentials"] = [path.read_bytes().hex() for path in runtime.artifacts.rglob("*")
                                     if path.name in ("tc.key", "cups.key")]
    with open(os.environ["ISSUED_SECRETS"], "a") as out:
        out.write(json.dumps(issued) + "\\n")
    ota_environment.after_scenario(context, scenario)
'''


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    root = tmp_path_factory.mktemp("broken")
    features = root / "features"
    (features / "steps").mkdir(parents=True)
    (features / "environment.py").write_text(ENVIRONMENT)
    (features / "steps" / "ota.py").write_text(
        "from otaharness.bdd import load_step_library\nload_step_library()\n")
    for flow, (text, *_rest) in BROKEN.items():
        (features / f"broken_{flow}.feature").write_text(textwrap.dedent(text))
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "CI")}
    env["ISSUED_SECRETS"] = str(root / "issued.jsonl")
    result = subprocess.run([sys.executable, "-m", "otaharness.cli", "run", "--jobs", "auto",
                             "--format", "progress", "-D", "artifacts=all", "features"],
                            check=False, cwd=root, env=env, capture_output=True, text=True,
                            timeout=900)
    return root, result.stdout + result.stderr


def _folder(root: Path, flow: str) -> Path:
    text = textwrap.dedent(BROKEN[flow][0])
    feature = re.search(r"Feature: (.+)", text)[1]
    scenario = re.search(r"Scenario: (.+)", text)[1]
    return root / "reports" / "artifacts" / slug(f"{feature} -- {scenario}")


@pytest.mark.parametrize("flow", list(BROKEN))
def test_the_console_names_the_step_device_expected_and_seen_values_and_artifacts(run, flow):
    root, output = run
    _, device, expected, seen, *_ = BROKEN[flow]
    block = re.search(rf"FAILED features/broken_{flow}\.feature:\d+ .*?(?=\nFAILED |\n\n|\Z)",
                      output, re.DOTALL)
    assert block, output
    text = block[0]
    assert f"device:    {device}" in text, text
    assert expected in text.split("reason:")[0], text  # the failing step says what was expected
    reason = re.search(r"reason:\s+(.+)", text)[1]
    assert device in reason and seen in reason, text  # what the device was seen to run
    assert f"artifacts in reports/artifacts/{_folder(root, flow).name}" in text, text
    assert re.search(r"replay with -D seed=\d+", text), text


@pytest.mark.parametrize("flow", list(BROKEN))
def test_the_artifacts_hold_a_timeline_and_transcripts(run, flow):
    root, _ = run
    folder = _folder(root, flow)
    _, device, expected, _, server, exchanged = BROKEN[flow]
    events = [json.loads(line) for line in (folder / "timeline.jsonl").read_text().splitlines()]
    assert events and all(set(event) == {"t", "actor", "kind", "text"} for event in events)
    assert all(isinstance(event["t"], float) for event in events)
    assert [event["t"] for event in events] == sorted(event["t"] for event in events)
    steps = [event for event in events if event["kind"] == "step"]
    assert steps[0]["text"].startswith("begins: Given"), steps
    assert any(event["text"].startswith("failed: ") and expected in event["text"]
               for event in steps)
    failure = [event for event in events if event["kind"] == "failure"]
    assert len(failure) == 1 and failure[0]["actor"] == device, failure
    assert any(event["actor"] == server for event in events), {e["actor"] for e in events}
    # the device's exchanges carry its scenario name, not its address
    assert not any(re.search(r"\b127\.1\.\d+\.\d+\b", event["text"]) for event in events)
    human = (folder / "timeline.txt").read_text()
    assert f"== {server} ==" in human and "failure" in human
    transcript = (folder / "transcripts" / f"{server}.txt").read_text()
    assert exchanged in transcript
    # the device has a timeline of its own (a device behind an olt gateway: the gateway's)
    own = "gw1" if flow == "olt" else device
    assert any(event["actor"] == own and event["kind"] not in ("step", "failure")
               for event in events), {event["actor"] for event in events}


def test_transcripts_show_each_protocol_and_leave_the_barrier_out(run):
    root, _ = run
    acs = (_folder(root, "tr069") / "transcripts" / "acs.txt").read_text()
    assert "<cwmp:Inform>" in acs and "<cwmp:Download>" in acs
    mqtt = (_folder(root, "aws") / "transcripts" / "aws-iot.txt").read_text()
    assert re.search(r"\] t1  →\n    PUBLISH \$aws/things/\w+/jobs/", mqtt), mqtt[:400]
    assert "otaharness/barrier" not in mqtt
    assert "otabarrier-" not in (_folder(root, "aws") / "broker.log").read_text()
    cups = (_folder(root, "cups") / "transcripts" / "cups.txt").read_text()
    assert "decision for" in cups
    lns = (_folder(root, "cups") / "transcripts" / "lns.txt").read_text()
    assert '"msgtype"' in lns
    olt = (_folder(root, "olt") / "transcripts" / "olt.txt").read_text()
    assert re.search(r"→ (GET|POST|PUT) /", olt)


def test_junit_carries_the_seed_and_the_artifact_paths(run):
    root, _ = run
    for flow in BROKEN:
        tree = ET.parse(root / "reports" / "junit" / f"TESTS-broken_{flow}.xml")
        case = next(tree.getroot().iter("testcase"))
        properties = {p.get("name"): p.get("value") for p in case.iter("property")}
        assert properties["seed"].isdigit()
        assert properties["artifacts"] == str(Path("reports/artifacts") / _folder(root, flow).name)
        assert properties["timeline"].endswith("timeline.jsonl")
        assert (root / properties["transcripts"]).is_dir()


def test_no_secret_the_runtime_issued_is_in_any_artifact_or_junit_file(run):
    root, _ = run
    issued = [json.loads(line) for line in (root / "issued.jsonl").read_text().splitlines()]
    tokens = {token for entry in issued for token in entry["tokens"] if token}
    keys = {key for entry in issued for key in entry["keys"]}
    assert tokens and keys, issued  # the check has something to look for
    key_bodies = {line for key in keys for line in key.splitlines()
                  if line and not line.startswith("-----")}
    credentials = {bytes.fromhex(blob) for entry in issued
                   for blob in entry.get("station_credentials", ())}
    assert credentials, issued  # the CUPS scenario's station has its credential files
    files = [p for p in (root / "reports").rglob("*") if p.is_file()]
    assert any(p.suffix == ".xml" for p in files)
    for path in files:
        data = path.read_bytes()
        for token in tokens:
            assert token.encode() not in data, f"a token in {path}"
        for line in key_bodies:
            assert line.encode() not in data, f"a private key in {path}"
        assert not re.search(rb'response="?[0-9a-f]{32}', data), f"a Digest response in {path}"
        for blob in credentials:
            assert blob not in data, f"a station credential in {path}"
        assert not re.search(rb"PRIVATE KEY-----\s*[A-Za-z0-9+/]{20}", data), f"a PEM key in {path}"


PASSING = """\
@embedded:tr069
Feature: passing tr069
  Scenario: A router takes the new version
    Given a MikroTik router "cpe1" running RouterOS 6.48
    And RouterOS 6.48.4 is available
    When I upgrade cpe1 to version 6.48.4
    Then soon cpe1 runs version 6.48.4
"""


@pytest.mark.parametrize("keep", ["failed", "all"])
def test_a_passed_scenario_keeps_its_timeline_and_with_artifacts_all_everything(tmp_path, keep):
    features = tmp_path / "features"
    (features / "steps").mkdir(parents=True)
    (features / "environment.py").write_text("from otaharness.bdd.environment import *  # noqa\n")
    (features / "steps" / "ota.py").write_text(
        "from otaharness.bdd import load_step_library\nload_step_library()\n")
    (features / "passing.feature").write_text(PASSING)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "CI")}
    result = subprocess.run([sys.executable, "-m", "otaharness.cli", "run", "--format",
                             "progress", "-D", f"artifacts={keep}", "features"], check=False,
                            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "FAILED" not in result.stderr
    folder = tmp_path / "reports" / "artifacts" / slug("passing tr069 -- A router takes the new version")
    assert (folder / "timeline.jsonl").is_file()
    kept_all = (folder / "timeline.txt").is_file() and (folder / "transcripts" / "acs.txt").is_file()
    assert kept_all == (keep == "all"), sorted(p.name for p in folder.iterdir())


def test_the_artifacts_setting_is_checked():
    from otaharness.runtime.targets import ConfigError, load_config

    assert load_config({"artifacts": "all"}).keep_artifacts == "all"
    assert load_config({}).keep_artifacts == "failed"
    assert load_config({"artifacts_dir": "out"}).artifacts_dir == Path("out")
    with pytest.raises(ConfigError, match=r"artifacts: must be one of failed, all, not 'al' "
                                          r"\(did you mean `all`\?\)"):
        load_config({"artifacts": "al"})

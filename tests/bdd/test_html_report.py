"""The run's HTML report without a browser: the builder on its own (parts and artifact folders
made here), the FUOTA campaign report, and `otaharness run` writing the report serially and with
--jobs, also when a scenario fails or a feature's process dies."""

import json
import os
import re
import subprocess
import sys
from html.parser import HTMLParser

import pytest

from otaharness.bdd.report import (
    MARKERS_AS_SVG,
    build_report,
    read_timeline,
    timeline_svg,
)
from otaharness.servers.fuota import (
    CampaignConfig,
    CampaignDevice,
    CampaignState,
    CampaignStore,
    DeviceState,
)
from otaharness.servers.fuota.campaign import DeviceStatus
from otaharness.servers.fuota.report import (
    campaign_plot,
    campaign_report,
    stored_campaign_reports,
)

OTAHARNESS = [sys.executable, "-m", "otaharness.cli"]


class Elements(HTMLParser):
    """The report's elements as (tag, attributes, text inside), nested text included."""

    def __init__(self, page: str) -> None:
        super().__init__()
        self.found: list[list] = []
        self.open: list[list] = []
        self.feed(page)

    def handle_starttag(self, tag, attrs):
        element = [tag, dict(attrs), ""]
        self.found.append(element)
        if tag not in ("meta", "br", "img", "link", "input"):
            self.open.append(element)

    def handle_endtag(self, tag):
        while self.open:
            if self.open.pop()[0] == tag:
                break

    def handle_data(self, data):
        for element in self.open:
            element[2] += data

    def all(self, tag: str, css_classes: str = "") -> list[list]:
        """The ``tag`` elements with every class of ``css_classes`` (space-separated)."""
        wanted = set(css_classes.split())
        return [e for e in self.found if e[0] == tag and wanted <= set((e[1].get("class") or "").split())]


def _part(folder, features):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "part-1.json").write_text(json.dumps({"version": 1, "pid": 1, "features": features}))


def _step(keyword, name, status, start, end, error=""):
    return {"keyword": keyword, "name": name, "line": 3, "status": status, "background": False,
            "error": error, "wall_s": 0.012, "start_t": start, "end_t": end, "text": "", "table": None}


def _scenario(name, status, steps, artifacts=None, devices=None, line=2, capture=None):
    return {"name": name, "line": line, "tags": [], "rule": None, "status": status, "error": "",
            "skip_reason": "", "wall_s": 0.5, "artifacts": None if artifacts is None else str(artifacts),
            "capture": None if capture is None else str(capture), "seed": 42, "virtual": True, "devices": devices or {}, "captured": "",
            "steps": steps}


@pytest.fixture
def run_folder(tmp_path):
    """A run's reports: a failed scenario with a timeline, transcripts and a pcap; a passed one
    whose folder has no timeline."""
    reports = tmp_path / "reports"
    failed = reports / "artifacts" / "Upgrades-A-cut-download"
    (failed / "transcripts").mkdir(parents=True)
    events = [{"t": 0.0, "actor": "scenario", "kind": "step", "text": "begins: Given a tracker"},
              {"t": 1.5, "actor": "t1", "kind": "session", "text": "MQTT connected"},
              {"t": 2.0, "actor": "aws-iot", "kind": "state", "text": "job QUEUED"},
              {"t": 30.25, "actor": "t1", "kind": "download", "text": "cut after 4096 bytes"},
              {"t": 95.0, "actor": "t1", "kind": "failure", "text": "t1 runs 1.0.0, expected 1.0.1"}]
    (failed / "timeline.jsonl").write_text("\n".join(json.dumps(e) for e in events) + "\nnot json\n")
    (failed / "transcripts" / "t1.txt").write_text("[     1.500] aws-iot  PUBLISH $aws/things/t1/jobs/get\n"
                                                  "    {\"clientToken\": \"<b>x</b>\"}\n")
    (failed / "scenario.pcapng").write_bytes(b"\x0a\x0d\x0d\x0a")
    pcaps = tmp_path / "pcaps"  # --pcap DIR: every scenario's captures side by side
    pcaps.mkdir()
    for name in ("Upgrades-A-cut-download.pcapng", "Upgrades-A-cut-download-radio.pcap",
                 "Upgrades-A-cut-download-again.pcapng"):
        (pcaps / name).write_bytes(b"\x0a\x0d\x0d\x0a")
    passed = reports / "artifacts" / "Upgrades-All-well"
    passed.mkdir(parents=True)
    _part(reports / "report-parts", [{
        "name": "Upgrades", "filename": "features/upgrades.feature", "line": 1, "status": "failed", "tags": [],
        "left_out": 1, "scenarios": [
            _scenario("All well", "passed", [_step("Given", "a tracker", "passed", 0.0, 0.0)], passed),
            _scenario("A cut download", "failed", [
                _step("Given", "a tracker", "passed", 0.0, 0.0),
                _step("Then", "t1 runs version 1.0.1", "failed", 0.0, 95.0,
                      "ASSERT FAILED: t1 runs 1.0.0, expected 1.0.1 <seen on the device>")], failed, line=9,
                      capture=pcaps)]}])
    return reports


def test_a_failed_scenario_is_open_with_its_reason_timeline_transcripts_and_links(run_folder):
    report = build_report(run_folder / "report-parts", run_folder / "report.html")
    page = report.read_text()
    elements = Elements(page)
    scenarios = elements.all("details", "scenario")
    assert [(s[1].get("class"), "open" in s[1]) for s in scenarios] == [
        ("scenario passed", False), ("scenario failed", True)]
    failed = scenarios[1][2]
    # the reason, escaped (the error's own angle brackets are text, not markup)
    assert "t1 runs 1.0.0, expected 1.0.1 <seen on the device>" in failed
    assert "&lt;seen on the device&gt;" in page and "<seen on the device>" not in page
    # the steps with scenario time and wall time
    assert "0.000 s → 95.0 s (0:01:35)" in failed and "0.012 s" in failed
    # the timeline as an inline SVG with a row per actor and the failure marked
    timeline = elements.all("figure", "timeline")
    assert len(timeline) == 1
    svg = page[page.index("<figure class=timeline>"):page.index("</figure>")]
    assert "<svg" in svg and ">t1<" in svg and ">aws-iot<" in svg and ">failure<" in svg
    # each marker's event on hover, the failure's too
    assert "<title>95.000 s  t1  failure: t1 runs 1.0.0, expected 1.0.1</title>" in svg
    assert "<title>30.250 s  t1  download: cut after 4096 bytes</title>" in svg
    assert "Timeline: 5 events, 2 devices and servers; failure at 95.0 s (0:01:35) (1 lines did not read)" in failed
    # the transcript folded under the scenario, escaped, with its file linked
    transcript = elements.all("details", "transcript")
    assert len(transcript) == 1 and "open" not in transcript[0][1]
    assert 'PUBLISH $aws/things/t1/jobs/get' in transcript[0][2] and '"<b>x</b>"' in transcript[0][2]
    # relative links to the pcap and the folder's files, which exist from the report's folder
    links = [a[1]["href"] for a in elements.all("a") if "href" in a[1] and not a[1]["href"].startswith("#")]
    assert "artifacts/Upgrades-A-cut-download/scenario.pcapng" in links
    assert "../pcaps/Upgrades-A-cut-download.pcapng" in links and "../pcaps/Upgrades-A-cut-download-radio.pcap" in links
    assert "../pcaps/Upgrades-A-cut-download-again.pcapng" not in links  # another scenario's
    assert "artifacts/Upgrades-A-cut-download/transcripts/t1.txt" in links
    for link in links:
        assert (run_folder / link.rstrip("/")).exists(), link
    # the failures list at the top links to the scenario
    anchor = next(a for a in elements.all("a") if a[1].get("href", "").startswith("#"))
    assert anchor[1]["href"][1:] == scenarios[1][1]["id"]
    assert "1 scenarios not selected" in page
    # no script, no external asset
    assert "<script" not in page and not re.search(r"(src|href)=['\"]?(https?:)?//", page)


def test_a_scenario_without_a_timeline_says_so(run_folder):
    page = build_report(run_folder / "report-parts", run_folder / "report.html").read_text()
    passed = Elements(page).all("details", "scenario")[0][2]
    assert "No timeline: the scenario's artifact folder has no timeline.jsonl." in passed


def test_a_feature_without_a_part_is_listed_with_what_is_known(run_folder):
    page = build_report(run_folder / "report-parts", run_folder / "report.html",
                        unreported={"features/upgrades.feature": "reported anyway",
                                    "features/crash.feature": "its process exited 3"}).read_text()
    assert "features/crash.feature: no result (its process exited 3)" in page
    assert "reported anyway" not in page


def test_a_hook_failure_and_an_undefined_step_are_reasons_too(tmp_path):
    leftover = _scenario("Leaves a thread", "hook_error", [_step("Given", "a tracker", "passed", 0.0, 0.0)])
    leftover["error"] = "HOOK-ERROR in after_scenario: AssertionError: scenario left things running: thread x"
    undefined = _scenario("Says something new", "undefined", [_step("Given", "a thing never defined", "undefined",
                                                                    None, None)], line=7)
    _part(tmp_path / "parts", [{"name": "Hooks", "filename": "features/hooks.feature", "line": 1,
                                "status": "failed", "tags": [], "scenarios": [leftover, undefined]}])
    page = build_report(tmp_path / "parts", tmp_path / "report.html").read_text()
    opened = [element for element in Elements(page).all("details", "scenario") if "open" in element[1]]
    assert len(opened) == 2
    assert "scenario left things running: thread x" in opened[0][2]
    assert "undefined step: Given a thing never defined" in opened[1][2]


def test_an_empty_run_still_writes_a_report(tmp_path):
    page = build_report(tmp_path / "no-parts", tmp_path / "report.html").read_text()
    assert "No scenario ran." in page


def test_timeline_plot_rows_are_actors_and_unknown_kinds_get_markers(tmp_path):
    path = tmp_path / "timeline.jsonl"
    path.write_text('{"t": 1, "actor": "cpe1", "kind": "session", "text": "Inform"}\n'
                    '{"t": 2, "actor": "acs", "kind": "custom-kind", "text": "x"}\n{"t": "x"}\n')
    events, bad = read_timeline(path)
    assert bad == 1 and [e["actor"] for e in events] == ["cpe1", "acs"]
    svg = timeline_svg(events, title="a <title>")
    assert svg.startswith("<svg") and ">cpe1<" in svg and ">custom-kind<" in svg and "a &lt;title&gt;" in svg
    # two plots on one page share no id
    ids = set(re.findall(r'id="([^"]+)"', svg))
    other = set(re.findall(r'id="([^"]+)"', timeline_svg(events, title="another")))
    assert ids and not ids & other
    assert "<image" not in svg  # few events: every marker an SVG element, its event on hover
    assert "<title>1.000 s  cpe1  session: Inform</title>" in svg and "<title>2.000 s  acs  custom-kind: x</title>" in svg


def test_a_long_timeline_keeps_its_markers_in_one_image_and_its_names_as_text():
    events = [{"t": n * 0.5, "actor": f"d{n % 30}", "kind": "download", "text": ""} for n in range(MARKERS_AS_SVG + 1)]
    svg = timeline_svg(events)
    assert svg.count("<image") == 1 and ">d29<" in svg and ">download<" in svg
    assert len(svg) < 200_000  # as separate elements they weigh about 150 bytes each


# -- FUOTA campaign reports --------------------------------------------------------------------------


def _campaign_store(folder):
    """A campaign as the server stores it: round 1 sent 10 fragments, "good" heard them all, "bad"
    6 and failed."""
    folder.mkdir(parents=True)
    store = CampaignStore(folder / "fuota.sqlite")
    good, bad = 0x70B3D57ED0050001, 0x70B3D57ED0050002
    config = CampaignConfig(name="spring", devices=[CampaignDevice(good, "00" * 16), CampaignDevice(bad, "00" * 16)],
                            firmware_version=0x01010000, fec=False)
    campaign = store.create(config, b"image", [DeviceState(good, "specification"), DeviceState(bad, "specification")],
                            1000.0)
    for stage, start, end in ((1, 0, 10), (3, 10, 20), (5, 20, 120)):
        store.log(campaign, 1000.0 + start, "stage", {"stage": stage, "name": "", "round": 1, "event": "start"})
        store.log(campaign, 1000.0 + end, "stage", {"stage": stage, "name": "", "round": 1, "event": "end"})
    for n in range(10):
        store.log(campaign, 1030.0 + n, "fragment", {"n": n + 1, "fcnt": n, "gateways": 1, "round": 1})
    for dev_eui, received in ((good, 10), (bad, 6)):
        store.log(campaign, 1125.0, "request", {"command": "FragSessionStatusReq", "round": 1}, dev_eui)
        store.log(campaign, 1130.0, "answer", {"command": "FragSessionStatusAns", "nb_frag_received": received,
                                               "missing_frag": 10 - received}, dev_eui)
    store.log(campaign, 1131.0, "rejected", {"reason": "FragSessionStatusAns too short"}, bad)
    passed = DeviceState(good, "specification", status=DeviceStatus.PASSED, done={"DevVersionReq": 1200.0})
    failed = DeviceState(bad, "specification")
    failed.fail("no complete image after 1 round(s)")
    store.save_device(campaign, passed)
    store.save_device(campaign, failed)
    store.save(campaign, CampaignState.FINISHED, {})
    store.close()
    return {f"{good:016X}": "good", f"{bad:016X}": "bad"}


def test_campaign_report_names_devices_stages_losses_and_reasons(tmp_path):
    names = _campaign_store(tmp_path / "fuota")
    [report] = stored_campaign_reports(tmp_path / "fuota", names)
    assert [stage["name"] for stage in report["stages"]] == ["MC_GROUP_SETUP", "FRAG_SESSION_SETUP", "DL_FRAGMENT"]
    devices = {device["label"]: device for device in report["devices"]}
    assert devices["good"]["losses"] == [{"round": 1, "sent": 10, "received": 10, "lost": 0, "missing": 0}]
    assert devices["bad"]["losses"] == [{"round": 1, "sent": 10, "received": 6, "lost": 4, "missing": 4}]
    assert devices["bad"]["reason"] == "no complete image after 1 round(s)"
    assert devices["bad"]["rejected"] == ["FragSessionStatusAns too short"]
    svg = campaign_plot(report, "svg").decode()
    for text in (">good<", ">bad<", "DL_FRAGMENT", "lost 4 of 10 fragments", "no complete image after 1 round(s)"):
        assert text in svg, text
    assert campaign_plot(report).startswith(b"\x89PNG")
    # without names (the HTTP API) a device is its DevEUI
    store = CampaignStore(tmp_path / "fuota" / "fuota.sqlite")
    try:
        assert [d["label"] for d in campaign_report(store, report["id"])["devices"]] == sorted(names)
    finally:
        store.close()


def test_the_report_includes_a_fuota_scenarios_campaigns(run_folder):
    folder = run_folder / "artifacts" / "Upgrades-All-well"
    names = _campaign_store(folder / "fuota")
    parts = json.loads((run_folder / "report-parts" / "part-1.json").read_text())
    parts["features"][0]["scenarios"][0]["devices"] = {name: dev_eui for dev_eui, name in names.items()}
    (run_folder / "report-parts" / "part-1.json").write_text(json.dumps(parts))
    page = build_report(run_folder / "report-parts", run_folder / "report.html").read_text()
    passed = Elements(page).all("details", "scenario")[0][2]
    assert "FUOTA campaign 1 spring: finished" in passed
    assert "round 1: 6 of 10 received, 4 lost" in passed
    assert "no complete image after 1 round(s); FragSessionStatusAns too short" in passed


# -- through otaharness run ------------------------------------------------------------------------------

STEPS = '''\
import os

from behave import given, then

from otaharness.bdd import load_step_library

load_step_library("common")


@given("the process ends at once")
def the_process_ends(context):
    os._exit(3)  # as a crash or a kill would: no part, no summary
'''

CLOCK = '''\
Feature: Days on the clock
  Scenario: Days pass in moments
    Given the time is 2026-03-02T02:00:00Z
    When 3 days pass
    Then the time is 2026-03-05T02:00:00Z

  Scenario: A wrong expectation
    Given the time is 2026-03-02T02:00:00Z
    When 3 days pass
    Then the time is 2026-03-06T02:00:00Z
'''


@pytest.fixture
def repository(tmp_path):
    """Another team's repository (README: using the step library from another repository)."""
    features = tmp_path / "features"
    (features / "steps").mkdir(parents=True)
    (features / "environment.py").write_text("from otaharness.bdd.environment import *  # noqa\n")
    (features / "steps" / "ota.py").write_text(STEPS)
    (features / "clock.feature").write_text(CLOCK)
    return tmp_path


def _run(repository, *args):
    env = {key: value for key, value in os.environ.items() if key != "CI"}
    return subprocess.run([*OTAHARNESS, "run", *args], check=False, cwd=repository, env=env,
                          capture_output=True, text=True)


@pytest.mark.parametrize("jobs", ["1", "2"])
def test_otaharness_run_writes_the_report_and_says_where(repository, jobs):
    (repository / "features" / "crash.feature").write_text(
        "Feature: Crash\n  Scenario: it ends\n    Given the process ends at once\n")
    stale = repository / "reports" / "report-parts" / "part-1.json"
    stale.parent.mkdir(parents=True)
    stale.write_text(json.dumps({"features": [{"name": "From an earlier run", "filename": "x", "scenarios": [],
                                               "status": "passed"}]}))
    (repository / "features" / "rules.feature").write_text(
        "Feature: Rules\n  Rule: whole days\n    Scenario Outline: <n> days\n"
        "      Given the time is 2026-03-02T02:00:00Z\n      When <n> days pass\n      Then the time is <then>\n"
        "      Examples:\n        | n | then                 |\n        | 1 | 2026-03-03T02:00:00Z |\n"
        "        | 2 | 2026-03-04T02:00:00Z |\n")
    (repository / "features" / "tagged.feature").write_text(
        "@docker\nFeature: Tagged away\n  Scenario: not run\n    Given the time is 2026-03-02T02:00:00Z\n")
    arguments = ["--jobs", jobs, "-f", "progress", "--tags=-docker", "features/clock.feature",
                 "features/rules.feature", "features/tagged.feature"]
    if jobs != "1":
        arguments.append("features/crash.feature")  # a process of its own, which dies
    result = _run(repository, *arguments)
    output = result.stdout + result.stderr
    assert result.returncode == 1, output
    report = repository / "reports" / "report.html"
    assert f"HTML report: {report}" in output
    page = report.read_text()
    assert "From an earlier run" not in page
    assert "Tagged away" not in page  # no scenario of it was part of the run
    elements = Elements(page)
    scenarios = elements.all("details", "scenario")
    assert [(s[1]["class"], "open" in s[1]) for s in scenarios] == [
        ("scenario passed", False), ("scenario failed", True), ("scenario passed", False), ("scenario passed", False)]
    assert "whole days › 1 days" in scenarios[2][2] and "whole days › 2 days" in scenarios[3][2]  # outline rows
    failed = scenarios[1][2]
    assert "the time is 2026-03-05T02:00:00+00:00, expected 2026-03-06T02:00:00+00:00" in failed
    assert "seed " in failed and "replay with -D seed=" in failed
    # scenario time from the scenario's clock: three days in the When step
    assert "0.000 s → 259200.0 s (3 days, 0:00:00)" in failed
    if jobs != "1":
        assert "features/crash.feature: no result (its process exited 3; console output in" in page


@pytest.mark.parametrize("jobs", ["1", "2"])
def test_allure_results_through_otaharness_run(repository, jobs):
    """allure-behave's formatter beside ours (README, Running): its result files, one per scenario;
    with --jobs every feature process adds its own to the same folder."""
    (repository / "features" / "more.feature").write_text(
        "Feature: More\n  Scenario: Another day\n    Given the time is 2026-03-02T02:00:00Z\n"
        "    When 1 day passes\n    Then the time is 2026-03-03T02:00:00Z\n")
    result = _run(repository, "--jobs", jobs, "-f", "allure_behave.formatter:AllureFormatter",
                  "-o", "reports/allure", "-f", "progress", "features")
    output = result.stdout + result.stderr
    assert result.returncode == 1, output
    results = [json.loads(path.read_text()) for path in (repository / "reports" / "allure").glob("*-result.json")]
    outcomes = {entry["name"]: (entry["status"], entry.get("statusDetails", {}).get("message", ""))
                for entry in results}
    assert set(outcomes) == {"Days pass in moments", "A wrong expectation", "Another day"}, outcomes
    assert outcomes["A wrong expectation"][0] == "failed"
    assert "expected 2026-03-06T02:00:00+00:00" in outcomes["A wrong expectation"][1]
    assert outcomes["Another day"][0] == outcomes["Days pass in moments"][0] == "passed"
    assert (repository / "reports" / "report.html").exists()  # ours as well

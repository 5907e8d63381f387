"""The HTML report as a browser shows it: a run from another repository with a deliberately failing
scenario and a FUOTA campaign, its report opened in headless Chromium (Debian's `chromium`), the
rendered DOM read back. Slow by nature: a browser start and a real campaign."""

import os
import subprocess
import sys

import pytest
from test_html_report import CLOCK, STEPS, Elements

pytestmark = pytest.mark.slow

OTAHARNESS = [sys.executable, "-m", "otaharness.cli"]

FUOTA = '''\
@embedded:fuota
Feature: A campaign with a lossy device
  Background:
    Given a LoRaWAN gateway "gw1" at 0 m, 0 m
    And a firmware image of 3 KiB for version 1.1.0

  Scenario: A device with too much loss fails verification
    Given a FUOTA device "good" at 800 m, 0 m
    And a FUOTA device "lossy" at 600 m, 0 m
    And "lossy" loses 70% of the fragments in round 1
    When a FUOTA campaign starts for "good" and "lossy" with
      | setting           | value |
      | redundancy        | 0.2   |
      | max_rounds        | 1     |
      | success_threshold | 0.5   |
    Then the FUOTA campaign ends finished
    And "lossy" failed the FUOTA campaign with "no complete image"
'''


def test_the_report_opens_in_a_browser_and_shows_the_failure_and_its_timeline(tmp_path, chromium):
    features = tmp_path / "features"
    (features / "steps").mkdir(parents=True)
    (features / "environment.py").write_text("from otaharness.bdd.environment import *  # noqa\n")
    (features / "steps" / "ota.py").write_text(STEPS.replace('load_step_library("common")', "load_step_library()"))
    (features / "clock.feature").write_text(CLOCK)
    (features / "fuota.feature").write_text(FUOTA)
    env = {key: value for key, value in os.environ.items() if key != "CI"}
    run = subprocess.run([*OTAHARNESS, "run", "--jobs", "2", "-f", "progress", "features"], check=False,
                         cwd=tmp_path, env=env, capture_output=True, text=True)
    assert run.returncode == 1, run.stdout + run.stderr
    report = tmp_path / "reports" / "report.html"
    assert f"HTML report: {report}" in run.stdout

    browser = subprocess.run(
        [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-extensions",
         f"--user-data-dir={tmp_path / 'chromium-profile'}", "--dump-dom", report.as_uri()],
        check=False, capture_output=True, text=True, timeout=300)
    assert browser.returncode == 0, browser.stderr[-2000:]
    dom = Elements(browser.stdout)

    # the failed scenario is open, with its reason and its timeline: the failure on the plot
    [failed] = [element for element in dom.all("details", "scenario failed") if "open" in element[1]]
    assert "A wrong expectation" in failed[2]
    assert "the time is 2026-03-05T02:00:00+00:00, expected 2026-03-06T02:00:00+00:00" in failed[2]
    assert any("expected 2026-03-06T02:00:00+00:00" in element[2] for element in dom.all("div", "reason"))
    [timeline] = [figure for figure in dom.all("figure", "timeline") if "failure at 259200.0 s" in figure[2]]
    plot = timeline[2]  # the text of the figure: the SVG's axis labels, actors and legend, then the caption
    assert "scenario time (s)" in plot and "failure" in plot and "scenario" in plot
    # the failure's marker tells it on hover (its SVG <title>)
    assert "failure: the time is 2026-03-05T02:00:00+00:00, expected 2026-03-06T02:00:00+00:00" in plot
    assert timeline[2] in failed[2]  # inside the failed scenario's element
    assert dom.all("svg")

    # the FUOTA scenario: its campaign with the devices by name, the stage names, the loss, the reason
    campaign = next(element for element in dom.all("section", "campaign"))
    for text in ("good", "lossy", "DL_FRAGMENT", "COMPLETION_VERIFICATION", "no complete image after 1 round(s)"):
        assert text in campaign[2], text
    assert "lost" in campaign[2] and "70B3D57ED0050002" in campaign[2]

"""Issue 16's measure of done: scenarios written the way new users write them — short,
declarative, in their own words, a couple per flow with faults (tests/bdd/user_scenarios/, first
written outside the repository; tracker_fleet.feature from a second round, after the first
had shaped the layer) — run from a folder outside the checkout through the README's
recipe, with no step code of their own, and every one passes."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from otaharness.runtime.broker import find_mosquitto

SCENARIOS = Path(__file__).resolve().parent / "user_scenarios"


@pytest.mark.skipif(find_mosquitto() is None and os.environ.get("CI") != "true",
                    reason="Debian mosquitto is not installed (CI installs it)")
def test_user_scenarios_run_through_the_readme_recipe(tmp_path):
    features = tmp_path / "features"
    (features / "steps").mkdir(parents=True)
    (features / "environment.py").write_text("from otaharness.bdd.environment import *  # noqa: F401,F403\n")
    (features / "steps" / "ota.py").write_text(
        "from otaharness.bdd import load_step_library\nload_step_library()\n")
    for feature in sorted(SCENARIOS.glob("*.feature")):
        shutil.copy(feature, features / feature.name)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    run = subprocess.run([sys.executable, "-m", "otaharness.cli", "run", "-f", "json", "-o", "result.json",
                          "features"], cwd=tmp_path, env=env, capture_output=True, text=True, check=False)
    results = json.loads((tmp_path / "result.json").read_text())
    outcomes = {f"{feature['name']} / {scenario['name']}": scenario["status"]
                for feature in results for scenario in feature["elements"] if scenario["type"] == "scenario"}
    written = sum(line.strip().startswith("Scenario:") for feature in SCENARIOS.glob("*.feature")
                  for line in feature.read_text().splitlines())
    assert len(outcomes) == written >= 6, outcomes
    failed = {name: status for name, status in outcomes.items() if status != "passed"}
    assert not failed, f"{failed}\n{run.stdout[-6000:]}"
    assert run.returncode == 0, run.stdout[-6000:]

"""`otaharness run --jobs N`: a behave process per feature file, reports as a serial run's."""

import os
import subprocess
import sys
import xml.etree.ElementTree as ET

import pytest

from otaharness.bdd.parallel import jobs_value, plan, split_paths
from otaharness.runtime.runtime import slug

OTAHARNESS = [sys.executable, "-m", "otaharness.cli"]

STEPS = '''\
import os

from behave import given, then

@given("a count of {count:d}")
def a_count(context, count):
    context.count = count

@then("the count is {count:d}")
def the_count_is(context, count):
    assert context.count == count, f"the count is {context.count}, not {count}"

@given("the process ends at once")
def the_process_ends(context):
    os._exit(3)  # as a crash or a kill would: no summary, no JUnit file
'''


def _feature(name: str, *scenarios: tuple[str, int, int]) -> str:
    lines = [f"Feature: {name}"]
    for title, given, expected in scenarios:
        lines += [f"  Scenario: {title}", f"    Given a count of {given}",
                  f"    Then the count is {expected}"]
    return "\n".join(lines) + "\n"


@pytest.fixture
def repository(tmp_path):
    """Another team's repository with three feature files, one scenario of which fails."""
    features = tmp_path / "features"
    (features / "steps").mkdir(parents=True)
    (features / "environment.py").write_text("from otaharness.bdd.environment import *  # noqa\n")
    (features / "steps" / "counts.py").write_text(STEPS)
    (features / "one.feature").write_text(_feature("One", ("one holds", 1, 1), ("two hold", 2, 2)))
    (features / "two.feature").write_text(_feature("Two", ("three holds", 3, 3)))
    (features / "broken.feature").write_text(
        _feature("Broken", ("four holds", 4, 4), ("five is not six", 5, 6)))
    return tmp_path


def _run(repository, *args):
    env = {key: value for key, value in os.environ.items() if key != "CI"}
    return subprocess.run([*OTAHARNESS, "run", *args], check=False, cwd=repository, env=env,
                          capture_output=True, text=True)


def test_each_feature_file_runs_in_its_own_process_with_its_own_reports(repository):
    result = _run(repository, "--jobs", "2", "--format", "progress", "features")
    output = result.stdout + result.stderr
    assert result.returncode == 1, output
    assert "running 3 feature files, 2 at a time" in output
    # one merged summary in behave's words, counting every process
    assert "2 features passed, 1 failed, 0 skipped" in output
    assert "4 scenarios passed, 1 failed, 0 skipped" in output
    assert "9 steps passed, 1 failed, 0 skipped" in output
    # the failed feature's whole output, then from its JUnit entry the failing step, the
    # error and the seed to replay it with
    assert "features/broken.feature  .F" in output
    assert "--- five is not six\nFailing step: Then the count is 6" in output
    assert "ASSERT FAILED: the count is 5, not 6\nseed " in output
    assert "replay with -D seed=" in output
    assert "Failing feature files:\n  features/broken.feature (exit 1" in output
    # JUnit: a file per feature, a test case per scenario, as a serial run writes them
    reports = sorted(path.name for path in (repository / "reports" / "junit").glob("*.xml"))
    assert reports == ["TESTS-broken.xml", "TESTS-one.xml", "TESTS-two.xml"]
    broken = ET.parse(repository / "reports" / "junit" / "TESTS-broken.xml").getroot()
    assert (broken.get("tests"), broken.get("failures")) == ("2", "1")
    # artifacts per scenario; the console output of each process kept beside the reports
    assert (repository / "reports" / "artifacts" / slug("Broken -- five is not six")).is_dir()
    # a passed scenario keeps only its timeline (for the HTML report)
    passed = repository / "reports" / "artifacts" / slug("Broken -- four holds")
    assert sorted(path.name for path in passed.iterdir()) == ["timeline.jsonl"]
    consoles = sorted(path.name for path in (repository / "reports" / "console").iterdir())
    assert consoles == ["broken.txt", "one.txt", "two.txt"]


def test_a_passing_run_exits_zero_and_files_left_out_get_no_process(repository):
    (repository / "features" / "two.feature").write_text(
        "@container\n" + (repository / "features" / "two.feature").read_text())
    result = _run(repository, "-j", "2", "--format", "progress", "--tags=-container",
                  "--exclude", "broken", "features")
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    # broken.feature left out by --exclude, two.feature by its tag: neither gets a process
    assert "running 1 feature file, 2 at a time" in output and "two.feature" not in output
    assert "1 feature passed, 0 failed, 0 skipped" in output
    # a process that passed shows its progress line, not its own summary
    assert "features/one.feature  .." in output
    assert output.count("scenarios passed") == 1


def test_a_process_that_ends_early_is_a_failed_feature(repository):
    (repository / "features" / "crash.feature").write_text(
        "Feature: Crash\n  Scenario: it ends\n    Given the process ends at once\n")
    result = _run(repository, "-j", "2", "--format", "progress", "features/crash.feature",
                  "features/two.feature")
    output = result.stdout + result.stderr
    assert result.returncode == 1, output
    assert "features/crash.feature (exit 3, no summary: the process ended early" in output
    assert "1 feature passed, 1 failed, 0 skipped" in output


def test_a_line_of_a_feature_runs_alone(repository):
    result = _run(repository, "-j", "2", "--format", "progress", "features/broken.feature:2",
                  "features/two.feature")
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "2 scenarios passed, 0 failed, 1 skipped" in output


def test_an_outfile_is_refused_with_jobs(repository):
    result = _run(repository, "-j", "2", "-f", "json", "-o", "out.json", "features")
    assert result.returncode != 0 and "-o/--outfile is for one process" in result.stderr


def test_behave_options_and_paths_are_told_apart():
    options, paths = split_paths(["-t", "@slow", "features/a", "-Dseed=3", "--format=progress",
                                  "-D", "x=1", "-k", "features/b.feature:3", "--", "-odd"])
    assert options == ["-t", "@slow", "-Dseed=3", "--format=progress", "-D", "x=1", "-k"]
    assert paths == ["features/a", "features/b.feature:3", "-odd"]


def test_longest_feature_first_from_the_last_run(repository, monkeypatch):
    monkeypatch.chdir(repository)
    junit = repository / "reports" / "junit"
    junit.mkdir(parents=True)
    (junit / "TESTS-two.xml").write_text('<testsuite time="40.5"/>')
    (junit / "TESTS-one.xml").write_text('<testsuite time="2.0"/>')
    _, jobs = plan(["features"], junit)
    # broken.feature has no history: its 4 steps at the mean of 42.5 s over 6 steps
    assert [job.feature for job in jobs] == ["features/two.feature", "features/broken.feature",
                                             "features/one.feature"]
    assert round(jobs[1].expected_s, 1) == 28.3


def test_jobs_value():
    assert jobs_value("3") == 3
    assert jobs_value("auto") >= 1
    for bad in ("0", "-1", "many"):
        with pytest.raises(Exception, match="positive number or auto"):
            jobs_value(bad)

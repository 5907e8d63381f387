"""The otaharness command and the step library as another repository uses it."""

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from otaharness.cli import ARTIFACTS_MARK, _clear_artifacts, skipped_core_scenarios
from otaharness.runtime.broker import find_mosquitto

REPO = Path(__file__).resolve().parents[2]
OTAHARNESS = [sys.executable, "-m", "otaharness.cli"]


@pytest.mark.skipif(find_mosquitto() is None and os.environ.get("CI") != "true",
                    reason="Debian mosquitto is not installed (CI installs it)")
def test_serve_prints_one_json_object_and_stops_cleanly(tmp_path):
    server = subprocess.Popen([*OTAHARNESS, "serve", "--json"], cwd=tmp_path,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        endpoints = json.loads(server.stdout.readline())
        assert endpoints["mqtt"].startswith("mqtt://127.0.0.1:")
        server.send_signal(signal.SIGINT)
        assert server.wait(timeout=20) == 0
    finally:
        server.kill()
    stderr = server.stderr.read()
    assert "left running" not in stderr, stderr


def test_serve_refuses_a_misspelled_setting_in_one_line(tmp_path):
    result = subprocess.run([*OTAHARNESS, "serve", "-D", "captur=caps"], cwd=tmp_path,
                            capture_output=True, text=True)
    assert result.returncode != 0 and "did you mean `capture`?" in result.stderr
    assert "Traceback" not in result.stderr


def test_serve_rejects_an_unknown_flow():
    result = subprocess.run([*OTAHARNESS, "serve", "nonsense"], capture_output=True, text=True)
    assert result.returncode != 0 and "unknown flow" in result.stderr
    assert "did you mean" not in result.stderr
    typo = subprocess.run([*OTAHARNESS, "serve", "tr068", "aws_iot"], capture_output=True,
                          text=True, check=False)
    assert typo.returncode != 0
    assert typo.stderr.strip().endswith(
        "(did you mean `tr069` for `tr068`, `aws-iot` for `aws_iot`?)"), typo.stderr


def test_steps_lists_the_catalogue_with_docs():
    result = subprocess.run([*OTAHARNESS, "steps"], capture_output=True, text=True, check=True)
    assert "When  {duration} pass\n" in result.stdout
    assert "Let scenario time pass" in result.stdout
    # grouped by flow, with an example line from one of our features
    assert "== common ==" in result.stdout and "== aws_iot ==" in result.stdout
    assert "e.g. When 10 minutes pass" in result.stdout or "e.g. When 30 minutes pass" in result.stdout


def _steps(*args):
    return subprocess.run([*OTAHARNESS, "steps", *args], capture_output=True, text=True)


def test_steps_search_by_words_and_flow_as_json():
    found = json.loads(_steps("--search", "links", "endpoint", "cut", "--format", "json").stdout)
    assert found[0]["pattern"] == 'the link between "{device}" and the {endpoint} endpoint is {fault}'
    assert found[0]["flow"] == "common" and found[0]["example"].startswith(
        ("Given the link between", "When the link between"))
    assert found[0]["example_at"].startswith("features/")
    common = json.loads(_steps("--flow", "common", "--format", "json").stdout)
    assert common and {entry["flow"] for entry in common} == {"common"}
    markdown = _steps("--flow", "common", "--search", "reboot", "--format", "md").stdout
    assert '- **When** `device "{name}" reboots`' in markdown
    missing = _steps("--search", "teleport")
    assert missing.returncode == 1 and "no step matches" in missing.stderr
    unknown = _steps("--flow", "comon")
    assert unknown.returncode != 0 and "did you mean `common`?" in unknown.stderr


def test_steps_take_examples_from_the_working_directorys_features(tmp_path):
    """A library step none of our features uses gets its example from the user's features/."""
    (tmp_path / "features").mkdir()
    (tmp_path / "features" / "mine.feature").write_text(textwrap.dedent("""\
        Feature: mine
          Scenario: a JSON value
            Given I have this JSON-encoded in `doc`
              \"\"\"
              {"a": 1}
              \"\"\"
        """))
    result = subprocess.run([*OTAHARNESS, "steps", "--flow", "common", "--format", "json"],
                            cwd=tmp_path, capture_output=True, text=True, check=True)
    entry = next(e for e in json.loads(result.stdout)
                 if e["pattern"] == "I have this JSON-encoded in `{name}`" and e["keyword"] == "Given")
    assert entry["example"] == "Given I have this JSON-encoded in `doc`"
    assert entry["example_at"] == "features/mine.feature:3"


def test_steps_lists_the_users_own_steps_beside_ours(tmp_path):
    """In a user's repository (features/steps/ loading our library), the catalogue holds both:
    the user's steps under their module's name, searchable like ours."""
    steps = tmp_path / "features" / "steps"
    steps.mkdir(parents=True)
    (steps / "ota.py").write_text("from otaharness.bdd import load_step_library\nload_step_library()\n")
    (steps / "lab.py").write_text(textwrap.dedent('''\
        from behave import given

        @given("the lab bench {bench} is powered")
        def step_bench(context, bench):
            """Power the named bench of our lab."""
        '''))
    result = subprocess.run([*OTAHARNESS, "steps", "--search", "bench", "powered", "--format", "json"],
                            cwd=tmp_path, capture_output=True, text=True, check=True)
    (entry,) = json.loads(result.stdout)
    assert (entry["flow"], entry["pattern"], entry["doc"]) == (
        "lab", "the lab bench {bench} is powered", "Power the named bench of our lab.")
    flows = {e["flow"] for e in json.loads(subprocess.run(
        [*OTAHARNESS, "steps", "--format", "json"], cwd=tmp_path, capture_output=True, text=True,
        check=True).stdout)}
    assert {"lab", "common", "tr069", "declarative"} <= flows


def test_run_help_documents_our_options_and_what_passes_to_behave():
    result = subprocess.run([*OTAHARNESS, "run", "--help"], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    help_text = result.stdout
    assert help_text.index("--pcap DIR") < help_text.index("goes to behave unchanged")
    assert "-t/--tags" in help_text and "python -m behave --help" in help_text


def test_run_refuses_a_capture_folder_and_misspelled_settings(tmp_path):
    clash = subprocess.run([*OTAHARNESS, "run", "--capture", "caps", "features"], cwd=tmp_path,
                           capture_output=True, text=True)
    assert clash.returncode != 0 and "--pcap DIR" in clash.stderr
    typo = subprocess.run([*OTAHARNESS, "run", "-D", "captur=caps", "features"], cwd=tmp_path,
                          capture_output=True, text=True)
    assert typo.returncode != 0 and "did you mean `capture`?" in typo.stderr
    assert "USING RUNNER" not in typo.stdout  # refused before behave started
    (tmp_path / "otaharness.toml").write_text('[targets.aws_iot]\ntarget = "external"\n')
    toml = subprocess.run([*OTAHARNESS, "run", "features"], cwd=tmp_path, capture_output=True,
                          text=True)
    assert toml.returncode != 0 and "did you mean `aws-iot`?" in toml.stderr


def _user_repository(root: Path, *library_modules: str) -> Path:
    """A repository of a user's: features/ with our hooks and our step library (README recipe)."""
    features = root / "features"
    (features / "steps").mkdir(parents=True)
    (features / "environment.py").write_text(
        "from otaharness.bdd.environment import *  # noqa\n")
    (features / "steps" / "ota.py").write_text(
        "from otaharness.bdd import load_step_library\n"
        f"load_step_library({', '.join(map(repr, library_modules))})\n")
    return features


def test_run_outside_the_checkout_without_the_step_library_says_how_to_add_it(tmp_path):
    """behave's own words were `ConfigError: No steps directory in '…/features'`."""
    features = tmp_path / "features"
    features.mkdir()
    (features / "clock.feature").write_text(textwrap.dedent("""\
        Feature: clock
          Scenario: time passes
            Given the time is 2026-03-02T02:00:00Z
        """))
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    for path in ("features", "features/clock.feature"):
        result = subprocess.run([*OTAHARNESS, "run", path], cwd=tmp_path, capture_output=True,
                                text=True, env=env, check=False)
        assert result.returncode != 0
        assert "USING RUNNER" not in result.stdout  # said before behave started
        assert (f"{features / 'environment.py'}:  from otaharness.bdd.environment import *"
                in result.stderr), result.stderr
        assert "Using the step library from another repository" in result.stderr
    _user_repository(tmp_path, "common")  # the recipe it names: the same command then runs
    result = subprocess.run([*OTAHARNESS, "run", "features/clock.feature"], cwd=tmp_path,
                            capture_output=True, text=True, env=env, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def test_an_undefined_step_names_the_closest_library_steps(tmp_path):
    features = _user_repository(tmp_path, "common")
    (features / "typo.feature").write_text(textwrap.dedent("""\
        Feature: typos
          Scenario: a misspelled step
            Given the tyme is 2026-03-02T02:00:00Z
            Then devise "t1" reboots
        """))
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    result = subprocess.run([*OTAHARNESS, "run", "-f", "progress", "features"], cwd=tmp_path,
                            capture_output=True, text=True, env=env)
    assert result.returncode != 0
    suggestions = result.stderr.split('Undefined step: Then devise "t1" reboots', 1)[1]
    assert suggestions.split("did you mean:", 1)[1].split()[0:3] == ["When", "device", '"{name}"']
    assert "Given the time is {timestamp}" in result.stderr


def test_emulate_help():
    result = subprocess.run([*OTAHARNESS, "emulate", "--help"], capture_output=True, text=True)
    assert result.returncode == 0 and "KIND" in result.stdout


def test_every_option_of_emulate_and_load_says_what_it_does():
    import argparse

    from otaharness.cli import build_parser
    from otaharness.load.options import add_load_options

    def undocumented(parser: argparse.ArgumentParser) -> list[str]:
        return [action.option_strings[0] for action in parser._actions  # argparse's own table
                if action.option_strings and not action.help]

    commands = next(action for action in build_parser()._actions
                    if isinstance(action, argparse._SubParsersAction))
    kinds = next(action for action in commands.choices["emulate"]._actions
                 if isinstance(action, argparse._SubParsersAction))
    missing = {kind: undocumented(parser) for kind, parser in kinds.choices.items()}
    load = argparse.ArgumentParser()
    add_load_options(load)
    missing["load"] = undocumented(load)
    assert not any(missing.values()), missing


def test_skipped_core_scenarios_are_found_in_junit(tmp_path):
    (tmp_path / "TESTS-harness.xml").write_text(textwrap.dedent("""\
        <testsuite name="features.harness.clock.Scenario time">
          <testcase classname="features.harness.clock.Scenario time" name="runs"/>
          <testcase classname="features.harness.clock.Scenario time" name="skipped one">
            <skipped/></testcase>
          <testcase classname="features.mine.extra.Mine" name="user skip"><skipped/></testcase>
        </testsuite>"""))
    assert skipped_core_scenarios(tmp_path) == [
        "features.harness.clock.Scenario time: skipped one"]


@pytest.mark.skipif(find_mosquitto() is None and os.environ.get("CI") != "true",
                    reason="Debian mosquitto is not installed (CI installs it)")
def test_another_repository_uses_the_step_library(tmp_path):
    """A repository with its own features/steps loads our library once: no ambiguous steps."""
    features = _user_repository(tmp_path)
    (features / "steps" / "own.py").write_text(textwrap.dedent("""\
        from behave import then
        from otaharness.bdd.support import ota

        @then("our own step sees {n:d} seconds passed")
        def own(context, n):
            assert ota(context).clock.monotonic() == n
        """))
    (features / "mine.feature").write_text(textwrap.dedent("""\
        Feature: a user's own feature
          Scenario: library steps and own steps together
            Given an MQTT client "a" connected to the broker
            When 90 seconds pass
            Then our own step sees 90 seconds passed
        """))
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    result = subprocess.run([sys.executable, "-m", "behave", "--no-capture", "features"],
                            cwd=tmp_path, capture_output=True, text=True, env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 scenario passed" in result.stdout


def test_under_ci_a_skipped_core_scenario_fails_the_run(tmp_path):
    """Against an external AWS target the seed scenario (server control needed) is skipped:
    fine for a user, a failure under CI=true."""
    feature = REPO / "features" / "aws_iot" / "fota.feature"
    external = ["-D", "target.aws-iot=external", "-D", "target.aws-iot.aws=http://127.0.0.1:9",
                "-D", "target.aws-iot.mqtt=mqtt://127.0.0.1:9"]
    env = {**os.environ, "CI": "true"}
    result = subprocess.run([*OTAHARNESS, "run", str(feature), *external, "-f", "progress"],
                            cwd=tmp_path, capture_output=True, text=True, env=env)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "core-flow scenarios were skipped" in result.stderr
    assert "1 skipped" in result.stdout
    relaxed = subprocess.run([*OTAHARNESS, "run", "--no-fail-on-skip", str(feature), *external,
                              "-f", "progress"], cwd=tmp_path, capture_output=True, text=True,
                             env=env)
    assert relaxed.returncode == 0, relaxed.stdout + relaxed.stderr


def test_every_step_says_what_it_does():
    """`otaharness steps` is the catalogue scenario writers read: no step without a docstring."""
    code = ("from otaharness.bdd import load_step_library\n"
            "from behave.step_registry import registry\n"
            "load_step_library()\n"
            "print('\\n'.join(m.pattern for t in registry.steps for m in registry.steps[t]"
            " if not (m.func.__doc__ or '').strip()))\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "", f"steps without a docstring:\n{result.stdout}"


def test_run_empties_the_artifact_folder_left_by_earlier_runs(tmp_path):
    """reports/artifacts/ held an earlier run's scenario folders beside this run's; a folder that
    holds the working directory is refused rather than emptied."""
    features = _user_repository(tmp_path)
    (features / "doc.feature").write_text(textwrap.dedent("""\
        Feature: doc
          Scenario: a JSON value
            Given I have this JSON-encoded in `doc`
              \"\"\"
              {"a": 1}
              \"\"\"
        """))
    artifacts = tmp_path / "reports" / "artifacts"
    stale = artifacts / "an-earlier-runs-scenario"
    stale.mkdir(parents=True)
    (stale / "timeline.jsonl").write_text("{}\n")  # every scenario keeps one
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    result = subprocess.run([*OTAHARNESS, "run", "-D", "artifacts=all", "-f", "progress",
                             "features"], cwd=tmp_path, capture_output=True, text=True, env=env,
                            check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    kept = [folder.name for folder in artifacts.iterdir() if folder.is_dir()]
    assert kept and "an-earlier-runs-scenario" not in kept, kept
    assert (tmp_path / "reports" / "report.html").is_file()
    refused = subprocess.run([*OTAHARNESS, "run", "-D", "artifacts_dir=..", "."],
                             cwd=features, capture_output=True, text=True, env=env, check=False)
    assert refused.returncode != 0 and "holds the working directory" in refused.stderr
    assert (features / "doc.feature").is_file()


def _scenario_folder(parent: Path, name: str) -> Path:
    folder = parent / name
    folder.mkdir(parents=True)
    (folder / "timeline.jsonl").write_text("{}\n")
    return folder


def test_an_artifact_folder_holding_what_no_run_wrote_is_refused_and_left_whole(tmp_path, monkeypatch):
    """-D artifacts_dir=features (or any folder of the user's) was deleted whole as the run began."""
    monkeypatch.chdir(tmp_path)
    features = tmp_path / "features"
    features.mkdir()
    (features / "doc.feature").write_text("Feature: doc\n")
    _scenario_folder(features, "looks-like-a-scenario")
    with pytest.raises(SystemExit, match="holds 'doc.feature', which no run wrote"):
        _clear_artifacts(Path("features"))
    assert sorted(path.name for path in features.iterdir()) == ["doc.feature", "looks-like-a-scenario"]
    stray_file = tmp_path / "a-file"
    stray_file.write_text("mine\n")
    with pytest.raises(SystemExit, match="is not a folder"):
        _clear_artifacts(Path("a-file"))
    assert stray_file.read_text() == "mine\n"
    (tmp_path / "dangling").symlink_to(tmp_path / "gone")
    with pytest.raises(SystemExit, match="is not a folder"):
        _clear_artifacts(Path("dangling"))


def test_an_artifact_folder_of_earlier_runs_is_emptied_links_removed_not_followed(tmp_path, monkeypatch):
    """Scenario folders an earlier run left (unmarked, as before the mark) go; the folder reached
    through a symbolic link stays, and a link inside it is removed, not what it points to."""
    monkeypatch.chdir(tmp_path)
    elsewhere = tmp_path / "big-disk" / "artifacts"
    _scenario_folder(elsewhere, "an-earlier-runs-scenario")
    (tmp_path / "reports").mkdir()
    (tmp_path / "reports" / "artifacts").symlink_to(elsewhere, target_is_directory=True)
    _clear_artifacts(Path("reports/artifacts"))
    assert (tmp_path / "reports" / "artifacts").is_symlink()
    assert sorted(path.name for path in elsewhere.iterdir()) == [ARTIFACTS_MARK]
    kept_outside = tmp_path / "kept-outside"
    kept_outside.mkdir()
    (kept_outside / "precious.txt").write_text("mine\n")
    _scenario_folder(elsewhere, "this-runs-scenario")
    (elsewhere / "a-link").symlink_to(kept_outside, target_is_directory=True)
    (elsewhere / "notes.txt").write_text("written into a marked folder\n")
    _clear_artifacts(Path("reports/artifacts"))  # marked by the first run: all of it goes
    assert sorted(path.name for path in elsewhere.iterdir()) == [ARTIFACTS_MARK]
    assert (kept_outside / "precious.txt").read_text() == "mine\n"
    _clear_artifacts(Path("reports/fresh"))  # a folder that does not exist yet is made and marked
    assert (tmp_path / "reports" / "fresh" / ARTIFACTS_MARK).is_file()

"""The wheel, installed into a fresh virtual environment that already holds PyPI's `fixtures`
(the testtools/OpenStack package), breaks neither: a user's repository outside the checkout runs
scenarios of two flows through the README's recipe, and its own step module uses PyPI `fixtures`
in the same behave process. Slow by nature: a wheel build and a venv with every dependency."""

import json
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
NOT_IN_THE_WHEEL = shutil.ignore_patterns(
    ".git", ".tox", ".venv", "build", "dist", "reports", "captures", "*.egg-info", "__pycache__",
    ".hypothesis", ".pytest_cache", "node_modules", "wheels", "tests", "benchmarks", "docs")

USER_FEATURE = """\
    Feature: a user's upgrades, outside the otaharness checkout

      @embedded:tr069
      Scenario: A router upgraded now
        Given a MikroTik router "cpe1" running RouterOS 6.48
        And RouterOS 6.48.4 is available
        When I upgrade cpe1 to version 6.48.4
        Then soon cpe1 runs version 6.48.4
        And a scratch folder of PyPI fixtures is usable

      @embedded:cups
      Scenario: A station takes the update at its next daily CUPS check
        Given a Basics station "gw1" running package v0
        And firmware v1 is available
        When I upgrade gw1 to version v1
        And 1 day passes
        Then soon gw1 runs version v1
    """

USER_STEPS = '''\
    import fixtures  # PyPI's package, beside ours
    from behave import then


    @then("a scratch folder of PyPI fixtures is usable")
    def step_pypi_fixtures(context):
        with fixtures.TempDir() as scratch:
            assert scratch.path
    '''


def _run(*command, cwd) -> str:
    done = subprocess.run([str(part) for part in command], cwd=cwd, capture_output=True, text=True)
    assert done.returncode == 0, f"{command}\n{done.stdout[-4000:]}\n{done.stderr[-4000:]}"
    return done.stdout


@pytest.mark.slow
def test_the_wheel_installs_beside_pypi_fixtures_and_runs_a_users_features(tmp_path):
    source = tmp_path / "source"  # a copy, so the build leaves nothing in the checkout;
    # every command runs outside the checkout, whose folders Python would otherwise find first
    shutil.copytree(REPO, source, ignore=NOT_IN_THE_WHEEL)
    _run(sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", tmp_path / "wheel", source,
         cwd=tmp_path)
    (wheel,) = (tmp_path / "wheel").glob("otaharness-*.whl")

    venv = tmp_path / "venv"
    _run(sys.executable, "-m", "venv", venv, cwd=tmp_path)
    python, otaharness = venv / "bin" / "python", venv / "bin" / "otaharness"
    _run(python, "-m", "pip", "install", "--quiet", "fixtures", cwd=tmp_path)
    _run(python, "-m", "pip", "install", "--quiet", wheel, cwd=tmp_path)

    where = json.loads(_run(python, "-c", textwrap.dedent("""\
        import json, fixtures, otaharness.fixtures
        print(json.dumps([fixtures.__file__, str(otaharness.fixtures.fixture_path("tr069")),
                          hasattr(fixtures, "Fixture")]))"""), cwd=tmp_path))
    site = Path(_run(python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))",
                    cwd=tmp_path).strip())
    assert where == [str(site / "fixtures" / "__init__.py"),
                     str(site / "otaharness" / "fixtures" / "tr069"), True]
    assert not (site / "steps").exists() and not (site / "emulators").exists()

    user = tmp_path / "user-repository"
    (user / "features" / "steps").mkdir(parents=True)
    (user / "features" / "environment.py").write_text(
        "from otaharness.bdd.environment import *  # noqa: F401,F403\n")
    (user / "features" / "steps" / "ota.py").write_text(
        "from otaharness.bdd import load_step_library\nload_step_library()\n")
    (user / "features" / "steps" / "ours.py").write_text(textwrap.dedent(USER_STEPS))
    (user / "features" / "upgrades.feature").write_text(textwrap.dedent(USER_FEATURE))
    output = _run(otaharness, "run", "--format", "progress", "features", cwd=user)
    assert "2 scenarios passed, 0 failed" in output, output

    flows = {entry["flow"] for entry in json.loads(_run(otaharness, "steps", "--format", "json", cwd=user))}
    library = {path.stem for path in (REPO / "steps").glob("*.py") if not path.stem.startswith("_")}
    assert library | {"ours"} <= flows

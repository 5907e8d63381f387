"""Fixtures every test folder shares: the independent tools our bytes are checked against; and
which tests are slow by nature."""

import os
import shutil

import pytest

# Fuzzing campaigns are slow by nature: a property test drawing this many examples or more, and
# schemathesis runs (random requests against a live server). They are marked `slow`, so
# `tox -e slow` (CI's third step) runs them rather than the README's `tox`.
FUZZING_CAMPAIGN_EXAMPLES = 100


# Runs on real time that must not share a core with each other: `tox -e slow` spreads the slow
# checks over two xdist workers (`--dist loadgroup`) and keeps these in one group, one at a time
# on one worker, while fuzzing and builds take the other.
REAL_TIME_FLEET_GROUP = "real-time-fleet"


def pytest_itemcollected(item: pytest.Item) -> None:
    # as each test is collected, so before xdist's collection hook reads the xdist_group marks
    # to name each test's group (pyproject keeps pytest below 9.1: xdist 3.8 names the group in
    # `item._nodeid`, which pytest 9.2 no longer reads, and the group was silently lost)
    if item.get_closest_marker("load") or item.get_closest_marker("real_time_fleet"):
        item.add_marker(pytest.mark.xdist_group(REAL_TIME_FLEET_GROUP))


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        module = getattr(item, "module", None)
        if (_examples(item) >= FUZZING_CAMPAIGN_EXAMPLES
                or getattr(module, "schemathesis", None) is not None):
            item.add_marker(pytest.mark.slow)


def pytest_ignore_collect(collection_path, config: pytest.Config) -> bool | None:
    """A schemathesis module (named ``*_schemathesis.py``) builds its cases while it is collected,
    about 9 s of CPU in each xdist worker; its tests are all `slow`, so a run whose ``-m``
    deselects `slow` (the README's `tox`) leaves the module uncollected. `tox -e slow` runs it."""
    if collection_path.name.endswith("_schemathesis.py") and _deselects_slow(config):
        return True
    return None


def _deselects_slow(config: pytest.Config) -> bool:
    """Whether ``-m`` leaves out a test marked `slow` and nothing else."""
    # pytest's own -m grammar; it has no public entry
    from _pytest.mark.expression import Expression

    chosen = config.getoption("markexpr")
    return bool(chosen) and not Expression.compile(chosen).evaluate(
        lambda name, **keywords: name == "slow" and not keywords)


def _examples(item: pytest.Item) -> int:
    """How many examples a hypothesis test draws (0 for any other test)."""
    from hypothesis import settings
    from hypothesis.internal.detection import is_hypothesis_test

    test = getattr(item, "obj", None)
    if not is_hypothesis_test(test):
        return 0
    # the test's own @settings, else the profile's; hypothesis keeps no public accessor
    chosen = getattr(test, "_hypothesis_internal_use_settings", None) or settings.default
    return chosen.max_examples


def debian_tool(command: str) -> str:
    """The path of a Debian package's command of the same name. Outside CI a missing one skips the
    test; under CI=true it fails it (CI installs it: scripts/setup)."""
    path = shutil.which(command)
    if path is None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"{command} is required under CI (Debian package {command}, see scripts/setup)")
        pytest.skip(f"{command} is not installed (Debian package {command})")
    return path


@pytest.fixture
def tshark() -> str:
    """Debian's tshark."""
    return debian_tool("tshark")


@pytest.fixture
def chromium() -> str:
    """Debian's chromium (headless: the HTML report's browser test)."""
    return debian_tool("chromium")

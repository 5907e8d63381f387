"""The distribution's layout: one top-level package, `otaharness`, whose `steps`, `emulators` and
`fixtures` are the repository's top-level folders (pyproject.toml maps them), and layers that
point one way (codecs, runtime and servers never reach up into the device side or the steps)."""

import ast
import os
import subprocess
import sys
import tomllib
from pathlib import Path

from setuptools import find_packages

REPO = Path(__file__).resolve().parents[2]
MAPPED = {"emulators": "otaharness.emulators", "steps": "otaharness.steps", "fixtures": "otaharness.fixtures"}
SOURCES = ["otaharness", "emulators", "steps", "fixtures", "tests", "benchmarks", "scripts"]


def _python_files():
    for folder in SOURCES:
        yield from (REPO / folder).rglob("*.py")
    yield REPO / "environment.py"


def _imported_modules(path: Path):
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.lineno, node.module


def test_the_package_list_names_every_package_of_the_folders():
    setuptools = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
    assert setuptools["package-dir"] == {name: folder for folder, name in MAPPED.items()}
    found = find_packages(str(REPO), include=["otaharness", "otaharness.*"])
    for folder, name in MAPPED.items():
        found += [name + package.removeprefix(folder)
                  for package in find_packages(str(REPO), include=[folder, f"{folder}.*"])]
    assert sorted(setuptools["packages"]) == sorted(found)


def test_nothing_imports_the_folders_by_their_top_level_names():
    """`import fixtures` would be PyPI's package in a user's environment; ours is
    `otaharness.fixtures` everywhere, in the checkout as in the wheel."""
    wrong = [f"{path.relative_to(REPO)}:{line} {module}"
             for path in _python_files() for line, module in _imported_modules(path)
             if module.split(".")[0] in MAPPED]
    assert not wrong, "\n".join(wrong)


def test_codecs_runtime_and_servers_never_import_the_device_side_or_the_steps():
    upward = ("otaharness.emulators", "otaharness.steps", "otaharness.bdd", "otaharness.cli")
    wrong = []
    for layer in ("protocols", "runtime", "servers", "provision"):
        for path in (REPO / "otaharness" / layer).rglob("*.py"):
            wrong += [f"{path.relative_to(REPO)}:{line} {module}"
                      for line, module in _imported_modules(path)
                      if module.startswith(upward)]
    assert not wrong, "\n".join(wrong)


def test_in_a_checkout_the_names_are_the_top_level_folders():
    """Python started in the checkout imports its `otaharness` (the current folder comes first),
    whether or not a wheel is installed too: the three names then resolve to the folders."""
    probe = ("import otaharness.emulators.cpe, otaharness.fixtures, otaharness.steps\n"
             "print(otaharness.__file__, otaharness.steps.__file__, otaharness.emulators.cpe.__file__,"
             " otaharness.fixtures.fixture_path('tr069'))")
    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    printed = subprocess.run([sys.executable, "-c", probe], cwd=REPO, env=env, check=True,
                             capture_output=True, text=True).stdout.split()
    assert [Path(path) for path in printed] == [
        REPO / "otaharness" / "__init__.py", REPO / "steps" / "__init__.py",
        REPO / "emulators" / "cpe" / "__init__.py", REPO / "fixtures" / "tr069"]

"""otaharness: behaviour-driven end-to-end tests of remote firmware upgrades of IoT devices.

A wheel installs the step library, the device emulators and the fixtures inside this package:
``otaharness.steps``, ``otaharness.emulators``, ``otaharness.fixtures``. A source checkout keeps
them as the top-level folders ``steps/``, ``emulators/`` and ``fixtures/`` (the repository's layout
shows the architecture; pyproject.toml maps them). Run from a checkout, this package maps the three
names onto those folders, so code imports them one way everywhere.
"""

from __future__ import annotations

import importlib.abc
import importlib.util
import sys
from pathlib import Path

_CHECKOUT_FOLDERS = ("emulators", "steps", "fixtures")


class _CheckoutFolderFinder(importlib.abc.MetaPathFinder):
    """Finds ``otaharness.<folder>`` in a source checkout; their submodules then load by path."""

    def __init__(self, root: Path) -> None:
        self._packages = {f"{__name__}.{folder}": root / folder for folder in _CHECKOUT_FOLDERS}

    def find_spec(self, fullname, path=None, target=None):
        folder = self._packages.get(fullname)
        if folder is None:
            return None
        return importlib.util.spec_from_file_location(
            fullname, folder / "__init__.py", submodule_search_locations=[str(folder)])


def _map_checkout_folders() -> None:
    package = Path(__file__).resolve().parent
    if (package / "steps").is_dir():  # installed from a wheel: the folders are inside
        return
    root = package.parent
    if not all((root / folder / "__init__.py").is_file() for folder in _CHECKOUT_FOLDERS):
        return
    if not any(isinstance(finder, _CheckoutFolderFinder) for finder in sys.meta_path):
        sys.meta_path.append(_CheckoutFolderFinder(root))


_map_checkout_folders()

"""behave integration: hooks (environment.py), step support, and loading the step library.

Another repository uses our steps by calling :func:`load_step_library` once from a file in its
own steps folder, e.g. ``features/steps/ota.py``::

    from otaharness.bdd import load_step_library
    load_step_library()

and by re-exporting our hooks from its ``environment.py``::

    from otaharness.bdd.environment import *  # noqa: F401,F403
"""

from __future__ import annotations

import importlib
from pathlib import Path

import otaharness.steps

STEP_LIBRARY = Path(otaharness.steps.__file__).resolve().parent


def step_modules() -> list[str]:
    return sorted(p.stem for p in STEP_LIBRARY.glob("*.py") if not p.stem.startswith("_"))


def load_step_library(*names: str) -> None:
    """Register our steps (all modules, or the named ones) with behave, once per process."""
    available = step_modules()
    for name in names or available:
        if name not in available:
            raise LookupError(f"no step module {name!r}; there are: {', '.join(available)}")
        importlib.import_module(f"{otaharness.steps.__name__}.{name}")  # imported once: registered once

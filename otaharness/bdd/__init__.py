"""behave integration: hooks (environment.py), step support, and loading the step library.

Another repository uses our steps by calling :func:`load_step_library` once from a file in its
own steps folder, e.g. ``features/steps/ota.py``::

    from otaharness.bdd import load_step_library
    load_step_library()

and by re-exporting our hooks from its ``environment.py``::

    from otaharness.bdd.environment import *  # noqa: F401,F403
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import otaharness

# The `steps` distribution package sits beside `otaharness` (in site-packages, or at the root of
# a checkout). It is loaded from there by file rather than imported as `steps`: a user's own
# `steps` folder would shadow that name.
STEP_LIBRARY = Path(otaharness.__file__).resolve().parent.parent / "steps"
_PREFIX = "otaharness_step_library."


def step_modules() -> list[str]:
    return sorted(p.stem for p in STEP_LIBRARY.glob("*.py") if not p.stem.startswith("_"))


def load_step_library(*names: str) -> None:
    """Register our steps (all modules, or the named ones) with behave, once per process."""
    for name in names or step_modules():
        module_name = _PREFIX + name
        if module_name in sys.modules:
            continue
        path = STEP_LIBRARY / f"{name}.py"
        if not path.exists():
            raise LookupError(f"no step module {name!r}; there are: {', '.join(step_modules())}")
        spec = importlib.util.spec_from_file_location(module_name, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[module_name] = module
        spec.loader.exec_module(module)

"""otaharness's step library.

behave executes every file in this folder itself when it runs this repository's features, so
step modules never import each other (a second import would register their steps twice).

Another repository uses the library by importing it once from a file in its own steps folder
(which must not be a package, i.e. have no ``__init__.py``), e.g. ``features/steps/ota.py``::

    from steps import load_step_library
    load_step_library()

and re-exporting our hooks from its ``environment.py``::

    from otaharness.bdd.environment import *  # noqa: F401,F403
"""

import importlib

STEP_MODULES = ("common", "mqtt")


def load_step_library(*flows: str) -> None:
    """Register our steps (all modules, or the named ones) with behave, once per process."""
    for name in flows or STEP_MODULES:
        importlib.import_module(f"{__name__}.{name}")

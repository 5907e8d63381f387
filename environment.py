"""behave hooks for this repository's features (at the root, so behave finds the top-level steps/)."""

from otaharness.bdd.environment import *  # noqa: F401,F403

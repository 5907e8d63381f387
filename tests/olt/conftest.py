"""Fixtures of the OLT tests live in olt_world.py (tests import its helpers by name)."""

from olt_world import bare, broker, seed_type, world  # noqa: F401  (pytest fixtures)

"""Fixtures of the TR-069 tests (helpers live in tr069_world.py)."""

from tr069_world import cwmp_schemas, run_world  # noqa: F401  (pytest fixtures)

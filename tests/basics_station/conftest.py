"""Markers of the Basics Station tests (helpers live in basics_station_world.py)."""

from __future__ import annotations

import pytest


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "risk: documents a risky behaviour of the real system (kept on purpose)")

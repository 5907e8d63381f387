"""Fixtures of the FUOTA tests."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from fuota_live import LiveFuota


@pytest.fixture(scope="module")
def live() -> Iterator[LiveFuota]:
    """A FUOTA server with its API on real time in a thread (fuota_live.py), one per test module."""
    with tempfile.TemporaryDirectory() as directory:
        server = LiveFuota(Path(directory)).start_and_wait()
        try:
            yield server
        finally:
            server.stop()

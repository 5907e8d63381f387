"""Fixtures every test folder shares: the independent tools our bytes are checked against."""

import os
import shutil

import pytest


@pytest.fixture
def tshark() -> str:
    """Debian's tshark. Outside CI a missing tshark skips the test; under CI=true it fails it
    (CI installs it: scripts/setup)."""
    path = shutil.which("tshark")
    if path is None:
        if os.environ.get("CI") == "true":
            pytest.fail("tshark is required under CI (Debian package tshark, see scripts/setup)")
        pytest.skip("tshark is not installed (Debian package tshark)")
    return path

"""The switch interval for a serving process: longer than CPython's, and never shortened."""

from __future__ import annotations

import sys

import pytest

from otaharness.runtime.gil import SWITCH_INTERVAL, space_thread_switches


def test_the_switch_interval_is_lengthened_and_a_longer_one_kept() -> None:
    before = sys.getswitchinterval()
    try:
        sys.setswitchinterval(0.005)
        assert space_thread_switches() == pytest.approx(0.005)
        # CPython keeps it in whole microseconds
        assert sys.getswitchinterval() == pytest.approx(SWITCH_INTERVAL, abs=1e-6) and SWITCH_INTERVAL > 0.005
        sys.setswitchinterval(1.0)  # a process that chose a longer one keeps it
        space_thread_switches()
        assert sys.getswitchinterval() == pytest.approx(1.0)
    finally:
        sys.setswitchinterval(before)

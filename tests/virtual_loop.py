"""Run one coroutine on a scenario's virtual clock, as the harness does, for tests that put a
real-time peer (a thread) beside it."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

from otaharness.runtime.clock import VirtualClock, VirtualEventLoop


def run_on_virtual_clock(scenario: Callable[[VirtualClock], Coroutine[Any, Any, Any]]) -> VirtualClock:
    """``await scenario(clock)`` on a fresh virtual loop; the clock afterwards."""
    clock = VirtualClock()
    loop = VirtualEventLoop(clock)
    try:
        loop.run_until_complete(scenario(clock))
    finally:
        loop.run_until_complete(loop.shutdown_default_executor())
        loop.close()
    return clock

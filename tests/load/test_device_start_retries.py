"""A device whose start fails (its back end refusing or unreachable, a provisioning call
throttled) is started again after 1, 2, 4 ... 30 s until it starts or is removed, as a device's
own boot would; one log line per device and reason, and a few for a fleet failing alike. On the virtual clock: no real waiting."""

from __future__ import annotations

import asyncio
import logging

import pytest
from virtual_loop import run_on_virtual_clock

from otaharness.load.fleet import DeviceFleet, HostSettings, Reporter


class FlakyFleet(DeviceFleet):
    """Devices whose first ``failures`` starts raise, then start (the device is its number)."""

    kind = "cpe"

    def __init__(self, failures: int) -> None:
        super().__init__(HostSettings("cpe", 0, {}), Reporter(lambda line: None))
        self.failures = failures
        self.attempts: list[float] = []
        self.stopped: list[int] = []

    async def _start_device(self, number: int) -> int:
        self.attempts.append(asyncio.get_running_loop().time())
        if len(self.attempts) <= self.failures:
            raise ConnectionRefusedError(f"attempt {len(self.attempts)} refused")
        return number

    async def _stop_device(self, device: int) -> None:
        self.stopped.append(device)


def start_on_virtual_clock(fleet: DeviceFleet, number: int) -> None:
    """``fleet.add(number)`` to its end, virtual time passing while it waits."""

    async def scenario(clock) -> None:
        starting = asyncio.ensure_future(fleet.add(number))
        assert await clock.run_until(starting.done, timeout=3600)

    run_on_virtual_clock(scenario)


def test_a_failed_start_is_tried_again_with_growing_waits_until_it_starts(caplog) -> None:
    fleet = FlakyFleet(failures=7)

    with caplog.at_level(logging.WARNING, logger="otaharness.load.fleet"):
        start_on_virtual_clock(fleet, 1)
    waits = [round(later - earlier, 3) for earlier, later in zip(fleet.attempts, fleet.attempts[1:])]
    assert waits == [1, 2, 4, 8, 16, 30, 30]
    assert fleet.devices == {1: 1}
    said = [record.getMessage() for record in caplog.records]
    assert len(said) == 7 and "ConnectionRefusedError: attempt 1 refused" in said[0]


def test_the_same_reason_is_said_once(caplog) -> None:
    fleet = FlakyFleet(failures=3)

    async def start(number: int) -> int:
        fleet.attempts.append(0)
        if len(fleet.attempts) <= fleet.failures:
            raise ConnectionRefusedError("refused")
        return number

    fleet._start_device = start  # type: ignore[method-assign]

    with caplog.at_level(logging.WARNING, logger="otaharness.load.fleet"):
        start_on_virtual_clock(fleet, 2)
    assert len(fleet.attempts) == 4 and fleet.devices == {2: 2}
    assert len(caplog.records) == 1


def test_a_thousand_devices_failing_alike_log_a_few_lines_that_count_them_all(caplog) -> None:
    """A wrong CA or an unreachable back end fails the whole fleet the same way: the first device
    is named, the others counted and said once every 10 s, and what is counted when the worker
    ends is said then; another reason is said at once."""
    fleet = FlakyFleet(failures=0)

    async def refused(number: int) -> int:
        raise ConnectionRefusedError("refused")

    fleet._start_device = refused  # type: ignore[method-assign]

    async def scenario(clock) -> None:
        starting = [asyncio.ensure_future(fleet.add(n)) for n in range(1, 1001)]
        await clock.run_for(0.5)
        fleet._start_failures.failed("OTHER", "TimeoutError: no answer")
        await clock.run_for(15)  # every device has failed again (at 1, 3, 7 s): not counted again
        late = asyncio.ensure_future(fleet.add(1001))
        await clock.run_for(1)
        for number in range(1, 1002):
            await fleet.remove(number)
        await fleet.close()  # before the late device's 10 s are up: said now
        await clock.run_for(31)
        assert all(task.done() for task in [*starting, late])

    with caplog.at_level(logging.WARNING, logger="otaharness.load.fleet"):
        run_on_virtual_clock(scenario)
    said = [record.getMessage() for record in caplog.records]
    assert said[0].startswith("device OTAH000000001 did not start (ConnectionRefusedError: refused)")
    assert said[1].startswith("device OTHER did not start (TimeoutError: no answer)")
    assert said[2].startswith("999 more device(s) did not start alike (ConnectionRefusedError: refused): "
                              "OTAH000000002, OTAH000000003, OTAH000000004, ...")
    assert said[3].startswith("1 more device(s) did not start alike (ConnectionRefusedError: refused): "
                              "OTAH000001001;")
    assert len(said) == 4


@pytest.mark.parametrize("removed_after", [0.5, 2.5])
def test_a_device_removed_while_it_waits_to_try_again_is_not_started(removed_after: float) -> None:
    fleet = FlakyFleet(failures=100)

    async def scenario(clock) -> None:
        starting = asyncio.ensure_future(fleet.add(3))
        await clock.run_for(removed_after)
        await fleet.remove(3)
        assert await clock.run_until(starting.done, timeout=3600)
        assert asyncio.get_running_loop().time() < 10  # it stopped at its next wake-up

    run_on_virtual_clock(scenario)
    assert fleet.devices == {} and fleet.stopped == []
    assert len(fleet.attempts) == (1 if removed_after < 1 else 2)


def test_a_device_removed_while_it_was_starting_is_stopped() -> None:
    fleet = FlakyFleet(failures=0)

    async def slow_start(number: int) -> int:
        await asyncio.sleep(5)
        return number

    fleet._start_device = slow_start  # type: ignore[method-assign]

    async def scenario(clock) -> None:
        starting = asyncio.ensure_future(fleet.add(4))
        await clock.run_for(1)
        await fleet.remove(4)
        assert await clock.run_until(starting.done, timeout=3600)

    run_on_virtual_clock(scenario)
    assert fleet.devices == {} and fleet.stopped == [4]


def test_a_device_added_again_while_its_removed_start_is_in_flight_starts_after_that_one_stopped() -> None:
    """The removed start still connects (a device cannot take back what it sent); the new one
    starts only once that device is stopped, so one identity is never held twice at once."""
    fleet = FlakyFleet(failures=0)
    events: list[tuple[float, str, int]] = []

    async def slow_start(number: int) -> int:
        loop = asyncio.get_running_loop()
        events.append((loop.time(), "start", number))
        await asyncio.sleep(5)
        events.append((loop.time(), "started", number))
        return number

    async def stop(device: int) -> None:
        events.append((asyncio.get_running_loop().time(), "stopped", device))
        fleet.stopped.append(device)

    fleet._start_device = slow_start  # type: ignore[method-assign]
    fleet._stop_device = stop  # type: ignore[method-assign]

    async def scenario(clock) -> None:
        first = asyncio.ensure_future(fleet.add(7))
        await clock.run_for(1)
        await fleet.remove(7)
        second = asyncio.ensure_future(fleet.add(7))
        assert await clock.run_until(lambda: first.done() and second.done(), timeout=3600)

    run_on_virtual_clock(scenario)
    assert [(round(at, 3), what) for at, what, _ in events] == [
        (0, "start"), (5, "started"), (5, "stopped"), (5, "start"), (10, "started")]
    assert fleet.devices == {7: 7} and fleet._settled == {}


def test_a_device_added_again_while_its_started_predecessor_stops_starts_after_it_stopped() -> None:
    """Removing a started device takes the time its stop takes (a clean disconnect); an add of
    the same number meanwhile starts once that stop has ended."""
    fleet = FlakyFleet(failures=0)
    events: list[tuple[float, str, int]] = []

    async def start(number: int) -> int:
        events.append((asyncio.get_running_loop().time(), "start", number))
        return number

    async def slow_stop(device: int) -> None:
        await asyncio.sleep(3)
        events.append((asyncio.get_running_loop().time(), "stopped", device))

    fleet._start_device = start  # type: ignore[method-assign]
    fleet._stop_device = slow_stop  # type: ignore[method-assign]

    async def scenario(clock) -> None:
        await fleet.add(8)
        removing = asyncio.ensure_future(fleet.remove(8))
        await clock.run_for(1)
        adding = asyncio.ensure_future(fleet.add(8))
        assert await clock.run_until(lambda: removing.done() and adding.done(), timeout=3600)

    run_on_virtual_clock(scenario)
    assert [(round(at, 3), what) for at, what, _ in events] == [(0, "start"), (3, "stopped"), (3, "start")]
    assert fleet.devices == {8: 8} and fleet._settled == {}


def test_a_device_removed_and_added_again_while_it_waits_is_started_by_the_new_add_only() -> None:
    """A Locust user's slot is reused: the number is removed and added again while the first
    add() waits to try again; that first add() ends at its wake-up instead of trying too."""
    fleet = FlakyFleet(failures=2)

    async def scenario(clock) -> None:
        first = asyncio.ensure_future(fleet.add(6))  # fails at 0, would try again at 1
        await clock.run_for(0.5)
        await fleet.remove(6)
        second = asyncio.ensure_future(fleet.add(6))  # fails at 0.5, tries again at 1.5
        assert await clock.run_until(lambda: first.done() and second.done(), timeout=3600)

    run_on_virtual_clock(scenario)
    assert [round(at, 3) for at in fleet.attempts] == [0, 0.5, 1.5]
    assert fleet.devices == {6: 6} and fleet.stopped == []
    assert fleet._starting == {}


def test_a_defect_in_the_kind_is_logged_with_its_traceback_and_not_tried_again(caplog) -> None:
    fleet = FlakyFleet(failures=0)

    async def broken_start(number: int) -> int:
        fleet.attempts.append(0)
        return number.no_such_attribute  # type: ignore[attr-defined]

    fleet._start_device = broken_start  # type: ignore[method-assign]

    with caplog.at_level(logging.WARNING, logger="otaharness.load.fleet"):
        start_on_virtual_clock(fleet, 5)
    assert fleet.attempts == [0] and fleet.devices == {}
    [record] = caplog.records
    assert record.levelno == logging.ERROR and record.exc_info[0] is AttributeError

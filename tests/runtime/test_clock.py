"""The virtual clock: time jumps only when quiet, and days cost no real waiting."""

import asyncio
import datetime as dt
import threading
import time

import pytest

from otaharness.runtime.clock import (
    UTC, ClockStuck, VirtualClock, VirtualEventLoop, gps_seconds, unix_from_gps)


def run_virtual(main, clock=None):
    clock = clock or VirtualClock()
    loop = VirtualEventLoop(clock)
    try:
        return loop.run_until_complete(main(clock))
    finally:
        loop.run_until_complete(loop.shutdown_default_executor())
        loop.close()


def test_simulated_days_cost_no_real_waiting():
    fired = []

    async def main(clock):
        loop = asyncio.get_running_loop()
        for day in range(1, 31):
            loop.call_later(day * 86400, fired.append, day)
        await clock.run_for(30 * 86400)
        return clock

    clock = run_virtual(main)
    assert fired == list(range(1, 31))
    assert clock.monotonic() == 30 * 86400
    assert clock.stats.jumps == 30
    # No real wait happened: every select() was a poll.
    assert clock.stats.busy_waits == 0 and clock.stats.idle_waits == 0


def test_sleep_and_timeouts_follow_virtual_time():
    async def main(clock):
        async def sleeper():
            await asyncio.sleep(3600)
            return clock.monotonic()

        task = asyncio.ensure_future(sleeper())
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(10):
                await clock.run_for(20)  # time passes while we wait: the 10 s timeout fires
        done = await clock.run_until(task.done, timeout=7200)
        return done, task.result()

    assert run_virtual(main) == (True, 3600)


def test_time_does_not_jump_while_a_thread_is_busy():
    async def main(clock):
        loop = asyncio.get_running_loop()
        result = loop.create_future()

        def work():
            time.sleep(0.3)  # real work outside the loop, unknown to asyncio
            loop.call_soon_threadsafe(result.set_result, "done")

        timeout = loop.call_later(60, lambda: result.done() or result.set_result("timed out"))

        async def wait_for_worker():
            with clock.busy("worker thread"):
                await result

        worker = threading.Thread(target=work)
        worker.start()
        waiting = asyncio.ensure_future(wait_for_worker())
        await clock.run_until(waiting.done, timeout=120)
        worker.join()
        timeout.cancel()
        return result.result(), clock.monotonic(), clock.stats.busy_waits

    outcome, now, busy_waits = run_virtual(main)
    assert outcome == "done"
    assert now == 0
    assert busy_waits > 0


def test_executor_jobs_count_as_busy():
    async def main(clock):
        loop = asyncio.get_running_loop()
        job = loop.run_in_executor(None, time.sleep, 0.2)
        assert clock.busy_reasons
        timer = asyncio.ensure_future(asyncio.sleep(5))
        await clock.run_until(job.done, timeout=10)
        assert not timer.done()
        timer.cancel()
        await asyncio.gather(timer, return_exceptions=True)
        return clock.monotonic(), clock.busy_reasons

    assert run_virtual(main) == (0, {})


def test_without_the_busy_mark_time_would_jump():
    """Shows the tests above can fail: an unmarked thread lets the timeout fire."""

    async def main(clock):
        loop = asyncio.get_running_loop()
        result = loop.create_future()
        threading.Thread(
            target=lambda: (time.sleep(0.3), loop.call_soon_threadsafe(
                lambda: result.done() or result.set_result("done")))).start()
        loop.call_later(60, lambda: result.done() or result.set_result("timed out"))
        await clock.run_until(result.done, timeout=120)
        # Let the thread finish before the loop closes.
        await asyncio.get_running_loop().run_in_executor(None, time.sleep, 0.4)
        return result.result()

    assert run_virtual(main) == "timed out"


def test_run_until_checks_the_predicate_at_quiet_moments():
    async def main(clock):
        state = {"n": 0}

        async def ticker():
            while True:
                await asyncio.sleep(60)
                state["n"] += 1

        task = asyncio.ensure_future(ticker())
        reached = await clock.run_until(lambda: state["n"] >= 5, timeout=3600)
        at = clock.monotonic()
        missed = await clock.run_until(lambda: state["n"] >= 1000, timeout=600)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        return reached, at, missed, clock.monotonic()

    assert run_virtual(main) == (True, 300, False, 900)


def test_a_system_that_never_quiets_is_reported():
    async def main(clock):
        with clock.busy("a request that never ends"):
            with pytest.raises(ClockStuck, match="a request that never ends"):
                await clock.run_for(10)

    run_virtual(main, VirtualClock(real_time_limit=0.3))


def test_wall_clock_and_gps_time():
    clock = VirtualClock(dt.datetime(2026, 3, 2, 2, tzinfo=UTC))
    assert clock.utcnow() == dt.datetime(2026, 3, 2, 2, tzinfo=UTC)
    # GPS was 18 s ahead of UTC from 2017-01-01 on.
    assert clock.gps() == clock.epoch() - 315964800 + 18
    assert gps_seconds(dt.datetime(1980, 1, 6, tzinfo=UTC).timestamp()) == 0
    assert gps_seconds(dt.datetime(2016, 12, 31, 23, 59, 59, tzinfo=UTC).timestamp()) == (
        dt.datetime(2016, 12, 31, 23, 59, 59, tzinfo=UTC).timestamp() - 315964800 + 17)
    for unix in (315964800.0, 1483228799.0, 1483228800.0, clock.epoch()):
        assert unix_from_gps(gps_seconds(unix)) == unix
    clock.set_utc(dt.datetime(2030, 1, 1, tzinfo=UTC))
    assert clock.utcnow().year == 2030 and clock.monotonic() == 0
    with pytest.raises(ValueError, match="time zone"):
        clock.set_utc(dt.datetime(2030, 1, 1))


def test_wall_clock_reads_follow_the_virtual_clock_when_asked():
    clock = VirtualClock(dt.datetime(2026, 3, 2, 2, tzinfo=UTC), follow_wall_clock=True)
    try:
        async def main(clock):
            await clock.run_for(7200)
            return time.time(), dt.datetime.now(UTC)

        unix, now = run_virtual(main, clock)
        assert unix == dt.datetime(2026, 3, 2, 4, tzinfo=UTC).timestamp()
        assert now == dt.datetime(2026, 3, 2, 4, tzinfo=UTC)
    finally:
        clock.close()
    assert time.time() > dt.datetime(2026, 11, 1, tzinfo=UTC).timestamp()


def test_waiting_on_a_timer_while_nobody_lets_time_pass_is_reported(caplog, monkeypatch):
    import otaharness.runtime.clock as clock_module

    monkeypatch.setattr(clock_module, "FROZEN_WARNING_AFTER", 0.1)

    async def main(clock):
        loop = asyncio.get_running_loop()
        waiter = loop.create_future()
        loop.call_later(5, waiter.set_result, "late")
        # A thread resolves it after 0.4 s of real time; meanwhile the timer can never fire.
        threading.Timer(0.4, loop.call_soon_threadsafe, (
            lambda: waiter.done() or waiter.set_result("woken"),)).start()
        return await waiter

    assert run_virtual(main) == "woken"
    assert "nothing lets scenario time pass" in caplog.text


def test_a_long_run_that_keeps_reaching_quiet_moments_is_not_stuck():
    """The stuck limit counts real time without a quiet moment, not the length of the run."""

    async def main(clock):
        loop = asyncio.get_running_loop()

        async def worker():
            while True:
                with clock.busy("a slow step"):
                    await loop.run_in_executor(None, time.sleep, 0.05)
                await asyncio.sleep(1)

        task = asyncio.ensure_future(worker())
        await clock.run_for(12)  # about 0.6 s of real time, over a 0.3 s limit
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        return clock.monotonic()

    assert run_virtual(main, VirtualClock(real_time_limit=0.3)) == 12

"""BackgroundTasks: kept, failures reported, all cancelled on stop."""

import asyncio

from otaharness.runtime.tasks import BackgroundTasks


async def test_failures_go_to_the_hook_and_finished_tasks_are_dropped():
    errors = []
    tasks = BackgroundTasks("device", on_error=errors.append)

    async def fail():
        raise ValueError("broken")

    tasks.spawn(fail())
    tasks.spawn(asyncio.sleep(0))
    await asyncio.sleep(0.01)
    assert [str(e) for e in errors] == ["broken"]
    assert len(tasks) == 0


async def test_cancel_all_spares_the_calling_task():
    tasks = BackgroundTasks("server")
    sleeper = tasks.spawn(asyncio.sleep(3600), name="sleeper")

    async def stopper():
        await tasks.cancel_all()
        return "stopped"

    stopping = tasks.spawn(stopper())
    assert await stopping == "stopped"
    assert sleeper.cancelled() and sleeper.get_name() == "server sleeper"

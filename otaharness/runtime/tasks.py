"""Background tasks of one component (a device, a server): referenced while they run, failures
logged, and all cancelled and awaited when the component stops, so a scenario leaves none behind."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine, Iterator
from typing import Any

log = logging.getLogger(__name__)

ErrorHook = Callable[[BaseException], None]


class BackgroundTasks:
    def __init__(self, owner: str, on_error: ErrorHook | None = None) -> None:
        self.owner = owner
        self._on_error = on_error
        self._tasks: set[asyncio.Task[Any]] = set()

    def spawn(self, coroutine: Coroutine[Any, Any, Any], *, name: str | None = None,
              on_error: ErrorHook | None = None) -> asyncio.Task[Any]:
        """Run ``coroutine`` as a task; an exception it ends with goes to ``on_error`` (this
        call's, else the owner's), else to the log."""
        task = asyncio.ensure_future(coroutine)
        if name is not None:
            task.set_name(f"{self.owner} {name}")
        self._tasks.add(task)
        task.add_done_callback(lambda done: self._done(done, on_error or self._on_error))
        return task

    def _done(self, task: asyncio.Task[Any], on_error: ErrorHook | None) -> None:
        self._tasks.discard(task)
        if task.cancelled() or task.exception() is None:
            return
        if on_error is not None:
            on_error(task.exception())
        else:
            log.error("%s: background task failed", self.owner, exc_info=task.exception())

    async def cancel_all(self) -> None:
        """Cancel every task (but the one calling) and wait until they have ended."""
        current = asyncio.current_task()
        tasks = [task for task in self._tasks if task is not current]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def __len__(self) -> int:
        return len(self._tasks)

    def __iter__(self) -> Iterator[asyncio.Task[Any]]:
        return iter(list(self._tasks))

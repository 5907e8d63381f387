"""A back end serving on its own real-time event loop in a thread, for tests that reach it from
outside as a client would (schemathesis, ``requests``, hypothesis with one request per example).

Subclasses write ``serve()``: start the servers, publish their URLs, ``await self.serving()``
(ready, then wait for ``stop()``), then stop them. ``call(fn)`` runs ``fn`` (plain or async) on
the back end's loop, where its SQLite connections belong."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

T = TypeVar("T")


class LiveLoop(threading.Thread):
    start_timeout = 20.0
    call_timeout = 20.0

    def __init__(self, name: str) -> None:
        super().__init__(name=name, daemon=True)
        self.loop = asyncio.new_event_loop()
        self.ready = threading.Event()
        self.failure: BaseException | None = None
        self._stopped: asyncio.Event | None = None

    async def serve(self) -> None:
        raise NotImplementedError

    async def serving(self) -> None:
        """Mark the back end ready, then wait until ``stop()``."""
        assert self._stopped is not None
        self.ready.set()
        await self._stopped.wait()

    def run(self) -> None:
        try:
            self.loop.run_until_complete(self._main())
        except BaseException as error:  # raised by start_and_wait
            self.failure = error
            self.ready.set()

    async def _main(self) -> None:
        self._stopped = asyncio.Event()
        await self.serve()

    def start_and_wait(self) -> Any:
        self.start()
        assert self.ready.wait(self.start_timeout), f"{self.name} did not start"
        if self.failure is not None:
            raise self.failure
        return self

    def call(self, function: Callable[..., T | Awaitable[T]], *args: Any) -> T:
        async def on_loop() -> T:
            result = function(*args)
            return await result if asyncio.iscoroutine(result) else result  # type: ignore[return-value]

        return asyncio.run_coroutine_threadsafe(on_loop(), self.loop).result(self.call_timeout)

    def stop(self) -> None:
        if self._stopped is not None:
            self.loop.call_soon_threadsafe(self._stopped.set)
        self.join(self.start_timeout)
        self.loop.close()

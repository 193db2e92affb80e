"""The one long-running task a component keeps beside the requests (a flusher, a sweep, a
worker): started at most once, cancelled and awaited when the component closes."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Coroutine
from typing import Any


class BackgroundTask:
    def __init__(self, name: str) -> None:
        self.name = name
        self._task: asyncio.Task[None] | None = None

    @property
    def running(self) -> bool:
        return self._task is not None

    def start(self, work: Callable[[], Coroutine[Any, Any, None]]) -> None:
        """Runs `work()` unless it already runs (starting twice is a no-op)."""
        if self._task is None:
            self._task = asyncio.create_task(work(), name=self.name)

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

from __future__ import annotations

import math
import time
from collections.abc import Callable

from budapp.adapters.cache.base import WindowCount

# Expired windows are swept once the table grows past this many keys, so a flood of distinct
# keys (e.g. login attempts from many addresses) cannot grow memory without bound.
_SWEEP_THRESHOLD = 10_000


class MemoryWindowCounter:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._windows: dict[str, tuple[int, float]] = {}
        self._now = clock

    async def increment(self, key: str, window_seconds: int) -> WindowCount:
        now = self._now()
        count, expires = self._windows.get(key, (0, 0.0))
        if expires <= now:
            count, expires = 0, now + window_seconds
        count += 1
        self._windows[key] = (count, expires)
        if len(self._windows) > _SWEEP_THRESHOLD:
            self._sweep(now)
        return WindowCount(count, math.ceil(expires - now))

    async def current(self, key: str) -> WindowCount:
        now = self._now()
        count, expires = self._windows.get(key, (0, 0.0))
        if expires <= now:
            return WindowCount(0, 0)
        return WindowCount(count, math.ceil(expires - now))

    async def clear(self, key: str) -> None:
        self._windows.pop(key, None)

    async def ping(self) -> None:
        return None

    async def close(self) -> None:
        self._windows.clear()

    def _sweep(self, now: float) -> None:
        for key in [k for k, (_, expires) in self._windows.items() if expires <= now]:
            del self._windows[key]

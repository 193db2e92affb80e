from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True, slots=True)
class WindowCount:
    count: int
    # Seconds until the window (and so the count) expires; 0 when there is no count.
    resets_in: int


class WindowCounter(Protocol):
    """Fixed-window counters keyed by string; a window starts at a key's first increment."""

    async def increment(self, key: str, window_seconds: int) -> WindowCount: ...

    async def current(self, key: str) -> WindowCount: ...

    async def clear(self, key: str) -> None: ...

    async def ping(self) -> None: ...

    async def close(self) -> None: ...

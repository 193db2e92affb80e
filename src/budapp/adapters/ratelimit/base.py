from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, Protocol


@dataclass(frozen=True, slots=True)
class Budget:
    """One limit to check: `requests` budgets are charged one per admitted request; `tokens`
    budgets are charged after the response (its usage) and refuse once spent."""

    key: str
    limit: int
    kind: Literal["requests", "tokens"]


@dataclass(frozen=True, slots=True)
class Outcome:
    allowed: bool
    # Per budget, in the order given: requests counted so far including this one when
    # allowed, tokens spent so far.
    counts: tuple[int, ...]
    # The first budget that refused, when not allowed.
    refused: int | None
    resets_in: float


class RateLimiter(Protocol):
    async def acquire(self, budgets: Sequence[Budget], window_seconds: int) -> Outcome:
        """Admits a request when every budget has room, and then charges each `requests`
        budget one; all or nothing, atomically."""
        ...

    async def spend(self, keys: Sequence[str], tokens: int, window_seconds: int) -> None: ...

    async def close(self) -> None: ...


def window_of(window_seconds: int, now: float | None = None) -> tuple[int, float]:
    """The fixed window containing `now` (its number) and the seconds until it ends."""
    now = time.time() if now is None else now
    return int(now // window_seconds), window_seconds - (now % window_seconds)

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, Protocol


@dataclass(frozen=True, slots=True)
class Budget:
    """One limit to check: `requests` budgets are charged one per admitted request; `tokens`
    budgets are charged the call's reservation when it is admitted (its prompt and its
    `max_tokens`), corrected to its real usage after the response, and refuse once spent."""

    key: str
    limit: int
    kind: Literal["requests", "tokens"]


@dataclass(frozen=True, slots=True)
class Outcome:
    allowed: bool
    # Per budget, in the order given: requests counted so far including this one when
    # allowed, tokens spent or reserved so far (this call's reservation included).
    counts: tuple[int, ...]
    # The first budget that refused, when not allowed.
    refused: int | None
    resets_in: float
    # The window the call was counted in: where its token reservation is corrected.
    window: int = 0


class RateLimiter(Protocol):
    async def acquire(
        self, budgets: Sequence[Budget], window_seconds: int, tokens: int = 0
    ) -> Outcome:
        """Admits a request when every `requests` budget has room for it and no `tokens`
        budget is spent, and then charges each `requests` budget one and each `tokens` budget
        `tokens` (the call's reservation); all or nothing, atomically."""
        ...

    async def spend(
        self, keys: Sequence[str], tokens: int, window_seconds: int, window: int | None = None
    ) -> None:
        """Adds `tokens` to the `tokens` budgets `keys` in `window` (the current one when
        None); negative to give back what a reservation took beyond the real usage."""
        ...

    async def close(self) -> None: ...


def window_of(window_seconds: int, now: float | None = None) -> tuple[int, float]:
    """The fixed window containing `now` (its number) and the seconds until it ends."""
    now = time.time() if now is None else now
    return int(now // window_seconds), window_seconds - (now % window_seconds)

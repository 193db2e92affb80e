from __future__ import annotations

from collections.abc import Sequence

from budapp.adapters.ratelimit.base import Budget, Outcome, window_of


class MemoryRateLimiter:
    """One replica's counters. Checks and charges run without an await in between, so on one
    event loop they are atomic."""

    def __init__(self) -> None:
        self._counts: dict[tuple[str, int], int] = {}
        self._window = -1

    async def acquire(
        self, budgets: Sequence[Budget], window_seconds: int, tokens: int = 0
    ) -> Outcome:
        window, resets_in = window_of(window_seconds)
        self._expire(window)
        counts = [self._counts.get((b.key, window), 0) for b in budgets]
        for index, (budget, count) in enumerate(zip(budgets, counts, strict=True)):
            spent = count + 1 if budget.kind == "requests" else count
            if spent > budget.limit or (budget.kind == "tokens" and count >= budget.limit):
                return Outcome(False, tuple(counts), index, resets_in, window)
        for index, budget in enumerate(budgets):
            counts[index] += 1 if budget.kind == "requests" else tokens
            self._counts[(budget.key, window)] = counts[index]
        return Outcome(True, tuple(counts), None, resets_in, window)

    async def spend(
        self, keys: Sequence[str], tokens: int, window_seconds: int, window: int | None = None
    ) -> None:
        current, _ = window_of(window_seconds)
        self._expire(current)
        window = current if window is None else window
        if window < current:
            return  # that window is over: nothing counts in it any more
        for key in keys:
            self._counts[(key, window)] = self._counts.get((key, window), 0) + tokens

    async def close(self) -> None:
        self._counts.clear()

    def _expire(self, window: int) -> None:
        if window != self._window:
            self._counts = {k: v for k, v in self._counts.items() if k[1] >= window}
            self._window = window

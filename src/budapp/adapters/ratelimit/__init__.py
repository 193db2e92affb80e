"""Request and token budgets per fixed window (the gateway's RPM/TPM limits): in-process for
one replica, Redis (one atomic round trip) when several replicas share the limits."""

from __future__ import annotations

from budapp.adapters.ratelimit.base import Budget, Outcome, RateLimiter
from budapp.adapters.ratelimit.memory import MemoryRateLimiter


def create_rate_limiter(redis_url: str, *, prefix: str = "budapp:rl:") -> RateLimiter:
    if not redis_url:
        return MemoryRateLimiter()
    from budapp.adapters.ratelimit.redis import RedisRateLimiter  # noqa: PLC0415 - optional backend

    return RedisRateLimiter.from_url(redis_url, prefix=prefix)


__all__ = ["Budget", "MemoryRateLimiter", "Outcome", "RateLimiter", "create_rate_limiter"]

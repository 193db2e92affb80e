"""Counters for rate limits: in-process for one replica, Redis when several share the limits."""

from __future__ import annotations

from budapp.adapters.cache.base import WindowCount, WindowCounter
from budapp.adapters.cache.memory import MemoryWindowCounter


def create_window_counter(redis_url: str) -> WindowCounter:
    if not redis_url:
        return MemoryWindowCounter()
    from budapp.adapters.cache.redis import RedisWindowCounter  # noqa: PLC0415 - optional backend

    return RedisWindowCounter.from_url(redis_url)


__all__ = ["WindowCount", "WindowCounter", "create_window_counter"]

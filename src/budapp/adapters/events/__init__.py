"""Fan-out of small notifications to every replica (cache invalidation, configuration
changes): in-process for one replica, Redis pub/sub when several run."""

from __future__ import annotations

from budapp.adapters.events.base import EventBus, Handler
from budapp.adapters.events.memory import MemoryEventBus


def create_event_bus(redis_url: str) -> EventBus:
    if not redis_url:
        return MemoryEventBus()
    from budapp.adapters.events.redis import RedisEventBus  # noqa: PLC0415 - optional backend

    return RedisEventBus.from_url(redis_url)


__all__ = ["EventBus", "Handler", "MemoryEventBus", "create_event_bus"]

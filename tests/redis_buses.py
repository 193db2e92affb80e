"""Two Redis event buses on one Redis: two replicas' views of the same fan-out."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
from redis.asyncio import Redis

from budapp.adapters.events.redis import RedisEventBus


async def require_redis(url: str) -> None:
    """Skips the test when Redis is not reachable, unless BUDAPP_REQUIRE_REDIS=1 (CI)."""
    probe = Redis.from_url(url)
    try:
        await probe.ping()
    except Exception as exc:
        if os.environ.get("BUDAPP_REQUIRE_REDIS") == "1":
            raise
        pytest.skip(f"Redis not reachable at {url}: {exc}")
    finally:
        await probe.aclose()


@asynccontextmanager
async def replica_bus_pair(url: str) -> AsyncIterator[tuple[RedisEventBus, RedisEventBus]]:
    """Two buses on the Redis at `url` (see `require_redis`)."""
    await require_redis(url)
    one, two = RedisEventBus.from_url(url), RedisEventBus.from_url(url)
    try:
        yield one, two
    finally:
        await one.close()
        await two.close()

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator

import pytest

from budapp.adapters.cache import WindowCounter, create_window_counter
from budapp.adapters.cache.memory import MemoryWindowCounter
from budapp.adapters.cache.redis import RedisWindowCounter
from tests.redis_buses import require_redis

REDIS_URL = os.environ.get("BUDAPP_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")


async def _redis_counter() -> RedisWindowCounter:
    await require_redis(REDIS_URL)
    return RedisWindowCounter.from_url(REDIS_URL)


@pytest.fixture(params=["memory", "redis"])
async def counter(request: pytest.FixtureRequest) -> AsyncIterator[WindowCounter]:
    backend: WindowCounter = (
        MemoryWindowCounter() if request.param == "memory" else await _redis_counter()
    )
    yield backend
    await backend.close()


def _key() -> str:
    return f"test:{uuid.uuid4().hex}"


async def test_increment_counts_within_a_window(counter: WindowCounter) -> None:
    key = _key()
    assert (await counter.increment(key, 60)).count == 1
    second = await counter.increment(key, 60)
    assert second.count == 2
    assert 0 < second.resets_in <= 60
    assert (await counter.current(key)).count == 2


async def test_unknown_key_counts_zero(counter: WindowCounter) -> None:
    assert await counter.current(_key()) == (await counter.current(_key()))
    assert (await counter.current(_key())).count == 0


async def test_clear_resets_the_count(counter: WindowCounter) -> None:
    key = _key()
    await counter.increment(key, 60)
    await counter.clear(key)
    assert (await counter.current(key)).count == 0


async def test_window_expires(counter: WindowCounter) -> None:
    key = _key()
    await counter.increment(key, 1)
    await asyncio.sleep(1.1)
    assert (await counter.current(key)).count == 0
    assert (await counter.increment(key, 1)).count == 1


async def test_concurrent_increments_are_not_lost(counter: WindowCounter) -> None:
    key = _key()
    await asyncio.gather(*(counter.increment(key, 60) for _ in range(50)))
    assert (await counter.current(key)).count == 50


async def test_memory_counter_sweeps_expired_windows() -> None:
    now = [0.0]
    counter = MemoryWindowCounter(clock=lambda: now[0])
    for i in range(10_001):
        await counter.increment(f"k{i}", 1)
    # Past the threshold, but nothing has expired yet: every window is kept.
    assert len(counter._windows) == 10_001
    now[0] = 5.0
    await counter.increment("fresh", 1)
    assert list(counter._windows) == ["fresh"]


def test_factory_picks_backend_from_settings() -> None:
    assert isinstance(create_window_counter(""), MemoryWindowCounter)
    assert isinstance(create_window_counter("redis://127.0.0.1:6379/0"), RedisWindowCounter)

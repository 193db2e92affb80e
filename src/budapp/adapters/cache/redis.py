from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import RedisError

from budapp.adapters.cache.base import WindowCount
from budapp.core.errors import ServiceUnavailable

# INCR and EXPIRE in one atomic round trip; the expiry is set by the first hit of a window only.
_INCREMENT = """
local count = redis.call('INCR', KEYS[1])
if count == 1 then redis.call('EXPIRE', KEYS[1], ARGV[1]) end
return {count, redis.call('TTL', KEYS[1])}
"""

_PREFIX = "budapp:window:"


class RedisWindowCounter:
    def __init__(self, client: Redis) -> None:
        self._client = client
        self._increment = client.register_script(_INCREMENT)

    @classmethod
    def from_url(cls, url: str) -> RedisWindowCounter:
        return cls(Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2))

    async def increment(self, key: str, window_seconds: int) -> WindowCount:
        async with _available():
            result: Any = await self._increment(keys=[_PREFIX + key], args=[window_seconds])
        count, ttl = int(result[0]), int(result[1])
        return WindowCount(count, max(ttl, 0))

    async def current(self, key: str) -> WindowCount:
        async with _available(), self._client.pipeline(transaction=False) as pipe:
            pipe.get(_PREFIX + key)
            pipe.ttl(_PREFIX + key)
            raw, ttl = await pipe.execute()
        if raw is None:
            return WindowCount(0, 0)
        return WindowCount(int(raw), max(int(ttl), 0))

    async def clear(self, key: str) -> None:
        async with _available():
            await self._client.delete(_PREFIX + key)

    async def ping(self) -> None:
        await self._client.ping()

    async def close(self) -> None:
        await self._client.aclose()


@asynccontextmanager
async def _available() -> AsyncIterator[None]:
    """An unreachable cache is a 503 for the caller, not an unexplained 500."""
    try:
        yield
    except RedisError as exc:
        raise ServiceUnavailable("The cache backend is unavailable") from exc

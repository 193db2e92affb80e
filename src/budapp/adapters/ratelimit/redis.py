from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import RedisError

from budapp.adapters.ratelimit.base import Budget, Outcome, window_of
from budapp.core.errors import ServiceUnavailable

# Checks every budget, then charges the request budgets one and the token budgets the call's
# reservation, in one atomic script: replicas sharing the limits cannot both take the last
# request of a window, nor both start calls on the last tokens.
# KEYS: the budgets' counters; ARGV[1]: window seconds; ARGV[2]: the tokens to reserve; then
# per key its limit and kind (1: requests, 0: tokens).
_ACQUIRE = """
local ttl = tonumber(ARGV[1])
local reserve = tonumber(ARGV[2])
local counts = {}
local refused = 0
for i = 1, #KEYS do
  local count = tonumber(redis.call('GET', KEYS[i]) or '0')
  local limit = tonumber(ARGV[2 * i + 1])
  local requests = ARGV[2 * i + 2] == '1'
  counts[i] = count
  if refused == 0 and ((requests and count + 1 > limit) or ((not requests) and count >= limit)) then
    refused = i
  end
end
if refused > 0 then return {0, refused, unpack(counts)} end
for i = 1, #KEYS do
  local charge = reserve
  if ARGV[2 * i + 2] == '1' then charge = 1 end
  if charge > 0 then
    counts[i] = redis.call('INCRBY', KEYS[i], charge)
    if counts[i] == charge then redis.call('EXPIRE', KEYS[i], ttl) end
  end
end
return {1, 0, unpack(counts)}
"""


class RedisRateLimiter:
    def __init__(self, client: Redis, *, prefix: str = "budapp:rl:") -> None:
        self._client = client
        self._prefix = prefix
        self._acquire = client.register_script(_ACQUIRE)

    @classmethod
    def from_url(cls, url: str, *, prefix: str = "budapp:rl:") -> RedisRateLimiter:
        return cls(Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2), prefix=prefix)

    def _key(self, key: str, window: int) -> str:
        return f"{self._prefix}{key}:{window}"

    async def acquire(
        self, budgets: Sequence[Budget], window_seconds: int, tokens: int = 0
    ) -> Outcome:
        window, resets_in = window_of(window_seconds)
        args: list[Any] = [window_seconds + 1, max(tokens, 0)]
        for budget in budgets:
            args += [budget.limit, 1 if budget.kind == "requests" else 0]
        keys = [self._key(b.key, window) for b in budgets]
        try:
            result: Any = await self._acquire(keys=keys, args=args)
        except RedisError as exc:
            raise ServiceUnavailable("The rate-limit backend is unavailable") from exc
        counts = tuple(int(c) for c in result[2:])
        if int(result[0]) == 1:
            return Outcome(True, counts, None, resets_in, window)
        return Outcome(False, counts, int(result[1]) - 1, resets_in, window)

    async def spend(
        self, keys: Sequence[str], tokens: int, window_seconds: int, window: int | None = None
    ) -> None:
        current, _ = window_of(window_seconds)
        window = current if window is None else window
        if not keys or not tokens or window < current:
            return
        try:
            async with self._client.pipeline(transaction=False) as pipe:
                for key in keys:
                    pipe.incrby(self._key(key, window), tokens)
                    pipe.expire(self._key(key, window), window_seconds + 1)
                await pipe.execute()
        except RedisError:
            # Tokens are charged after the answer left; losing a charge must not fail it.
            return

    async def close(self) -> None:
        await self._client.aclose()

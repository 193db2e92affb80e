"""RPM/TPM limits per API key, per project and per router target: 429 with Retry-After and
OpenAI's x-ratelimit headers, no overshoot under concurrency, in-process and on Redis."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI
from redis.asyncio import Redis

from budapp.adapters.ratelimit import Budget, MemoryRateLimiter, RateLimiter
from budapp.adapters.ratelimit.redis import RedisRateLimiter
from budapp.core.components import components
from budapp.gateway.proxy import GATEWAY
from tests.factories import World
from tests.gateway.conftest import (
    SimFactory,
    create_router,
    new_key,
    set_limits,
    url_target,
    within_one_window,
)
from tests.sim.conftest import RunningSim

REDIS_URL = "redis://127.0.0.1:6379/4"


@pytest.fixture(autouse=True)
async def whole_window() -> None:
    await within_one_window()


@pytest.fixture(params=["memory", "redis"])
async def limiter(request: pytest.FixtureRequest, app: FastAPI) -> AsyncIterator[RateLimiter]:
    """The gateway's limiter: in-process, or the real Redis (its own db and key prefix)."""
    gateway = components(app)[GATEWAY]
    original = gateway.limiter
    chosen: RateLimiter
    if request.param == "redis":
        chosen = RedisRateLimiter.from_url(REDIS_URL, prefix=f"test-gw:{uuid.uuid4().hex}:")
    else:
        chosen = MemoryRateLimiter()
    gateway.limiter = chosen
    try:
        yield chosen
    finally:
        gateway.limiter = original
        await chosen.close()


async def call(http: httpx.AsyncClient, key: str, model: str) -> httpx.Response:
    return await http.post(
        "/v1/chat/completions",
        json={"model": model, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4},
        headers={"Authorization": f"Bearer {key}"},
    )


@pytest.fixture
async def http(gateway_url: str) -> AsyncIterator[httpx.AsyncClient]:
    limits = httpx.Limits(max_connections=100)
    async with httpx.AsyncClient(base_url=gateway_url, timeout=30, limits=limits) as client:
        yield client


async def test_key_rpm_under_concurrency_admits_exactly_the_limit(
    limiter: RateLimiter,
    client: httpx.AsyncClient,
    world: World,
    http: httpx.AsyncClient,
    sim: RunningSim,
) -> None:
    del limiter
    await set_limits(client, world, key_rpm=25)
    router = await create_router(client, world, [url_target(sim)])
    key = await new_key(client, world)
    responses = await asyncio.gather(*[call(http, key["key"], router["name"]) for _ in range(60)])
    statuses = [r.status_code for r in responses]
    assert statuses.count(200) == 25, statuses
    assert statuses.count(429) == 35
    refused = next(r for r in responses if r.status_code == 429)
    assert refused.json()["error"]["code"] == "rate_limit_exceeded"
    assert 1 <= int(refused.headers["retry-after"]) <= 60
    assert refused.headers["x-ratelimit-limit-requests"] == "25"
    assert refused.headers["x-ratelimit-remaining-requests"] == "0"
    assert refused.headers["x-ratelimit-reset-requests"].endswith("s")


async def test_each_key_has_its_own_budget_and_the_project_one_in_all(
    limiter: RateLimiter,
    client: httpx.AsyncClient,
    world: World,
    http: httpx.AsyncClient,
    sim: RunningSim,
) -> None:
    del limiter
    await set_limits(client, world, key_rpm=3, rpm=5)
    router = await create_router(client, world, [url_target(sim)])
    first, second = await new_key(client, world), await new_key(client, world)
    one = [(await call(http, first["key"], router["name"])).status_code for _ in range(4)]
    two = [(await call(http, second["key"], router["name"])).status_code for _ in range(3)]
    assert one == [200, 200, 200, 429]
    # The project's 5 requests are spent after the second key's second call.
    assert two == [200, 200, 429]
    ok = await call(http, first["key"], router["name"])
    assert ok.status_code == 429


async def test_remaining_requests_count_down(
    limiter: RateLimiter,
    client: httpx.AsyncClient,
    world: World,
    http: httpx.AsyncClient,
    sim: RunningSim,
) -> None:
    del limiter
    await set_limits(client, world, key_rpm=10)
    router = await create_router(client, world, [url_target(sim)])
    key = await new_key(client, world)
    remaining = [
        (await call(http, key["key"], router["name"])).headers["x-ratelimit-remaining-requests"]
        for _ in range(3)
    ]
    assert remaining == ["9", "8", "7"]


async def test_tpm_refuses_once_the_tokens_are_spent(
    app: FastAPI,
    limiter: RateLimiter,
    client: httpx.AsyncClient,
    world: World,
    http: httpx.AsyncClient,
    sim: RunningSim,
) -> None:
    del limiter
    router = await create_router(client, world, [url_target(sim)])
    probe = await call(http, (await new_key(client, world))["key"], router["name"])
    per_call = probe.json()["usage"]["total_tokens"]
    # Room for two calls and a bit: the third still starts (the budget is not spent before
    # it), the fourth does not.
    await set_limits(client, world, key_tpm=2 * per_call + 1)
    key = await new_key(client, world)
    statuses = []
    for _ in range(4):
        response = await call(http, key["key"], router["name"])
        statuses.append(response.status_code)
        # Tokens are charged just after the answer; wait for the charge to land.
        await components(app)[GATEWAY].drain()
    assert statuses == [200, 200, 200, 429]
    assert response.headers["x-ratelimit-limit-tokens"] == str(2 * per_call + 1)
    assert response.headers["x-ratelimit-remaining-tokens"] == "0"
    assert response.json()["error"]["type"] == "tokens"


async def test_tpm_under_concurrency_overshoots_by_at_most_one_call(
    app: FastAPI,
    limiter: RateLimiter,
    client: httpx.AsyncClient,
    world: World,
    http: httpx.AsyncClient,
    sim: RunningSim,
) -> None:
    """Calls in flight hold their prompt and `max_tokens` from the budget: a burst cannot
    all start on a budget that has room for a few of them."""
    del limiter
    router = await create_router(client, world, [url_target(sim)])
    probe = await call(http, (await new_key(client, world))["key"], router["name"])
    per_call = probe.json()["usage"]["total_tokens"]
    budget = 5 * per_call
    await set_limits(client, world, key_tpm=budget)
    key = await new_key(client, world)
    responses = await asyncio.gather(*[call(http, key["key"], router["name"]) for _ in range(30)])
    await components(app)[GATEWAY].drain()
    spent = sum(r.json()["usage"]["total_tokens"] for r in responses if r.status_code == 200)
    assert {r.status_code for r in responses} == {200, 429}
    assert spent <= budget + per_call
    # What the calls really used replaced their reservations: the next call is refused
    # only because the budget is spent, and the headers say so.
    refused = await call(http, key["key"], router["name"])
    assert refused.status_code == 429
    assert refused.json()["error"]["type"] == "tokens"


async def test_a_failed_call_gives_its_token_reservation_back(
    app: FastAPI,
    limiter: RateLimiter,
    client: httpx.AsyncClient,
    world: World,
    http: httpx.AsyncClient,
    start_sim: SimFactory,
) -> None:
    del limiter
    broken = start_sim(failure_rate=1.0)
    router = await create_router(client, world, [url_target(broken)])
    # Room for one reservation: without the refund, the second call would be refused.
    await set_limits(client, world, key_tpm=8)
    key = await new_key(client, world)
    for _ in range(3):
        response = await call(http, key["key"], router["name"])
        await components(app)[GATEWAY].drain()
        assert response.status_code == 502, response.text


async def test_a_targets_rpm_sends_the_rest_to_the_next_target(
    limiter: RateLimiter,
    client: httpx.AsyncClient,
    world: World,
    http: httpx.AsyncClient,
    sim: RunningSim,
) -> None:
    del limiter
    targets = [url_target(sim, model="capped", rpm=2), url_target(sim, model="spare", priority=1)]
    router = await create_router(client, world, targets)
    key = await new_key(client, world)
    models = [(await call(http, key["key"], router["name"])).json()["model"] for _ in range(4)]
    assert models == ["capped", "capped", "spare", "spare"]


async def test_a_target_at_its_limit_with_no_other_gives_429(
    limiter: RateLimiter,
    client: httpx.AsyncClient,
    world: World,
    http: httpx.AsyncClient,
    sim: RunningSim,
) -> None:
    del limiter
    router = await create_router(client, world, [url_target(sim, rpm=1)])
    key = await new_key(client, world)
    assert (await call(http, key["key"], router["name"])).status_code == 200
    refused = await call(http, key["key"], router["name"])
    assert refused.status_code == 429
    assert "router target" in refused.json()["error"]["message"]


async def test_redis_limiter_is_atomic_across_replicas() -> None:
    """Two limiters (two replicas) on one Redis share one budget, with no overshoot."""
    prefix = f"test-gw:{uuid.uuid4().hex}:"
    replicas = [RedisRateLimiter.from_url(REDIS_URL, prefix=prefix) for _ in range(2)]
    budget = [Budget("k:shared:r", 50, "requests")]
    try:
        outcomes = await asyncio.gather(*[replicas[i % 2].acquire(budget, 60) for i in range(200)])
        assert sum(o.allowed for o in outcomes) == 50
    finally:
        await _drop_keys(prefix)
        for replica in replicas:
            await replica.close()


@pytest.mark.parametrize("kind", ["memory", "redis"])
async def test_token_reservations_are_charged_atomically_and_corrected(kind: str) -> None:
    prefix = f"test-gw:{uuid.uuid4().hex}:"
    limiter: RateLimiter = (
        RedisRateLimiter.from_url(REDIS_URL, prefix=prefix)
        if kind == "redis"
        else MemoryRateLimiter()
    )
    budgets = [Budget("k:x:r", 100, "requests"), Budget("k:x:t", 100, "tokens")]
    try:
        first = await limiter.acquire(budgets, 60, tokens=60)
        assert (first.allowed, first.counts) == (True, (1, 60))
        # 60 of 100 held: the budget is not spent, so the next call starts and holds its own.
        second = await limiter.acquire(budgets, 60, tokens=60)
        assert (second.allowed, second.counts) == (True, (2, 120))
        third = await limiter.acquire(budgets, 60, tokens=60)
        assert (third.allowed, third.refused, third.counts) == (False, 1, (2, 120))
        # The first call used 10 tokens, not 60: the difference goes back.
        await limiter.spend(["k:x:t"], 10 - 60, 60, first.window)
        # A correction for a window that is over changes nothing.
        await limiter.spend(["k:x:t"], -1000, 60, first.window - 1)
        fourth = await limiter.acquire(budgets, 60, tokens=5)
        assert (fourth.allowed, fourth.counts) == (True, (3, 75))
    finally:
        await limiter.close()
        if kind == "redis":
            await _drop_keys(prefix)


async def _drop_keys(prefix: str) -> None:
    """Removes a test's limiter counters from the shared Redis."""
    cleaner = Redis.from_url(REDIS_URL)
    keys = [k async for k in cleaner.scan_iter(match=prefix + "*")]
    if keys:
        await cleaner.delete(*keys)
    await cleaner.aclose()

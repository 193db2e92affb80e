"""Routing: each strategy's distribution, priority fallback on the configured errors, and
the cooldown of a failing target."""

from __future__ import annotations

import asyncio
import socket
import time
import uuid
from collections import Counter

import httpx
import openai
import pytest
from fastapi import FastAPI

from budapp.core.components import components
from budapp.gateway.targets import TARGET_RESOLVER
from tests.factories import World
from tests.gateway.conftest import (
    SimFactory,
    create_router,
    new_key,
    openai_client,
    set_limits,
    url_target,
)
from tests.sim.conftest import RunningSim

MESSAGES = [{"role": "user", "content": "hi"}]


async def served_by(ai: openai.AsyncOpenAI, router: str, calls: int) -> Counter[str]:
    """Which target answered each of `calls` sequential calls (each target's `model` names it)."""
    seen: Counter[str] = Counter()
    for _ in range(calls):
        answer = await ai.chat.completions.create(model=router, messages=MESSAGES, max_tokens=1)
        seen[answer.model] += 1
    return seen


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_weighted_random_follows_the_weights(
    client: httpx.AsyncClient, world: World, gateway_url: str, sim: RunningSim
) -> None:
    targets = [url_target(sim, model="light", weight=1), url_target(sim, model="heavy", weight=3)]
    router = await create_router(client, world, targets, strategy="weighted")
    key = await new_key(client, world)
    async with openai_client(gateway_url, key["key"]) as ai:
        seen = await served_by(ai, router["name"], 400)
    # Binomial(400, 0.75): mean 300, sd 8.7; five standard deviations either side.
    assert 257 <= seen["heavy"] <= 343, seen
    assert seen["light"] + seen["heavy"] == 400


async def test_round_robin_takes_turns_exactly(
    client: httpx.AsyncClient, world: World, gateway_url: str, sim: RunningSim
) -> None:
    targets = [url_target(sim, model=name) for name in ("a", "b", "c")]
    router = await create_router(client, world, targets, strategy="round_robin")
    key = await new_key(client, world)
    async with openai_client(gateway_url, key["key"]) as ai:
        seen = await served_by(ai, router["name"], 30)
    assert seen == {"a": 10, "b": 10, "c": 10}


async def test_least_in_flight_spreads_concurrent_calls_evenly(
    client: httpx.AsyncClient, world: World, gateway_url: str, start_sim: SimFactory
) -> None:
    slow = start_sim(ttft_ms=300)
    targets = [url_target(slow, model="a"), url_target(slow, model="b")]
    router = await create_router(client, world, targets, strategy="least_in_flight")
    key = await new_key(client, world)
    async with openai_client(gateway_url, key["key"]) as ai:
        answers = await asyncio.gather(
            *[
                ai.chat.completions.create(model=router["name"], messages=MESSAGES, max_tokens=1)
                for _ in range(10)
            ]
        )
    assert Counter(a.model for a in answers) == {"a": 5, "b": 5}


async def test_lowest_latency_settles_on_the_fastest_target(
    client: httpx.AsyncClient, world: World, gateway_url: str, start_sim: SimFactory
) -> None:
    slow, fast = start_sim(ttft_ms=150), start_sim()
    targets = [url_target(slow, model="slow"), url_target(fast, model="fast")]
    router = await create_router(client, world, targets, strategy="lowest_latency")
    key = await new_key(client, world)
    async with openai_client(gateway_url, key["key"]) as ai:
        seen = await served_by(ai, router["name"], 20)
    # Each target is measured once; from then on the fast one answers.
    assert seen == {"slow": 1, "fast": 19}


async def test_failing_target_falls_back_and_cools_down(
    client: httpx.AsyncClient, world: World, gateway_url: str, start_sim: SimFactory
) -> None:
    broken, healthy = start_sim(failure_rate=1.0), start_sim()
    targets = [
        url_target(broken, model="primary", priority=0),
        url_target(healthy, model="fallback", priority=1),
    ]
    router = await create_router(client, world, targets, cooldown_seconds=60)
    key = await new_key(client, world)
    async with openai_client(gateway_url, key["key"]) as ai:
        seen = await served_by(ai, router["name"], 5)
    assert seen == {"fallback": 5}
    # The broken target was tried once, then left alone for its cooldown.
    assert broken.metric("budapp_sim_requests_total", status="500") == 1


async def test_a_cooldown_outlives_a_change_to_the_projects_routing(
    client: httpx.AsyncClient, world: World, gateway_url: str, start_sim: SimFactory
) -> None:
    """A limit change reloads the project's routing; what was learnt of its targets stays."""
    broken, healthy = start_sim(failure_rate=1.0), start_sim()
    targets = [
        url_target(broken, model="primary", priority=0),
        url_target(healthy, model="fallback", priority=1),
    ]
    router = await create_router(client, world, targets, cooldown_seconds=60)
    key = await new_key(client, world)
    async with openai_client(gateway_url, key["key"]) as ai:
        assert await served_by(ai, router["name"], 1) == {"fallback": 1}
        await set_limits(client, world, rpm=10_000)
        assert await served_by(ai, router["name"], 3) == {"fallback": 3}
    assert broken.metric("budapp_sim_requests_total", status="500") == 1


async def test_cooldown_ends_and_the_target_is_tried_again(
    client: httpx.AsyncClient, world: World, gateway_url: str, start_sim: SimFactory
) -> None:
    broken, healthy = start_sim(failure_rate=1.0), start_sim()
    targets = [url_target(broken, priority=0), url_target(healthy, priority=1)]
    router = await create_router(client, world, targets, cooldown_seconds=0.3)
    key = await new_key(client, world)
    async with openai_client(gateway_url, key["key"]) as ai:
        await served_by(ai, router["name"], 2)
        await asyncio.sleep(0.4)
        await served_by(ai, router["name"], 1)
    assert broken.metric("budapp_sim_requests_total", status="500") == 2


async def test_a_hanging_backend_times_out_and_falls_back(
    client: httpx.AsyncClient, world: World, gateway_url: str, start_sim: SimFactory
) -> None:
    hanging, healthy = start_sim(ttft_ms=5000), start_sim()
    targets = [
        url_target(hanging, model="hanging", timeout_seconds=0.2),
        url_target(healthy, model="healthy", priority=1),
    ]
    router = await create_router(client, world, targets)
    key = await new_key(client, world)
    started = time.monotonic()
    async with openai_client(gateway_url, key["key"]) as ai:
        stream = await ai.chat.completions.create(
            model=router["name"], messages=MESSAGES, stream=True
        )
        models = {chunk.model async for chunk in stream}
    assert models == {"healthy"}
    assert time.monotonic() - started < 2


async def test_an_unreachable_backend_falls_back(
    client: httpx.AsyncClient, world: World, gateway_url: str, sim: RunningSim
) -> None:
    dead = {"kind": "url", "base_url": f"http://127.0.0.1:{closed_port()}/v1", "model": "dead"}
    targets = [dead, url_target(sim, model="alive", priority=1)]
    router = await create_router(client, world, targets)
    key = await new_key(client, world)
    async with openai_client(gateway_url, key["key"]) as ai:
        assert await served_by(ai, router["name"], 3) == {"alive": 3}


async def test_errors_not_listed_in_fallback_on_are_returned(
    client: httpx.AsyncClient, world: World, gateway_url: str, start_sim: SimFactory
) -> None:
    broken, healthy = start_sim(failure_rate=1.0), start_sim()
    targets = [url_target(broken), url_target(healthy, priority=1)]
    router = await create_router(client, world, targets, fallback_on=["timeout"])
    key = await new_key(client, world)
    async with openai_client(gateway_url, key["key"]) as ai:
        with pytest.raises(openai.APIStatusError) as caught:
            await ai.chat.completions.create(model=router["name"], messages=MESSAGES)
    assert caught.value.status_code == 502
    assert (
        healthy.metric("budapp_sim_requests_total", route="/v1/chat/completions", status="200") == 0
    )


async def test_retries_stop_at_the_attempt_budget(
    client: httpx.AsyncClient, world: World, gateway_url: str, start_sim: SimFactory
) -> None:
    broken = start_sim(failure_rate=1.0)
    targets = [url_target(broken, priority=p) for p in range(5)]
    router = await create_router(client, world, targets, max_attempts=2)
    key = await new_key(client, world)
    response = await _post(gateway_url, key["key"], router["name"])
    assert response.status_code == 502
    assert response.json()["error"]["code"] == "upstream_error"
    assert broken.metric("budapp_sim_requests_total", status="500") == 2


async def test_endpoint_targets_without_running_replicas_are_unavailable(
    app: FastAPI, client: httpx.AsyncClient, world: World, gateway_url: str, sim: RunningSim
) -> None:
    endpoint = uuid.uuid4()
    router = await create_router(
        client, world, [{"kind": "endpoint", "endpoint_id": str(endpoint)}]
    )
    key = await new_key(client, world)
    response = await _post(gateway_url, key["key"], router["name"])
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "no_target_available"
    # Once the endpoints domain registers a running replica, the same router answers.
    components(app)[TARGET_RESOLVER].set(endpoint, [sim.base_url + "/v1"])
    try:
        assert (await _post(gateway_url, key["key"], router["name"])).status_code == 200
    finally:
        components(app)[TARGET_RESOLVER].remove(endpoint)


async def _post(gateway_url: str, key: str, model: str) -> httpx.Response:
    async with httpx.AsyncClient(base_url=gateway_url, timeout=30) as http:
        return await http.post(
            "/v1/chat/completions",
            json={"model": model, "messages": MESSAGES},
            headers={"Authorization": f"Bearer {key}"},
        )


async def test_a_lone_target_cooling_down_is_still_tried(
    client: httpx.AsyncClient, world: World, gateway_url: str, start_sim: SimFactory
) -> None:
    flaky = start_sim(failure_rate=0.5, seed=7)
    router = await create_router(client, world, [url_target(flaky)], cooldown_seconds=600)
    key = await new_key(client, world)
    statuses = [
        (await _post(gateway_url, key["key"], router["name"])).status_code for _ in range(20)
    ]
    # Each call reaches the backend (a 500 is answered as 502), none is refused for cooldown.
    assert set(statuses) <= {200, 502}
    assert statuses.count(200) >= 3
    answered = [
        flaky.metric("budapp_sim_requests_total", route="/v1/chat/completions", status=status)
        for status in ("200", "500")
    ]
    assert sum(answered) == 20

"""Usage metering: totals equal the sum of the calls after a burst, a client that goes away
mid-stream cancels the backend and still leaves its partial usage, and /metrics counts."""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import httpx
import orjson
from fastapi import FastAPI
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import func, select

from budapp.core.components import components
from budapp.core.db import session_scope
from budapp.usage.models import UsageDaily, UsageRecord
from tests.factories import World
from tests.gateway.conftest import SimFactory, create_router, flush_usage, new_key, url_target
from tests.sim.conftest import RunningSim


async def records_of(app: FastAPI, key_id: str) -> list[UsageRecord]:
    async with session_scope(components(app).session_factory) as session:
        rows = await session.scalars(
            select(UsageRecord).where(UsageRecord.api_key_id == uuid.UUID(key_id))
        )
        return list(rows)


async def test_meter_totals_equal_the_sum_of_a_burst_of_calls(
    app: FastAPI,
    client: httpx.AsyncClient,
    world: World,
    gateway_url: str,
    sim: RunningSim,
) -> None:
    router = await create_router(client, world, [url_target(sim)])
    key = await new_key(client, world)
    headers = {"Authorization": f"Bearer {key['key']}"}
    usages: list[dict[str, Any]] = []
    limits = httpx.Limits(max_connections=50)
    async with httpx.AsyncClient(base_url=gateway_url, timeout=60, limits=limits) as http:

        async def one(index: int) -> None:
            body = {
                "model": router["name"],
                "messages": [{"role": "user", "content": "word " * (index % 7 + 1)}],
                "max_tokens": index % 5 + 1,
            }
            response = await http.post("/v1/chat/completions", json=body, headers=headers)
            assert response.status_code == 200
            usages.append(response.json()["usage"])

        for start in range(0, 2000, 200):
            await asyncio.gather(*[one(i) for i in range(start, start + 200)])
    await flush_usage(app)
    prompt = sum(u["prompt_tokens"] for u in usages)
    completion = sum(u["completion_tokens"] for u in usages)
    response = await client.get(
        "/usage",
        params={"project_id": str(world.project_a), "granularity": "day"},
        headers=world["project_admin"].headers,
    )
    (day,) = [row for row in response.json()["data"] if row["api_key_id"] == key["id"]]
    assert day["requests"] == 2000
    assert (day["prompt_tokens"], day["completion_tokens"]) == (prompt, completion)
    async with session_scope(components(app).session_factory) as session:
        count = await session.scalar(
            select(func.count()).where(UsageRecord.api_key_id == uuid.UUID(key["id"]))
        )
        daily = await session.scalar(
            select(func.sum(UsageDaily.requests)).where(
                UsageDaily.api_key_id == uuid.UUID(key["id"])
            )
        )
    assert count == daily == 2000


async def test_a_client_leaving_mid_stream_cancels_the_backend_and_is_metered(
    app: FastAPI,
    client: httpx.AsyncClient,
    world: World,
    gateway_url: str,
    start_sim: SimFactory,
) -> None:
    slow = start_sim(itl_ms=50, output_tokens_min=200, output_tokens_max=200)
    router = await create_router(client, world, [url_target(slow)])
    key = await new_key(client, world)
    body = {
        "model": router["name"],
        "messages": [{"role": "user", "content": "hi"}],
        "stream": True,
    }
    received = 0
    async with (
        httpx.AsyncClient(base_url=gateway_url, timeout=30) as http,
        http.stream(
            "POST",
            "/v1/chat/completions",
            json=body,
            headers={"Authorization": f"Bearer {key['key']}"},
        ) as response,
    ):
        assert response.status_code == 200
        async for line in response.aiter_lines():
            if line.startswith("data: {"):
                received += 1
            if received == 5:
                break
    # The backend notices its client (the gateway) went away, within moments.
    deadline = time.monotonic() + 5
    while slow.metric("budapp_sim_client_disconnects_total") < 1:
        assert time.monotonic() < deadline, "the backend request was not cancelled"
        await asyncio.sleep(0.05)
    assert slow.metric("budapp_sim_requests_in_flight") == 0
    await flush_usage(app)
    (record,) = await records_of(app, key["id"])
    assert record.status == 499
    assert record.stream is True
    # Partial: counted from what was relayed, since the usage chunk never came.
    assert record.estimated is True
    assert 1 <= record.completion_tokens < 200
    assert record.ttft_ms is not None


async def test_a_backend_cut_mid_stream_ends_with_an_error_event(
    app: FastAPI,
    client: httpx.AsyncClient,
    world: World,
    gateway_url: str,
    start_sim: SimFactory,
) -> None:
    cut = start_sim(
        failure_rate=1.0, failure_mode="abort", itl_ms=5, output_tokens_min=40, output_tokens_max=40
    )
    router = await create_router(client, world, [url_target(cut)])
    key = await new_key(client, world)
    body = {
        "model": router["name"],
        "messages": [{"role": "user", "content": "hi"}],
        "stream": True,
    }
    async with httpx.AsyncClient(base_url=gateway_url, timeout=30) as http:
        response = await http.post(
            "/v1/chat/completions", json=body, headers={"Authorization": f"Bearer {key['key']}"}
        )
    events = [line[6:] for line in response.text.splitlines() if line.startswith("data: ")]
    assert "[DONE]" not in events
    assert orjson.loads(events[-1])["error"]["code"] == "upstream_error"
    await flush_usage(app)
    (record,) = await records_of(app, key["id"])
    assert record.status == 502


async def test_prometheus_metrics_count_gateway_calls(
    client: httpx.AsyncClient, world: World, gateway_url: str, sim: RunningSim
) -> None:
    router = await create_router(client, world, [url_target(sim)])
    key = await new_key(client, world)
    async with httpx.AsyncClient(base_url=gateway_url, timeout=30) as http:
        for _ in range(3):
            await http.post(
                "/v1/embeddings",
                json={"model": router["name"], "input": "x"},
                headers={"Authorization": f"Bearer {key['key']}"},
            )
        text = (await http.get("/metrics")).text
    samples = {
        (s.name, s.labels.get("route"), s.labels.get("router"), s.labels.get("status")): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }
    assert samples[("budapp_gateway_requests_total", "embeddings", router["name"], "200")] == 3
    assert (
        samples[("budapp_gateway_request_seconds_count", "embeddings", router["name"], None)] == 3
    )

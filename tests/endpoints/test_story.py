"""The gateway issue's acceptance story, end to end with real processes: a user creates a key
and a router over two deployed endpoints, calls it with the `openai` client, sees the fallback
when one endpoint's replica dies, gets 429 past the limit, and reads the usage."""

from __future__ import annotations

import os
import signal
import uuid
from typing import Any

import httpx
import openai
import pytest
from fastapi import FastAPI

from budapp.core.components import RUNTIME_SUPERVISOR, components
from budapp.gateway import metrics
from tests.api_keys.test_routes import create_key
from tests.endpoints.conftest import register_model, wait_for_run
from tests.factories import World
from tests.gateway.conftest import (
    create_router,
    flush_usage,
    gateway_url,
    openai_client,
    within_one_window,
)

__all__ = ["gateway_url"]


async def _deploy(
    client: httpx.AsyncClient, world: World, cluster: str, model: dict[str, Any]
) -> str:
    headers = world["project_admin"].headers
    created = await client.post(
        "/endpoints",
        json={
            "project_id": str(world.project_a),
            "name": f"ep-{model['name']}",
            "model_id": model["id"],
            "cluster_id": cluster,
            "runtime": "sim",
        },
        headers=headers,
    )
    assert created.status_code == 201, created.text
    endpoint_id: str = created.json()["data"]["id"]
    deployed = await client.post(f"/endpoints/{endpoint_id}/deploy", headers=headers)
    run = await wait_for_run(client, deployed.json()["data"]["workflow_id"], headers)
    assert run["status"] == "SUCCEEDED", run
    return endpoint_id


def _failures(router: str, reason: str) -> float:
    value = metrics.UPSTREAM_FAILURES.labels(router, reason)._value.get()
    return float(value)


async def test_the_gateway_story(
    app: FastAPI, client: httpx.AsyncClient, world: World, cluster: str, gateway_url: str
) -> None:
    admin = world["project_admin"].headers
    primary_model = await register_model(client, admin)
    spare_model = await register_model(client, admin)
    primary = await _deploy(client, world, cluster, primary_model)
    spare = await _deploy(client, world, cluster, spare_model)

    # A developer of the project creates a key; the project admin a router over both endpoints.
    key = await create_key(client, world, by="user")
    router = await create_router(
        client,
        world,
        [
            {"kind": "endpoint", "endpoint_id": primary, "priority": 0},
            {"kind": "endpoint", "endpoint_id": spare, "priority": 1},
        ],
        name=f"story-{uuid.uuid4().hex[:6]}",
        cooldown_seconds=300,
    )
    name = router["name"]
    messages: Any = [{"role": "user", "content": "hello"}]

    async with openai_client(gateway_url, key["key"]) as llm:
        answer = await llm.chat.completions.create(model=name, messages=messages)
        assert answer.model == primary_model["name"]
        streamed = [
            chunk.choices[0].delta.content or ""
            async for chunk in await llm.chat.completions.create(
                model=name, messages=messages, stream=True
            )
            if chunk.choices
        ]
        assert "".join(streamed)

        # The primary endpoint's replica dies: the next call falls back to the spare.
        replica = next(
            runtime
            for runtime in components(app)[RUNTIME_SUPERVISOR].statuses()
            if runtime.runtime_id.startswith(f"ep-{primary.replace('-', '')}") and runtime.pid
        )
        before = _failures(name, "connect_error")
        assert replica.pid is not None
        os.kill(replica.pid, signal.SIGKILL)
        answer = await llm.chat.completions.create(model=name, messages=messages)
        assert answer.model == spare_model["name"]
        assert _failures(name, "connect_error") == before + 1
        # The failed primary is cooling down: calls go straight to the spare.
        answer = await llm.chat.completions.create(model=name, messages=messages)
        assert answer.model == spare_model["name"]
        assert _failures(name, "connect_error") == before + 1

        # Past the key's limit: 429 with Retry-After and OpenAI's rate-limit headers.
        await within_one_window()
        limited = await client.put(
            f"/projects/{world.project_a}/rate-limits", json={"key_rpm": 5}, headers=admin
        )
        assert limited.status_code == 200, limited.text
        for _ in range(5):
            await llm.chat.completions.create(model=name, messages=messages)
        with pytest.raises(openai.RateLimitError) as refused:
            await llm.chat.completions.create(model=name, messages=messages)
    headers = refused.value.response.headers
    assert int(headers["retry-after"]) >= 1
    assert headers["x-ratelimit-limit-requests"] == "5"
    assert headers["x-ratelimit-remaining-requests"] == "0"

    # The usage: the developer reads the project's, per key and router.
    await flush_usage(app)
    usage = await client.get(
        "/usage",
        params={"project_id": str(world.project_a), "api_key_id": key["id"]},
        headers=world["user"].headers,
    )
    assert usage.status_code == 200, usage.text
    rows = usage.json()["data"]
    assert {row["router"] for row in rows} == {name}
    # Nine calls answered (one streamed, two by the spare after the fallback), one refused.
    assert sum(row["requests"] for row in rows) == 10
    assert sum(row["errors"] for row in rows) == 1
    assert sum(row["prompt_tokens"] for row in rows) > 0
    assert sum(row["completion_tokens"] for row in rows) > 0

    # And per endpoint: the primary answered the first two calls, the spare the other seven
    # (the refused call reached no endpoint).
    served = {}
    for endpoint_id in (primary, spare):
        metrics_of = await client.get(f"/endpoints/{endpoint_id}/metrics", headers=admin)
        assert metrics_of.status_code == 200, metrics_of.text
        totals = metrics_of.json()["data"]["totals"]
        served[endpoint_id] = (totals["requests"], totals["errors"])
    assert served == {primary: (2, 0), spare: (7, 0)}

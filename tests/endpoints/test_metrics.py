"""GET /endpoints/{id}/metrics: the calls the gateway sent to a deployed endpoint, from the
per-call usage rows (endpoint_id), with totals, nearest-rank percentiles and a series of UTC
buckets; the window is validated; access is that of GET /endpoints/{id}."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import select

from budapp.core.components import components
from budapp.core.db import session_scope, utcnow
from budapp.usage.meter import USAGE_METER, Call
from budapp.usage.models import UsageRecord
from tests.endpoints.conftest import wait_for_run
from tests.factories import World
from tests.gateway.conftest import (
    create_router,
    flush_usage,
    gateway_url,
    new_key,
    openai_client,
    sim,
    url_target,
)
from tests.sim.conftest import RunningSim

__all__ = ["gateway_url", "sim"]


async def _endpoint(
    client: httpx.AsyncClient, world: World, model: dict[str, Any], **fields: Any
) -> str:
    response = await client.post(
        "/endpoints",
        json={
            "project_id": str(world.project_a),
            "name": f"ep-{uuid.uuid4().hex[:6]}",
            "model_id": model["id"],
            "runtime": "sim",
            **fields,
        },
        headers=world["project_admin"].headers,
    )
    assert response.status_code == 201, response.text
    endpoint_id: str = response.json()["data"]["id"]
    return endpoint_id


async def _metrics(
    client: httpx.AsyncClient, endpoint_id: str, headers: dict[str, str], **params: Any
) -> httpx.Response:
    query = {
        name: value.isoformat() if isinstance(value, datetime) else value
        for name, value in params.items()
    }
    return await client.get(f"/endpoints/{endpoint_id}/metrics", params=query, headers=headers)


def _call(world: World, at: datetime, endpoint_id: str | None, **fields: Any) -> Call:
    values: dict[str, Any] = {
        "at": at,
        "organization_id": world.org_a,
        "project_id": world.project_a,
        "api_key_id": uuid.uuid4(),
        "user_id": None,
        "router_id": None,
        "router": "chat",
        "target": "endpoint",
        "endpoint_id": uuid.UUID(endpoint_id) if endpoint_id else None,
        "model": "tiny",
        "route": "chat.completions",
        "stream": False,
        "status": 200,
        "prompt_tokens": 0,
        "completion_tokens": 0,
        "estimated": False,
        "latency_ms": 10.0,
        "ttft_ms": None,
    }
    values.update(fields)
    return Call(**values)


async def _record(app: FastAPI, calls: list[Call]) -> None:
    for call in calls:
        components(app)[USAGE_METER].record(call)
    await components(app)[USAGE_METER].flush()


# --- end to end: real calls through the gateway to a deployed endpoint ----------------------


async def test_metrics_count_exactly_the_calls_the_gateway_sent_to_the_endpoint(
    app: FastAPI,
    client: httpx.AsyncClient,
    world: World,
    model: dict[str, Any],
    cluster: str,
    gateway_url: str,
    sim: RunningSim,
) -> None:
    headers = world["project_admin"].headers
    endpoint_id = await _endpoint(client, world, model, cluster_id=cluster, replicas=2)
    deployed = await client.post(f"/endpoints/{endpoint_id}/deploy", headers=headers)
    run = await wait_for_run(client, deployed.json()["data"]["workflow_id"], headers)
    assert run["status"] == "SUCCEEDED", run
    served = await create_router(client, world, [{"kind": "endpoint", "endpoint_id": endpoint_id}])
    # Calls to a url target are metered too, but belong to no endpoint.
    elsewhere = await create_router(client, world, [url_target(sim)])
    key = await new_key(client, world)
    since = utcnow()
    usages: list[Any] = []
    streamed = 0
    async with openai_client(gateway_url, key["key"]) as llm:
        for index in range(6):
            messages = [{"role": "user", "content": "word " * (index + 1)}]
            if index % 2:
                stream = await llm.chat.completions.create(
                    model=served["name"],
                    messages=messages,
                    stream=True,
                    stream_options={"include_usage": True},
                    max_tokens=index + 1,
                )
                usages.extend([chunk.usage async for chunk in stream if chunk.usage])
                streamed += 1
            else:
                answer = await llm.chat.completions.create(
                    model=served["name"], messages=messages, max_tokens=index + 1
                )
                usages.append(answer.usage)
        await llm.chat.completions.create(
            model=elsewhere["name"], messages=[{"role": "user", "content": "hello"}]
        )
    await flush_usage(app)
    until = utcnow() + timedelta(seconds=1)

    response = await _metrics(client, endpoint_id, world["user"].headers, since=since, until=until)
    assert response.status_code == 200, response.text
    data = response.json()["data"]
    totals = data["totals"]
    assert len(usages) == 6
    assert totals["requests"] == 6
    assert totals["errors"] == 0
    assert totals["error_rate"] == 0
    assert totals["prompt_tokens"] == sum(usage.prompt_tokens for usage in usages)
    assert totals["completion_tokens"] == sum(usage.completion_tokens for usage in usages)
    assert totals["ttft_ms"]["calls"] == streamed
    assert totals["latency_ms"]["calls"] == 6
    assert totals["latency_ms"]["p50"] <= totals["latency_ms"]["p95"] <= totals["latency_ms"]["p99"]
    assert totals["output_tokens_per_second"] > 0
    assert (data["replicas_desired"], data["replicas_ready"]) == (2, 2)
    assert sum(bucket["requests"] for bucket in data["series"]) == 6
    assert (
        sum(bucket["completion_tokens"] for bucket in data["series"])
        == (totals["completion_tokens"])
    )
    async with session_scope(components(app).session_factory) as session:
        rows = list(
            await session.scalars(
                select(UsageRecord).where(UsageRecord.api_key_id == uuid.UUID(key["id"]))
            )
        )
    by_router = {row.router: row.endpoint_id for row in rows}
    assert by_router == {served["name"]: uuid.UUID(endpoint_id), elsewhere["name"]: None}


# --- known rows through the meter: totals, percentiles, buckets ------------------------------


async def test_totals_and_percentiles_are_those_computed_by_hand(
    app: FastAPI, client: httpx.AsyncClient, world: World, model: dict[str, Any]
) -> None:
    endpoint_id = await _endpoint(client, world, model)
    other_endpoint = await _endpoint(client, world, model)
    since = (utcnow() - timedelta(hours=6)).replace(minute=0, second=0, microsecond=0)
    ttfts = {2: 30.0, 5: 10.0, 9: 50.0, 13: 20.0, 17: 40.0}
    calls = [
        _call(
            world,
            since + timedelta(minutes=index),
            endpoint_id,
            # 20 calls of 10, 20, ... 200 ms; two errors (a 429 and a 500).
            latency_ms=10.0 * (index + 1),
            status={3: 429, 7: 500}.get(index, 200),
            prompt_tokens=index + 1,
            completion_tokens=2 * (index + 1) if index not in {3, 7} else 0,
            ttft_ms=ttfts.get(index),
        )
        for index in range(20)
    ]
    # Written out of order: the percentiles must not depend on it.
    calls = calls[1::2] + calls[::2][::-1]
    noise = [
        _call(world, since - timedelta(seconds=1), endpoint_id, latency_ms=9999.0),
        _call(world, since + timedelta(hours=4), endpoint_id, latency_ms=9999.0),
        _call(world, since + timedelta(minutes=5), other_endpoint, latency_ms=9999.0),
        _call(world, since + timedelta(minutes=5), None, latency_ms=9999.0),
    ]
    await _record(app, calls + noise)

    response = await _metrics(
        client,
        endpoint_id,
        world["project_admin"].headers,
        since=since,
        until=since + timedelta(hours=4),
    )
    assert response.status_code == 200, response.text
    totals = response.json()["data"]["totals"]
    assert totals["requests"] == 20
    assert totals["errors"] == 2
    assert totals["error_rate"] == pytest.approx(0.1)
    assert totals["prompt_tokens"] == sum(range(1, 21))
    assert totals["completion_tokens"] == 2 * (sum(range(1, 21)) - 4 - 8)
    # Nearest rank: the value at ceil(p * n) of the sorted values.
    assert totals["latency_ms"] == {
        "calls": 20,
        "avg": pytest.approx(105.0),
        "p50": 100.0,
        "p95": 190.0,
        "p99": 200.0,
    }
    assert totals["ttft_ms"] == {
        "calls": 5,
        "avg": pytest.approx(30.0),
        "p50": 30.0,
        "p95": 50.0,
        "p99": 50.0,
    }
    succeeded_seconds = (10 * sum(range(1, 21)) - 40 - 80) / 1000
    assert totals["output_tokens_per_second"] == pytest.approx(
        totals["completion_tokens"] / succeeded_seconds
    )


async def test_series_has_every_hour_of_the_window_with_its_calls(
    app: FastAPI, client: httpx.AsyncClient, world: World, model: dict[str, Any]
) -> None:
    endpoint_id = await _endpoint(client, world, model)
    start = (utcnow() - timedelta(hours=6)).replace(minute=0, second=0, microsecond=0)
    await _record(
        app,
        [
            _call(world, start + timedelta(minutes=1), endpoint_id, latency_ms=10.0),
            _call(world, start + timedelta(minutes=59), endpoint_id, latency_ms=30.0),
            _call(
                world,
                start + timedelta(hours=2, minutes=30),
                endpoint_id,
                status=502,
                prompt_tokens=4,
                completion_tokens=6,
                ttft_ms=8.0,
            ),
            _call(world, start + timedelta(hours=3, minutes=59, seconds=59), endpoint_id),
        ],
    )
    # The window starts mid-hour: its first bucket is that whole hour, the calls from `since` on.
    response = await _metrics(
        client,
        endpoint_id,
        world["project_admin"].headers,
        since=start + timedelta(minutes=30),
        until=start + timedelta(hours=4),
    )
    assert response.status_code == 200, response.text
    series = response.json()["data"]["series"]
    assert [datetime.fromisoformat(bucket["bucket"]) for bucket in series] == [
        start + timedelta(hours=hour) for hour in range(4)
    ]
    assert [bucket["requests"] for bucket in series] == [1, 0, 1, 1]
    assert [bucket["errors"] for bucket in series] == [0, 0, 1, 0]
    assert series[0]["latency_ms_avg"] == 30.0
    assert series[1]["latency_ms_avg"] is None
    assert (series[2]["prompt_tokens"], series[2]["completion_tokens"]) == (4, 6)
    assert series[2]["ttft_ms_avg"] == 8.0


async def test_series_by_day_buckets_utc_days(
    app: FastAPI, client: httpx.AsyncClient, world: World, model: dict[str, Any]
) -> None:
    endpoint_id = await _endpoint(client, world, model)
    today = utcnow().replace(hour=0, minute=0, second=0, microsecond=0)
    await _record(
        app,
        [
            _call(world, today - timedelta(days=2, seconds=-1), endpoint_id),
            _call(world, today - timedelta(days=2) + timedelta(hours=23), endpoint_id),
            _call(world, today - timedelta(seconds=1), endpoint_id),
        ],
    )
    response = await _metrics(
        client,
        endpoint_id,
        world["project_admin"].headers,
        since=today - timedelta(days=3),
        until=today,
        granularity="day",
    )
    assert response.status_code == 200, response.text
    data = response.json()["data"]
    assert data["granularity"] == "day"
    assert [datetime.fromisoformat(bucket["bucket"]) for bucket in data["series"]] == [
        today - timedelta(days=days) for days in (3, 2, 1)
    ]
    assert [bucket["requests"] for bucket in data["series"]] == [0, 2, 1]


async def test_an_endpoint_without_calls_has_zero_totals(
    client: httpx.AsyncClient, world: World, model: dict[str, Any]
) -> None:
    endpoint_id = await _endpoint(client, world, model)
    response = await _metrics(client, endpoint_id, world["project_admin"].headers)
    assert response.status_code == 200, response.text
    data = response.json()["data"]
    assert data["totals"]["requests"] == 0
    assert data["totals"]["error_rate"] is None
    assert data["totals"]["latency_ms"]["p50"] is None
    assert data["totals"]["output_tokens_per_second"] is None
    assert (data["replicas_desired"], data["replicas_ready"]) == (1, 0)
    # The last 24 hours by default: 24 or 25 hour buckets, as `since` falls.
    since, until = (datetime.fromisoformat(data[name]) for name in ("since", "until"))
    assert until - since == timedelta(hours=24)
    assert len(data["series"]) in {24, 25}
    assert all(bucket["requests"] == 0 for bucket in data["series"])


# --- the window ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"since": "2026-01-02T00:00:00Z", "until": "2026-01-01T00:00:00Z"}, "since"),
        ({"since": "2026-01-01T00:00:00Z", "until": "2026-01-01T00:00:00Z"}, "since"),
        ({"since": "2026-01-01T00:00:00Z", "until": "2026-02-01T00:00:01Z"}, "31 days"),
        (
            {
                "since": "2025-01-01T00:00:00Z",
                "until": "2026-01-03T00:00:00Z",
                "granularity": "day",
            },
            "366 days",
        ),
        ({"since": "2026-01-01T00:00:00"}, "since"),
        ({"until": "yesterday"}, "until"),
        ({"granularity": "minute"}, "granularity"),
        ({"window": "1h"}, "window"),
    ],
)
async def test_a_bad_window_is_422(
    client: httpx.AsyncClient,
    world: World,
    model: dict[str, Any],
    params: dict[str, str],
    field: str,
) -> None:
    endpoint_id = await _endpoint(client, world, model)
    response = await _metrics(client, endpoint_id, world["project_admin"].headers, **params)
    assert response.status_code == 422, response.text
    assert field in response.text


async def test_the_longest_windows_are_accepted(
    client: httpx.AsyncClient, world: World, model: dict[str, Any]
) -> None:
    endpoint_id = await _endpoint(client, world, model)
    headers = world["project_admin"].headers
    until = datetime(2026, 3, 1, 12, 30, tzinfo=UTC)
    hourly = await _metrics(
        client, endpoint_id, headers, since=until - timedelta(days=31), until=until
    )
    assert hourly.status_code == 200, hourly.text
    assert len(hourly.json()["data"]["series"]) == 31 * 24 + 1
    daily = await _metrics(
        client,
        endpoint_id,
        headers,
        since=until - timedelta(days=366),
        until=until,
        granularity="day",
    )
    assert daily.status_code == 200, daily.text
    assert len(daily.json()["data"]["series"]) == 367
    # Only `until`: the 24 hours before it; another offset is read as the same instant.
    response = await _metrics(client, endpoint_id, headers, until="2026-03-01T14:30:00+02:00")
    data = response.json()["data"]
    assert datetime.fromisoformat(data["until"]) == until
    assert datetime.fromisoformat(data["since"]) == until - timedelta(hours=24)


# --- who may read them --------------------------------------------------------------------


async def test_metrics_are_read_by_whoever_may_view_the_endpoint(
    client: httpx.AsyncClient, world: World, model: dict[str, Any]
) -> None:
    endpoint_id = await _endpoint(client, world, model)
    for name in ("user", "project_admin", "org_admin", "super_admin"):
        response = await _metrics(client, endpoint_id, world[name].headers)
        assert response.status_code == 200, (name, response.text)
    for name in ("outsider", "org_admin_b", "user_b"):
        endpoint = await client.get(f"/endpoints/{endpoint_id}", headers=world[name].headers)
        response = await _metrics(client, endpoint_id, world[name].headers)
        assert response.status_code == endpoint.status_code, name
        assert response.status_code in ({403, 404} if name == "outsider" else {404}), name
    unknown = await _metrics(client, str(uuid.uuid4()), world["project_admin"].headers)
    assert unknown.status_code == 404
    assert (await client.get(f"/endpoints/{endpoint_id}/metrics")).status_code == 401

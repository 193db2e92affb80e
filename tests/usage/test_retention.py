"""Retention of the per-call usage rows: a sweep deletes the calls older than the retention
period, in bounded batches, and leaves the hourly and daily sums whole; 0 days keeps all."""

from __future__ import annotations

import asyncio
import uuid
from datetime import datetime, timedelta

from fastapi import FastAPI
from prometheus_client import REGISTRY
from sqlalchemy import func, select

from budapp.core.components import components
from budapp.core.db import session_scope, utcnow
from budapp.usage.meter import USAGE_METER, Call
from budapp.usage.models import UsageDaily, UsageHourly, UsageRecord
from budapp.usage.repository import UsageRepository
from budapp.usage.retention import UsageRetention
from tests.factories import World


def _call(world: World, at: datetime) -> Call:
    return Call(
        at=at,
        organization_id=world.org_a,
        project_id=world.project_a,
        api_key_id=uuid.uuid4(),
        user_id=None,
        router_id=None,
        router="chat",
        target=None,
        endpoint_id=None,
        model="tiny",
        route="chat.completions",
        stream=False,
        status=200,
        prompt_tokens=3,
        completion_tokens=5,
        estimated=False,
        latency_ms=12.0,
        ttft_ms=None,
    )


async def _metered(app: FastAPI, world: World, ages: list[timedelta], now: datetime) -> None:
    for age in ages:
        components(app)[USAGE_METER].record(_call(world, now - age))
    await components(app)[USAGE_METER].flush()


def _deleted_on_metrics() -> float:
    return REGISTRY.get_sample_value("budapp_usage_records_deleted_total") or 0.0


async def _state(app: FastAPI) -> tuple[list[datetime], int, int]:
    async with session_scope(components(app).session_factory) as session:
        kept = sorted(await session.scalars(select(UsageRecord.at)))
        hourly = await session.scalar(select(func.sum(UsageHourly.requests)))
        daily = await session.scalar(select(func.sum(UsageDaily.requests)))
    return kept, int(hourly or 0), int(daily or 0)


async def test_a_sweep_deletes_only_calls_older_than_the_retention_period(
    app: FastAPI, world: World
) -> None:
    now = utcnow()
    ages = [timedelta(days=days) for days in (400, 100, 91, 90, 89, 1)] + [timedelta(0)]
    ages[3] -= timedelta(seconds=1)  # just inside 90 days
    await _metered(app, world, ages, now)
    # One statement deletes at most its batch, oldest or not.
    async with session_scope(components(app).session_factory) as session:
        assert await UsageRepository(session).delete_records_before(now - ages[2], 1) == 1
    retention = UsageRetention(components(app).session_factory, days=90, batch_size=1)
    counted = _deleted_on_metrics()
    assert await retention.sweep(now) == 2
    assert _deleted_on_metrics() - counted == 2
    kept, hourly, daily = await _state(app)
    assert kept == sorted(now - age for age in ages[3:])
    # The sums stay whole: GET /usage still counts every call.
    assert (hourly, daily) == (7, 7)
    assert await retention.sweep(now) == 0


async def test_a_sweep_with_exactly_a_batch_left_ends(app: FastAPI, world: World) -> None:
    now = utcnow()
    await _metered(app, world, [timedelta(days=40), timedelta(days=50)], now)
    retention = UsageRetention(components(app).session_factory, days=30, batch_size=2)
    assert await retention.sweep(now) == 2
    assert (await _state(app))[0] == []


async def test_the_background_sweep_runs_on_its_own(app: FastAPI, world: World) -> None:
    now = utcnow()
    await _metered(app, world, [timedelta(days=10), timedelta(hours=1)], now)
    retention = UsageRetention(components(app).session_factory, days=7, every_seconds=0.01)
    await retention.start()
    try:
        deadline = asyncio.get_running_loop().time() + 30
        while len((await _state(app))[0]) != 1:
            assert asyncio.get_running_loop().time() < deadline, "the sweep did not run"
            await asyncio.sleep(0.02)
    finally:
        await retention.close()
    assert (await _state(app))[0] == [now - timedelta(hours=1)]


async def test_zero_days_keeps_every_call(app: FastAPI, world: World) -> None:
    now = utcnow()
    await _metered(app, world, [timedelta(days=3650)], now)
    retention = UsageRetention(components(app).session_factory, days=0, every_seconds=0.01)
    await retention.start()
    await asyncio.sleep(0.05)
    await retention.close()
    assert len((await _state(app))[0]) == 1

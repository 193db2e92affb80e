from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Literal

from sqlalchemy import RowMapping
from sqlalchemy.ext.asyncio import AsyncSession

from budapp.core.auth import Principal, TenantScope
from budapp.core.envelope import Page
from budapp.core.errors import Forbidden
from budapp.core.roles import Permission, Role
from budapp.projects.service import ProjectService
from budapp.usage.models import UsageDaily, UsageHourly, UsageRecord
from budapp.usage.repository import UsageRepository
from budapp.usage.schemas import (
    CallBucket,
    CallMetrics,
    CallTotals,
    Distribution,
    UsageFilter,
    UsageRead,
)

Granularity = Literal["hour", "day"]
_PERCENTILES = (0.5, 0.95, 0.99)
_STEP = {"hour": timedelta(hours=1), "day": timedelta(days=1)}


class UsageService:
    def __init__(self, session: AsyncSession, projects: ProjectService) -> None:
        self.repository = UsageRepository(session)
        self.projects = projects

    async def page(self, by: Principal, filters: UsageFilter) -> Page[UsageRead]:
        """A project's usage for its members; an organization's for its admins."""
        if filters.project_id is not None:
            await self.projects.access(filters.project_id, by, Permission.PROJECT_VIEW)
        elif not by.has_role(Role.ORG_ADMIN):
            raise Forbidden("Give a project_id: only org admins read a whole organization's usage")
        table = UsageHourly if filters.granularity == "hour" else UsageDaily
        statement = self.repository.aggregates(
            table,
            by.scope,
            project_id=filters.project_id,
            api_key_id=filters.api_key_id,
            model=filters.model,
            router=filters.router,
            since=filters.since,
            until=filters.until,
        )
        rows, total = await self.repository.page(statement, filters)
        return Page([UsageRead.model_validate(row) for row in rows], total, filters)

    async def endpoint_metrics(
        self,
        scope: TenantScope,
        endpoint_id: uuid.UUID,
        *,
        since: datetime,
        until: datetime,
        granularity: Granularity,
    ) -> CallMetrics:
        """The calls an endpoint answered in [since, until), from the per-call rows (so only
        within the retention period). The caller has checked access to the endpoint; `scope`
        still bounds the rows read. The series has every UTC hour or day of the window, those
        without calls as zeros, so that a chart needs no gap filling."""
        where = self.repository.endpoint_calls(scope, endpoint_id, since, until)
        row = await self.repository.call_totals(where)
        latency: list[float | None] = [None] * len(_PERCENTILES)
        ttft: list[float | None] = [None] * len(_PERCENTILES)
        if row["requests"]:
            latency = await self.repository.percentiles(UsageRecord.latency_ms, where, _PERCENTILES)
            ttft = await self.repository.percentiles(UsageRecord.ttft_ms, where, _PERCENTILES)
        found = {
            bucket["bucket"]: bucket
            for bucket in await self.repository.call_buckets(where, granularity)
        }
        return CallMetrics(
            totals=_totals(row, latency, ttft),
            series=[
                _bucket(start, found.get(start)) for start in _starts(since, until, granularity)
            ],
        )


def _totals(row: RowMapping, latency: list[float | None], ttft: list[float | None]) -> CallTotals:
    requests = int(row["requests"])
    errors = int(row["errors"] or 0)
    seconds = float(row["succeeded_latency_ms"] or 0) / 1000
    return CallTotals(
        requests=requests,
        errors=errors,
        error_rate=errors / requests if requests else None,
        prompt_tokens=int(row["prompt_tokens"] or 0),
        completion_tokens=int(row["completion_tokens"] or 0),
        latency_ms=Distribution(
            calls=requests,
            avg=row["latency_ms_avg"],
            p50=latency[0],
            p95=latency[1],
            p99=latency[2],
        ),
        ttft_ms=Distribution(
            calls=int(row["ttft_calls"]),
            avg=row["ttft_ms_avg"],
            p50=ttft[0],
            p95=ttft[1],
            p99=ttft[2],
        ),
        output_tokens_per_second=(
            int(row["succeeded_completion_tokens"] or 0) / seconds if seconds else None
        ),
    )


def _bucket(start: datetime, row: RowMapping | None) -> CallBucket:
    if row is None:
        return CallBucket(
            bucket=start,
            requests=0,
            errors=0,
            prompt_tokens=0,
            completion_tokens=0,
            latency_ms_avg=None,
            ttft_ms_avg=None,
        )
    return CallBucket(
        bucket=start,
        requests=int(row["requests"]),
        errors=int(row["errors"] or 0),
        prompt_tokens=int(row["prompt_tokens"] or 0),
        completion_tokens=int(row["completion_tokens"] or 0),
        latency_ms_avg=row["latency_ms_avg"],
        ttft_ms_avg=row["ttft_ms_avg"],
    )


def _starts(since: datetime, until: datetime, granularity: Granularity) -> Iterator[datetime]:
    start = since.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    if granularity == "day":
        start = start.replace(hour=0)
    while start < until:
        yield start
        start += _STEP[granularity]

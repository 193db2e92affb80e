from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Sequence
from typing import Any

from sqlalchemy import ColumnElement, Select, delete, insert, select, tuple_
from sqlalchemy.ext.asyncio import AsyncSession

from budapp.benchmarks.models import BenchmarkRequest, BenchmarkRun, BenchmarkStatus
from budapp.benchmarks.schemas import BenchmarkFilter
from budapp.core.auth import TenantScope
from budapp.core.repository import contains, fetch_page


class BenchmarkRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    def add(self, run: BenchmarkRun) -> None:
        self.session.add(run)

    def _live(self, scope: TenantScope) -> Select[BenchmarkRun]:
        return select(BenchmarkRun).where(
            BenchmarkRun.deleted_at.is_(None), scope.where(BenchmarkRun.organization_id)
        )

    async def get(self, scope: TenantScope, run_id: uuid.UUID) -> BenchmarkRun | None:
        return await self.session.scalar(self._live(scope).where(BenchmarkRun.id == run_id))

    async def page(
        self,
        scope: TenantScope,
        filters: BenchmarkFilter,
        *,
        projects: list[uuid.UUID] | None,
    ) -> tuple[list[BenchmarkRun], int]:
        conditions: list[ColumnElement[bool]] = []
        if projects is not None:
            conditions.append(BenchmarkRun.project_id.in_(projects))
        if filters.project_id is not None:
            conditions.append(BenchmarkRun.project_id == filters.project_id)
        if filters.status is not None:
            conditions.append(BenchmarkRun.status == filters.status)
        if filters.target_kind is not None:
            conditions.append(BenchmarkRun.target_kind == filters.target_kind)
        if filters.endpoint_id is not None:
            conditions.append(BenchmarkRun.endpoint_id == filters.endpoint_id)
        if filters.search:
            conditions.append(contains(BenchmarkRun.name, filters.search))
        statement = (
            self._live(scope)
            .where(*conditions)
            .order_by(BenchmarkRun.created_at.desc(), BenchmarkRun.id.desc())
        )
        return await fetch_page(self.session, statement, filters)

    async def lock(self, run_id: uuid.UUID) -> BenchmarkRun | None:
        """The run as the workflow sees it (any tenant: the request that started it was
        authorised), fresh from the database."""
        return await self.session.get(BenchmarkRun, run_id, populate_existing=True)

    async def status(self, run_id: uuid.UUID) -> BenchmarkStatus | None:
        found = await self.session.scalar(
            select(BenchmarkRun.status).where(BenchmarkRun.id == run_id)
        )
        return BenchmarkStatus(found) if found is not None else None

    async def add_requests(self, rows: list[dict[str, Any]]) -> None:
        if rows:
            await self.session.execute(insert(BenchmarkRequest), rows)

    async def drop_stage(self, run_id: uuid.UUID, stage: int) -> None:
        await self.session.execute(
            delete(BenchmarkRequest).where(
                BenchmarkRequest.run_id == run_id, BenchmarkRequest.stage == stage
            )
        )

    async def drop_requests(self, run_id: uuid.UUID) -> None:
        await self.session.execute(
            delete(BenchmarkRequest).where(BenchmarkRequest.run_id == run_id)
        )

    async def stage_requests(self, run_id: uuid.UUID, stage: int) -> Sequence[BenchmarkRequest]:
        statement = (
            select(BenchmarkRequest)
            .where(BenchmarkRequest.run_id == run_id, BenchmarkRequest.stage == stage)
            .order_by(BenchmarkRequest.sequence)
        )
        return (await self.session.scalars(statement)).all()

    async def requests_page(
        self,
        run_id: uuid.UUID,
        *,
        after: tuple[int, int] | None,
        stage: int | None,
        status: str | None,
        limit: int,
    ) -> Sequence[BenchmarkRequest]:
        statement = select(BenchmarkRequest).where(BenchmarkRequest.run_id == run_id)
        if after is not None:
            statement = statement.where(
                tuple_(BenchmarkRequest.stage, BenchmarkRequest.sequence) > tuple_(*after)
            )
        if stage is not None:
            statement = statement.where(BenchmarkRequest.stage == stage)
        if status is not None:
            statement = statement.where(BenchmarkRequest.status == status)
        statement = statement.order_by(BenchmarkRequest.stage, BenchmarkRequest.sequence)
        return (await self.session.scalars(statement.limit(limit))).all()

    async def all_requests(
        self, run_id: uuid.UUID, batch: int = 1000
    ) -> AsyncIterator[Sequence[BenchmarkRequest]]:
        after: tuple[int, int] | None = None
        while True:
            rows = await self.requests_page(
                run_id, after=after, stage=None, status=None, limit=batch
            )
            if not rows:
                return
            yield rows
            after = (rows[-1].stage, rows[-1].sequence)

    async def latencies(self, run_id: uuid.UUID) -> tuple[list[float], list[float]]:
        """The TTFT and TPOT of every successful request of a run (for its charts)."""
        statement = select(BenchmarkRequest.ttft_ms, BenchmarkRequest.tpot_ms).where(
            BenchmarkRequest.run_id == run_id, BenchmarkRequest.status == "ok"
        )
        rows = (await self.session.execute(statement)).all()
        ttft = [row[0] for row in rows if row[0] is not None]
        tpot = [row[1] for row in rows if row[1] is not None]
        return ttft, tpot

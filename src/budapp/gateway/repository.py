from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Select, Table, insert, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from budapp.core.auth import TenantScope
from budapp.core.repository import fetch_page
from budapp.gateway.models import UsageDaily, UsageHourly, UsageRecord

_RECORDS = cast("Table", UsageRecord.__table__)
_GROUP = ("bucket", "project_id", "api_key_id", "router", "model")
_SUMS = (
    "requests",
    "errors",
    "prompt_tokens",
    "completion_tokens",
    "latency_ms_sum",
    "ttft_ms_sum",
    "ttft_count",
)


class UsageRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add_records(self, rows: Sequence[dict[str, Any]]) -> None:
        # Core insert of the table (not the ORM's bulk path): plain executemany.
        await self.session.execute(insert(_RECORDS), list(rows))

    async def add_to_aggregates(
        self, table: type[UsageHourly] | type[UsageDaily], rows: Sequence[dict[str, Any]]
    ) -> None:
        """Adds each row's sums to its bucket's, creating the bucket when new (an upsert)."""
        dialect = self.session.get_bind().dialect.name
        module: Any = postgresql if dialect == "postgresql" else sqlite
        statement = module.insert(table)
        statement = statement.on_conflict_do_update(
            index_elements=list(_GROUP),
            set_={name: getattr(table, name) + statement.excluded[name] for name in _SUMS},
        )
        # One statement per row: executemany of an upsert is what both drivers batch well.
        await self.session.execute(statement, [{"id": uuid.uuid4(), **row} for row in rows])

    def aggregates(
        self,
        table: type[UsageHourly] | type[UsageDaily],
        scope: TenantScope,
        *,
        project_id: uuid.UUID | None,
        api_key_id: uuid.UUID | None,
        model: str | None,
        router: str | None,
        since: datetime | None,
        until: datetime | None,
    ) -> Select[Any]:
        statement: Select[Any] = select(table)
        if scope.organization_id is not None:
            statement = statement.where(table.organization_id == scope.organization_id)
        if project_id is not None:
            statement = statement.where(table.project_id == project_id)
        if api_key_id is not None:
            statement = statement.where(table.api_key_id == api_key_id)
        if model is not None:
            statement = statement.where(table.model == model)
        if router is not None:
            statement = statement.where(table.router == router)
        if since is not None:
            statement = statement.where(table.bucket >= since)
        if until is not None:
            statement = statement.where(table.bucket < until)
        return statement.order_by(table.bucket.desc(), table.id)

    async def page(self, statement: Select[Any], params: Any) -> tuple[list[Any], int]:
        return await fetch_page(self.session, statement, params)

from __future__ import annotations

import math
import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any, Literal, cast

from sqlalchemy import (
    ColumnElement,
    RowMapping,
    Select,
    Table,
    case,
    delete,
    func,
    insert,
    literal_column,
    select,
    type_coerce,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import InstrumentedAttribute

from budapp.core.auth import TenantScope
from budapp.core.db import UTCDateTime
from budapp.core.repository import Repository, fetch_page
from budapp.usage.models import UsageDaily, UsageHourly, UsageRecord

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
# SQL constants, not bound parameters: PostgreSQL accepts a GROUP BY expression only when it
# is the selected one exactly, and two parameters are two different expressions to it.
_TRUNCATED = {
    "postgresql": {"hour": "'hour'", "day": "'day'"},
    "sqlite": {"hour": "'%Y-%m-%d %H:00:00'", "day": "'%Y-%m-%d 00:00:00'"},
}


class UsageRepository(Repository):
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

    # --- one endpoint's calls (GET /endpoints/{id}/metrics) --------------------------------

    @staticmethod
    def endpoint_calls(
        scope: TenantScope, endpoint_id: uuid.UUID, since: datetime, until: datetime
    ) -> list[ColumnElement[bool]]:
        """An endpoint's calls in [since, until), read by ix_usage_records_endpoint_id_at."""
        return [
            UsageRecord.endpoint_id == endpoint_id,
            UsageRecord.at >= since,
            UsageRecord.at < until,
            scope.where(UsageRecord.organization_id),
        ]

    async def call_totals(self, where: list[ColumnElement[bool]]) -> RowMapping:
        succeeded = UsageRecord.status < 400
        statement = select(
            *_call_sums(),
            func.count(UsageRecord.ttft_ms).label("ttft_calls"),
            func.sum(case((succeeded, UsageRecord.completion_tokens), else_=0)).label(
                "succeeded_completion_tokens"
            ),
            func.sum(case((succeeded, UsageRecord.latency_ms), else_=0.0)).label(
                "succeeded_latency_ms"
            ),
        ).where(*where)
        return (await self.session.execute(statement)).mappings().one()

    async def call_buckets(
        self, where: list[ColumnElement[bool]], granularity: Literal["hour", "day"]
    ) -> Sequence[RowMapping]:
        """Sums per UTC hour or day, only buckets that have calls, oldest first. Grouped in the
        database (date_trunc on PostgreSQL, strftime on SQLite) so that a long window returns
        one row per bucket, not per call."""
        dialect = self.session.get_bind().dialect.name
        unit: ColumnElement[str] = literal_column(_TRUNCATED[dialect][granularity])
        if dialect == "postgresql":
            # At UTC explicitly: a day truncated in the session's time zone would be another day.
            truncated = func.date_trunc(
                unit, func.timezone(literal_column("'UTC'"), UsageRecord.at)
            )
        else:
            truncated = func.strftime(unit, UsageRecord.at)
        bucket = type_coerce(truncated, UTCDateTime()).label("bucket")
        statement = select(bucket, *_call_sums()).where(*where).group_by(bucket).order_by(bucket)
        return (await self.session.execute(statement)).mappings().all()

    async def percentiles(
        self,
        column: InstrumentedAttribute[Any],
        where: list[ColumnElement[bool]],
        fractions: Sequence[float],
    ) -> list[float | None]:
        """Nearest-rank percentiles of a column over the calls that have a value: the value at
        rank ceil(fraction * count) in ascending order. PostgreSQL computes them all in one
        sort (percentile_disc, which uses that rank); SQLite has no ordered-set aggregates, so
        it counts, then reads each rank with ORDER BY ... LIMIT 1 OFFSET rank - 1. Same rank,
        same answer on both."""
        present = [*where, column.is_not(None)]
        if self.session.get_bind().dialect.name == "postgresql":
            ranked = func.percentile_disc(postgresql.array(list(fractions))).within_group(column)
            values = await self.session.scalar(select(ranked).where(*present))
            return [float(value) for value in values] if values else [None] * len(fractions)
        count = await self.session.scalar(select(func.count(column)).where(*present)) or 0
        found: list[float | None] = []
        for fraction in fractions:
            if not count:
                found.append(None)
                continue
            rank = max(math.ceil(fraction * count), 1)
            nth = select(column).where(*present).order_by(column).limit(1).offset(rank - 1)
            found.append(await self.session.scalar(nth))
        return found

    # --- retention -------------------------------------------------------------------------

    async def delete_records_before(self, cutoff: datetime, limit: int) -> int:
        """Deletes at most `limit` calls older than `cutoff` (found by ix_usage_records_at);
        the hourly and daily sums are not touched."""
        oldest = select(_RECORDS.c.id).where(_RECORDS.c.at < cutoff).limit(limit)
        result = await self.session.execute(delete(_RECORDS).where(_RECORDS.c.id.in_(oldest)))
        return int(getattr(result, "rowcount", 0) or 0)


def _call_sums() -> list[ColumnElement[Any]]:
    """What the endpoint metrics sum over a set of calls, as a whole and per bucket."""
    return [
        func.count().label("requests"),
        func.sum(case((UsageRecord.status >= 400, 1), else_=0)).label("errors"),
        func.sum(UsageRecord.prompt_tokens).label("prompt_tokens"),
        func.sum(UsageRecord.completion_tokens).label("completion_tokens"),
        func.avg(UsageRecord.latency_ms).label("latency_ms_avg"),
        func.avg(UsageRecord.ttft_ms).label("ttft_ms_avg"),
    ]

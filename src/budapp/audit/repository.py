from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import RowMapping, Select, func, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from budapp.audit.chain import GENESIS_HASH
from budapp.audit.models import AuditChainHead, AuditRecord
from budapp.audit.schemas import AuditFilter
from budapp.core.auth import TenantScope


@dataclass(frozen=True, slots=True)
class RangeCheck:
    passed: int
    broken: RowMapping | None
    last_sequence: int | None


def _field(expression: str) -> str:
    # `<length>:<text>`, or `~` for NULL: the encoding of chain.canonical.
    return f"COALESCE(length({expression}) || ':' || {expression}, '~')"


def _canonical(fields: list[str]) -> str:
    return "'v1|' || " + " || '|' || ".join(_field(field) for field in fields)


_TEXT_COLUMNS = [
    "action",
    "resource_type",
    "resource_id",
    "actor_type",
    "actor_id",
    "actor_label",
]
_TAIL_COLUMNS = ["ip_address", "user_agent", "request_id", "details", "previous_hash"]


def _sqlite_uuid(column: str) -> str:
    # SQLite stores UUIDs as 32 hex digits; the canonical text is the hyphenated form.
    parts = [(1, 8), (9, 4), (13, 4), (17, 4), (21, 12)]
    pieces = " || '-' || ".join(f"substr({column}, {s}, {n})" for s, n in parts)
    return f"CASE WHEN {column} IS NULL THEN NULL ELSE lower({pieces}) END"


_SQLITE_CANONICAL = _canonical(
    [
        "CAST(sequence AS TEXT)",
        _sqlite_uuid("id"),
        # Stored as 'YYYY-MM-DD HH:MM:SS.ffffff' in UTC.
        "replace(created_at, ' ', 'T')",
        *_TEXT_COLUMNS,
        _sqlite_uuid("organization_id"),
        *_TAIL_COLUMNS,
    ]
)
_POSTGRES_CANONICAL = _canonical(
    [
        "sequence::text",
        "id::text",
        "to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US')",
        *_TEXT_COLUMNS,
        "organization_id::text",
        *_TAIL_COLUMNS,
    ]
)

# One row per record of the range, with the reason it breaks the chain (NULL when it holds).
# The record just before the range is read too, for the first link.
_CHECK_RANGE = """
SELECT sequence, record_id, CASE
    WHEN sequence <> 1 AND (prior_sequence IS NULL OR prior_sequence <> sequence - 1)
        THEN 'the record before it is missing or out of order'
    WHEN previous_hash <> CASE WHEN sequence = 1 THEN :genesis ELSE prior_hash END
        THEN 'previous_hash does not match the record before it'
    WHEN computed <> current_hash
        THEN 'current_hash does not match the record''s contents'
    END AS reason
FROM (
    SELECT sequence, CAST(id AS TEXT) AS record_id, previous_hash, current_hash,
        lag(sequence) OVER (ORDER BY sequence) AS prior_sequence,
        lag(current_hash) OVER (ORDER BY sequence) AS prior_hash,
        {digest} AS computed
    FROM audit_records
    WHERE sequence BETWEEN :low AND :end
) AS chain
WHERE sequence >= :start
ORDER BY sequence
"""


class AuditRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    def _filtered(self, scope: TenantScope, filters: AuditFilter) -> Select[AuditRecord]:
        statement = select(AuditRecord).where(scope.where(AuditRecord.organization_id))
        conditions: list[Any] = []
        if filters.organization_id is not None:
            conditions.append(AuditRecord.organization_id == filters.organization_id)
        if filters.actor_id is not None:
            conditions.append(AuditRecord.actor_id == filters.actor_id)
        if filters.actor_type is not None:
            conditions.append(AuditRecord.actor_type == filters.actor_type)
        if filters.action is not None:
            conditions.append(AuditRecord.action == filters.action)
        if filters.resource_type is not None:
            conditions.append(AuditRecord.resource_type == filters.resource_type)
        if filters.resource_id is not None:
            conditions.append(AuditRecord.resource_id == filters.resource_id)
        if filters.since is not None:
            conditions.append(AuditRecord.created_at >= filters.since)
        if filters.until is not None:
            conditions.append(AuditRecord.created_at <= filters.until)
        return statement.where(*conditions)

    async def page(
        self, scope: TenantScope, filters: AuditFilter, *, before: int | None, limit: int
    ) -> list[AuditRecord]:
        statement = self._filtered(scope, filters)
        if before is not None:
            statement = statement.where(AuditRecord.sequence < before)
        statement = statement.order_by(AuditRecord.sequence.desc()).limit(limit)
        return list((await self.session.scalars(statement)).all())

    async def oldest_first(
        self, scope: TenantScope, filters: AuditFilter, *, after: int, limit: int
    ) -> list[AuditRecord]:
        statement = (
            self._filtered(scope, filters)
            .where(AuditRecord.sequence > after)
            .order_by(AuditRecord.sequence)
            .limit(limit)
        )
        return list((await self.session.scalars(statement)).all())

    async def get(self, scope: TenantScope, record_id: uuid.UUID) -> AuditRecord | None:
        statement = select(AuditRecord).where(
            AuditRecord.id == record_id, scope.where(AuditRecord.organization_id)
        )
        return await self.session.scalar(statement)

    async def check_range(self, start: int, end: int) -> RangeCheck:
        """Recomputes, in the database, the hash and the link of every record with a sequence
        in [start, end], and returns the first that fails with why, and how many passed."""
        dialect = self.session.bind.dialect.name if self.session.bind else "sqlite"
        canon = _POSTGRES_CANONICAL if dialect == "postgresql" else _SQLITE_CANONICAL
        digest = (
            f"encode(sha256(convert_to({canon}, 'UTF8')), 'hex')"
            if dialect == "postgresql"
            else f"budapp_sha256({canon})"
        )
        statement = text(_CHECK_RANGE.format(digest=digest))
        params = {"low": start - 1, "start": start, "end": end, "genesis": GENESIS_HASH}
        rows = (await self.session.execute(statement, params)).mappings().all()
        broken = next((row for row in rows if row["reason"] is not None), None)
        passed = sum(1 for row in rows if broken is None or row["sequence"] < broken["sequence"])
        last = max((row["sequence"] for row in rows), default=None)
        return RangeCheck(passed, broken, last)

    async def sequence_bounds(self) -> tuple[int | None, int | None]:
        statement = select(func.min(AuditRecord.sequence), func.max(AuditRecord.sequence))
        low, high = (await self.session.execute(statement)).one()
        return low, high

    async def hash_of(self, sequence: int) -> str | None:
        statement = select(AuditRecord.current_hash).where(AuditRecord.sequence == sequence)
        return await self.session.scalar(statement)

    async def head(self) -> AuditChainHead:
        head = await self.session.get(AuditChainHead, 1)
        if head is None:
            raise LookupError("the audit chain head row is missing")
        return head

from __future__ import annotations

import uuid
from dataclasses import dataclass

from sqlalchemy import Select, func, select, text

from budapp.audit.chain import GENESIS_HASH
from budapp.audit.models import AuditChainHead, AuditRecord
from budapp.audit.schemas import AuditFilter
from budapp.core.auth import TenantScope
from budapp.core.repository import Repository, at_least, at_most, equal, narrowed

_LINK = "previous_hash does not match the record before it (missing or out of order)"
_CONTENT = "current_hash does not match the record's contents"


@dataclass(frozen=True, slots=True)
class Break:
    sequence: int
    record_id: str | None
    reason: str


@dataclass(frozen=True, slots=True)
class RangeCheck:
    passed: int
    broken: Break | None
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


_SQLITE_CANONICAL = _canonical(
    [
        "CAST(sequence AS TEXT)",
        "id",
        "created_at",
        *_TEXT_COLUMNS,
        "organization_id",
        *_TAIL_COLUMNS,
    ]
)
_POSTGRES_CANONICAL = _canonical(
    [
        "sequence::text",
        "replace(id::text, '-', '')",
        "to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US')",
        *_TEXT_COLUMNS,
        "replace(organization_id::text, '-', '')",
        *_TAIL_COLUMNS,
    ]
)

# Three aggregate passes over a range, none needing the rows in Python and none ordered
# (PostgreSQL may run them on parallel workers): the first record whose hash does not
# match its contents, the first whose link to the record before it is broken, and how many
# records the range holds.
_FIRST_BAD_CONTENT = """
SELECT min(sequence) FROM audit_records
WHERE sequence BETWEEN :start AND :end AND {digest} <> current_hash
"""
_FIRST_BAD_LINK = """
SELECT min(record.sequence) FROM audit_records AS record
LEFT JOIN audit_records AS prior ON prior.sequence = record.sequence - 1
WHERE record.sequence BETWEEN :start AND :end AND (
    (record.sequence <> 1 AND prior.sequence IS NULL)
    OR record.previous_hash
        <> CASE WHEN record.sequence = 1 THEN :genesis ELSE prior.current_hash END
)
"""
_RANGE_SIZE = """
SELECT count(*), max(sequence) FROM audit_records WHERE sequence BETWEEN :start AND :end
"""


_FILTERS = (
    equal("organization_id", AuditRecord.organization_id),
    equal("actor_id", AuditRecord.actor_id),
    equal("actor_type", AuditRecord.actor_type),
    equal("action", AuditRecord.action),
    equal("resource_type", AuditRecord.resource_type),
    equal("resource_id", AuditRecord.resource_id),
    at_least("since", AuditRecord.created_at),
    at_most("until", AuditRecord.created_at),
)


class AuditRepository(Repository):
    def _filtered(self, scope: TenantScope, filters: AuditFilter) -> Select[AuditRecord]:
        statement = select(AuditRecord).where(scope.where(AuditRecord.organization_id))
        return narrowed(statement, filters, _FILTERS)

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
        in [start, end]; returns the first that fails and why, and how many records passed."""
        dialect = self.session.bind.dialect.name if self.session.bind else "sqlite"
        digest = (
            f"encode(sha256(convert_to({_POSTGRES_CANONICAL}, 'UTF8')), 'hex')"
            if dialect == "postgresql"
            else f"budapp_sha256({_SQLITE_CANONICAL})"
        )
        params = {"start": start, "end": end, "genesis": GENESIS_HASH}
        bad_link = await self.session.scalar(text(_FIRST_BAD_LINK), params)
        bad_content = await self.session.scalar(
            text(_FIRST_BAD_CONTENT.format(digest=digest)), params
        )
        count, last = (await self.session.execute(text(_RANGE_SIZE), params)).one()
        candidates = [(s, r) for s, r in ((bad_link, _LINK), (bad_content, _CONTENT)) if s]
        if not candidates:
            return RangeCheck(int(count), None, last)
        sequence, reason = min(candidates, key=lambda candidate: candidate[0])
        record_id = await self.session.scalar(
            select(AuditRecord.id).where(AuditRecord.sequence == sequence)
        )
        if reason == _LINK and sequence != 1:
            before = await self.session.scalar(
                select(func.max(AuditRecord.sequence)).where(AuditRecord.sequence < sequence)
            )
            if before != sequence - 1:
                # The link broke because records are gone: name the first missing position.
                missing_from = (before or 0) + 1
                reason = f"records {missing_from} to {sequence - 1} are missing"
                sequence = missing_from
        passed = await self.session.scalar(
            text("SELECT count(*) FROM audit_records WHERE sequence BETWEEN :start AND :before"),
            {"start": start, "before": sequence - 1},
        )
        broken = Break(sequence, str(record_id) if record_id else None, reason)
        return RangeCheck(int(passed or 0), broken, last)

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

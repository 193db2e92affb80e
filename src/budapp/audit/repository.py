from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy import RowMapping, Select, select
from sqlalchemy.ext.asyncio import AsyncSession

from budapp.audit.models import AuditChainHead, AuditRecord
from budapp.audit.schemas import AuditFilter
from budapp.core.auth import TenantScope

_COLUMNS = list(AuditRecord.__table__.columns)


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

    async def chain_rows(self, after: int, upto: int | None, limit: int) -> Sequence[RowMapping]:
        """Raw rows in sequence order for verification: no ORM objects, for speed."""
        statement = select(*_COLUMNS).where(AuditRecord.sequence > after)
        if upto is not None:
            statement = statement.where(AuditRecord.sequence <= upto)
        statement = statement.order_by(AuditRecord.sequence).limit(limit)
        return (await self.session.execute(statement)).mappings().all()

    async def hash_of(self, sequence: int) -> str | None:
        statement = select(AuditRecord.current_hash).where(AuditRecord.sequence == sequence)
        return await self.session.scalar(statement)

    async def head(self) -> AuditChainHead:
        head = await self.session.get(AuditChainHead, 1)
        if head is None:
            raise LookupError("the audit chain head row is missing")
        return head

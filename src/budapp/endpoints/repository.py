from __future__ import annotations

import uuid
from collections.abc import Iterable

from sqlalchemy import ColumnElement, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from budapp.core.auth import TenantScope
from budapp.core.db import utcnow
from budapp.core.repository import contains, fetch_page
from budapp.endpoints.models import Endpoint, EndpointReplica, EndpointStatus
from budapp.endpoints.schemas import EndpointFilter


class EndpointRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get(self, scope: TenantScope, endpoint_id: uuid.UUID) -> Endpoint | None:
        statement = select(Endpoint).where(
            Endpoint.id == endpoint_id,
            Endpoint.deleted_at.is_(None),
            scope.where(Endpoint.organization_id),
        )
        return (await self.session.scalars(statement)).first()

    async def page(
        self, scope: TenantScope, filters: EndpointFilter, *, projects: list[uuid.UUID] | None
    ) -> tuple[list[Endpoint], int]:
        conditions: list[ColumnElement[bool]] = [
            Endpoint.deleted_at.is_(None),
            scope.where(Endpoint.organization_id),
        ]
        if projects is not None:
            conditions.append(Endpoint.project_id.in_(projects))
        if filters.project_id is not None:
            conditions.append(Endpoint.project_id == filters.project_id)
        if filters.status is not None:
            conditions.append(Endpoint.status == filters.status)
        if filters.model_id is not None:
            conditions.append(Endpoint.model_id == filters.model_id)
        if filters.cluster_id is not None:
            conditions.append(Endpoint.cluster_id == filters.cluster_id)
        if filters.name:
            conditions.append(contains(Endpoint.name, filters.name))
        statement = (
            select(Endpoint)
            .where(*conditions)
            .order_by(Endpoint.created_at.desc(), Endpoint.id.desc())
        )
        return await fetch_page(self.session, statement, filters)

    async def name_taken(
        self, project_id: uuid.UUID, name: str, *, excluding: uuid.UUID | None = None
    ) -> bool:
        statement = select(Endpoint.id).where(
            Endpoint.project_id == project_id,
            func.lower(Endpoint.name) == name.lower(),
            Endpoint.deleted_at.is_(None),
        )
        if excluding is not None:
            statement = statement.where(Endpoint.id != excluding)
        return (await self.session.scalar(statement.limit(1))) is not None

    async def move(
        self,
        endpoint: Endpoint,
        to: EndpointStatus,
        allowed_from: Iterable[EndpointStatus],
        message: str | None,
    ) -> bool:
        """Moves the status only if it still is one of `allowed_from` (one conditional UPDATE,
        so two concurrent requests cannot both win)."""
        await self.session.flush()  # pending changes first: the refresh below reloads the row
        now = utcnow()
        statement = (
            update(Endpoint)
            .where(Endpoint.id == endpoint.id, Endpoint.status.in_(list(allowed_from)))
            .values(status=to, status_message=message, updated_at=now)
            .execution_options(synchronize_session=False)
        )
        result = await self.session.execute(statement)
        moved = bool(getattr(result, "rowcount", 0) == 1)
        if moved:
            await self.session.refresh(endpoint)
        return moved

    async def replicas(self, endpoint_id: uuid.UUID) -> list[EndpointReplica]:
        statement = (
            select(EndpointReplica)
            .where(EndpointReplica.endpoint_id == endpoint_id)
            .order_by(EndpointReplica.index)
        )
        return list((await self.session.scalars(statement)).all())

    async def replica_by_runtime(self, runtime_id: str) -> EndpointReplica | None:
        statement = select(EndpointReplica).where(EndpointReplica.runtime_id == runtime_id)
        return (await self.session.scalars(statement)).first()

    async def count_live(self, column: ColumnElement[bool]) -> int:
        statement = (
            select(func.count()).select_from(Endpoint).where(column, Endpoint.deleted_at.is_(None))
        )
        return int(await self.session.scalar(statement) or 0)

    def add(self, row: Endpoint | EndpointReplica) -> None:
        self.session.add(row)

from __future__ import annotations

import uuid

from sqlalchemy import ColumnElement, false, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from budapp.core.auth import TenantScope
from budapp.core.repository import fetch_page
from budapp.workflows.models import RunStatus, WorkflowRun, WorkflowStep
from budapp.workflows.schemas import WorkflowFilter


class WorkflowRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get(self, scope: TenantScope, run_id: uuid.UUID) -> WorkflowRun | None:
        statement = select(WorkflowRun).where(
            WorkflowRun.id == run_id, scope.where(WorkflowRun.organization_id)
        )
        return (await self.session.scalars(statement)).first()

    async def steps(self, run_id: uuid.UUID) -> list[WorkflowStep]:
        statement = (
            select(WorkflowStep)
            .where(WorkflowStep.run_id == run_id)
            .order_by(WorkflowStep.position)
        )
        return list((await self.session.scalars(statement)).all())

    async def page(
        self,
        scope: TenantScope,
        filters: WorkflowFilter,
        *,
        visible_projects: list[uuid.UUID] | None,
        created_by: uuid.UUID | None,
    ) -> tuple[list[WorkflowRun], int]:
        conditions: list[ColumnElement[bool]] = [scope.where(WorkflowRun.organization_id)]
        if visible_projects is not None:
            # Callers below org admin see the runs of their projects and the ones they started.
            own = WorkflowRun.created_by == created_by if created_by else false()
            in_projects = (
                WorkflowRun.project_id.in_(visible_projects) if visible_projects else false()
            )
            conditions.append(or_(in_projects, own))
        if filters.status is not None:
            conditions.append(WorkflowRun.status == filters.status)
        if filters.kind is not None:
            conditions.append(WorkflowRun.kind == filters.kind)
        if filters.project_id is not None:
            conditions.append(WorkflowRun.project_id == filters.project_id)
        if filters.resource_id is not None:
            conditions.append(WorkflowRun.resource_id == filters.resource_id)
        statement = (
            select(WorkflowRun)
            .where(*conditions)
            .order_by(WorkflowRun.created_at.desc(), WorkflowRun.id.desc())
        )
        return await fetch_page(self.session, statement, filters)

    async def active_for(self, resource_id: uuid.UUID) -> WorkflowRun | None:
        statement = select(WorkflowRun).where(
            WorkflowRun.resource_id == resource_id,
            WorkflowRun.status.in_([RunStatus.PENDING, RunStatus.RUNNING]),
        )
        return (await self.session.scalars(statement.limit(1))).first()

    def add(self, row: WorkflowRun | WorkflowStep) -> None:
        self.session.add(row)

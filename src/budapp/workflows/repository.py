from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import delete, false, func, or_, select, update

from budapp.core.auth import TenantScope
from budapp.core.repository import Repository, equal, fetch_page, narrowed
from budapp.workflows.models import (
    RunStatus,
    StepStatus,
    WorkflowExecutor,
    WorkflowRun,
    WorkflowStep,
)
from budapp.workflows.schemas import WorkflowFilter

_FILTERS = (
    equal("status", WorkflowRun.status),
    equal("kind", WorkflowRun.kind),
    equal("project_id", WorkflowRun.project_id),
    equal("resource_id", WorkflowRun.resource_id),
)


class WorkflowRepository(Repository):
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
        statement = select(WorkflowRun).where(scope.where(WorkflowRun.organization_id))
        if visible_projects is not None:
            # Callers below org admin see the runs of their projects and the ones they started.
            own = WorkflowRun.created_by == created_by if created_by else false()
            in_projects = (
                WorkflowRun.project_id.in_(visible_projects) if visible_projects else false()
            )
            statement = statement.where(or_(in_projects, own))
        statement = narrowed(statement, filters, _FILTERS).order_by(
            WorkflowRun.created_at.desc(), WorkflowRun.id.desc()
        )
        return await fetch_page(self.session, statement, filters)

    async def active_for(self, resource_id: uuid.UUID) -> WorkflowRun | None:
        statement = select(WorkflowRun).where(
            WorkflowRun.resource_id == resource_id,
            WorkflowRun.status.in_([RunStatus.PENDING, RunStatus.RUNNING]),
        )
        return (await self.session.scalars(statement.limit(1))).first()

    async def by_id(self, run_id: uuid.UUID) -> WorkflowRun | None:
        """Any run: for the engine, which already knows which run it works for."""
        return await self.session.get(WorkflowRun, run_id)

    async def step(self, run_id: uuid.UUID, name: str) -> WorkflowStep | None:
        statement = select(WorkflowStep).where(
            WorkflowStep.run_id == run_id, WorkflowStep.name == name
        )
        return (await self.session.scalars(statement)).first()

    async def count_done(self, run_id: uuid.UUID) -> int:
        """Steps that succeeded or were skipped, counted in the database (with the flushed
        change of the step just finished), not by loading every step."""
        statement = select(func.count()).where(
            WorkflowStep.run_id == run_id,
            WorkflowStep.status.in_((StepStatus.SUCCEEDED, StepStatus.SKIPPED)),
        )
        return int(await self.session.scalar(statement) or 0)

    async def fail_running_steps(self, run_id: uuid.UUID, now: datetime) -> None:
        await self.session.execute(
            update(WorkflowStep)
            .where(WorkflowStep.run_id == run_id, WorkflowStep.status == StepStatus.RUNNING)
            .values(status=StepStatus.FAILED, finished_at=now, updated_at=now)
            .execution_options(synchronize_session=False)
        )

    async def record_heartbeat(self, executor_id: str, now: datetime) -> None:
        updated = await self.session.execute(
            update(WorkflowExecutor)
            .where(WorkflowExecutor.executor_id == executor_id)
            .values(heartbeat_at=now)
        )
        if not getattr(updated, "rowcount", 0):
            self.session.add(WorkflowExecutor(executor_id=executor_id, heartbeat_at=now))

    async def silent_executors(self, executor_id: str, cutoff: datetime) -> list[str]:
        """Other replicas whose last heartbeat is older than `cutoff`."""
        statement = select(WorkflowExecutor.executor_id).where(
            WorkflowExecutor.heartbeat_at < cutoff, WorkflowExecutor.executor_id != executor_id
        )
        return list((await self.session.scalars(statement)).all())

    async def claim_executor(self, executor_id: str, cutoff: datetime) -> bool:
        """Deletes a silent replica's row; True for the one replica whose delete took it."""
        claimed = await self.session.execute(
            delete(WorkflowExecutor).where(
                WorkflowExecutor.executor_id == executor_id,
                WorkflowExecutor.heartbeat_at < cutoff,
            )
        )
        return bool(getattr(claimed, "rowcount", 0) == 1)

    async def busy_resources(self, resource_type: str) -> set[uuid.UUID]:
        statement = select(WorkflowRun.resource_id).where(
            WorkflowRun.resource_type == resource_type,
            WorkflowRun.status.in_((RunStatus.PENDING, RunStatus.RUNNING)),
        )
        return set((await self.session.scalars(statement)).all())

    async def pending(self) -> list[tuple[uuid.UUID, str]]:
        """Runs recorded as PENDING: (id, kind)."""
        statement = select(WorkflowRun.id, WorkflowRun.kind).where(
            WorkflowRun.status == RunStatus.PENDING
        )
        return [(row[0], row[1]) for row in (await self.session.execute(statement)).all()]

"""Starting, reading, cancelling and retrying workflow runs. Domains start their workflows
through `WorkflowService.start`, inside the request's unit of work: the run and its steps are
written with the request, and handed to the engine only once that commits."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from dbos import DBOS
from sqlalchemy.ext.asyncio import AsyncSession

from budapp.core.auth import Principal, system_scope
from budapp.core.db import after_commit, utcnow
from budapp.core.envelope import Page
from budapp.core.errors import Conflict, Forbidden, NotFound
from budapp.core.roles import Permission, Role
from budapp.projects.service import ProjectService
from budapp.workflows import engine
from budapp.workflows.models import RunStatus, StepStatus, WorkflowRun, WorkflowStep
from budapp.workflows.repository import WorkflowRepository
from budapp.workflows.schemas import StepRead, WorkflowDetail, WorkflowFilter, WorkflowRead


def _read(run: WorkflowRun) -> WorkflowRead:
    progress = run.steps_done / run.steps_total if run.steps_total else 0.0
    return WorkflowRead.model_validate(run, from_attributes=True).model_copy(
        update={"progress": round(progress, 4)}
    )


@dataclass(frozen=True, slots=True)
class WorkflowAccess:
    """A run as one caller may see or control it."""

    run: WorkflowRun
    principal: Principal


class WorkflowService:
    def __init__(self, session: AsyncSession, projects: ProjectService) -> None:
        self.session = session
        self.repository = WorkflowRepository(session)
        self.projects = projects

    async def start(
        self,
        kind: str,
        *,
        organization_id: uuid.UUID,
        project_id: uuid.UUID | None,
        resource_id: uuid.UUID,
        arguments: dict[str, Any],
        created_by: uuid.UUID | None,
        retry_of: uuid.UUID | None = None,
    ) -> WorkflowRun:
        declared = engine.DEFINITIONS[kind]
        run = WorkflowRun(
            id=uuid.uuid4(),
            organization_id=organization_id,
            project_id=project_id,
            kind=kind,
            resource_type=declared.resource_type,
            resource_id=resource_id,
            arguments=arguments,
            steps_total=len(declared.steps),
            created_by=created_by,
            retry_of=retry_of,
            created_at=utcnow(),
        )
        self.repository.add(run)
        for position, spec in enumerate(declared.steps):
            self.repository.add(
                WorkflowStep(run_id=run.id, position=position, name=spec.name, title=spec.title)
            )
        await self.session.flush()
        run_id = run.id

        async def hand_over() -> None:
            await engine.enqueue(kind, run_id)

        after_commit(self.session, hand_over)
        return run

    async def active_for(self, resource_id: uuid.UUID) -> WorkflowRun | None:
        return await self.repository.active_for(resource_id)

    # --- reads -------------------------------------------------------------------------------

    async def page(self, by: Principal, filters: WorkflowFilter) -> Page[WorkflowRead]:
        visible: list[uuid.UUID] | None = None
        if not by.has_role(Role.ORG_ADMIN):
            visible = [
                membership.project_id
                for membership in await self.projects.memberships(by.user_id)
                if Permission.ENDPOINT_VIEW in membership.permissions
            ]
        rows, total = await self.repository.page(
            by.scope, filters, visible_projects=visible, created_by=by.user_id
        )
        return Page([_read(row) for row in rows], total, filters)

    async def read(self, access: WorkflowAccess) -> WorkflowDetail:
        return await self._detail(access.run)

    async def _detail(self, run: WorkflowRun) -> WorkflowDetail:
        steps = [StepRead.model_validate(step) for step in await self.repository.steps(run.id)]
        return WorkflowDetail(**_read(run).model_dump(), steps=steps)

    # --- control -----------------------------------------------------------------------------

    async def cancel(self, access: WorkflowAccess) -> WorkflowDetail:
        await self.cancel_run(access.run, f"Cancelled by {access.principal.email}")
        return await self._detail(access.run)

    async def run_of(self, run_id: uuid.UUID) -> WorkflowRun | None:
        """A run for a domain that has already authorised the caller on its resource."""
        return await self.repository.get(system_scope(), run_id)

    async def cancel_run(self, run: WorkflowRun, reason: str) -> None:
        """Cancels a run the caller was authorised for (by `cancel`, or by the domain that
        owns the run's resource); its definition's `on_cancel` runs in this unit of work."""
        if run.status.finished:
            raise Conflict(f"The workflow has already finished ({run.status.value})")
        await DBOS.cancel_workflow_async(str(run.id))
        now = utcnow()
        run.status = RunStatus.CANCELLED
        run.finished_at = now
        run.error = reason
        for step in await self.repository.steps(run.id):
            if step.status in {StepStatus.PENDING, StepStatus.RUNNING}:
                step.status = (
                    StepStatus.SKIPPED if step.status is StepStatus.PENDING else (StepStatus.FAILED)
                )
                step.finished_at = now
        declared = engine.DEFINITIONS.get(run.kind)
        if declared is not None and declared.on_cancel is not None:
            await declared.on_cancel(self.session, run)
        await self.session.flush()

    async def retry(self, access: WorkflowAccess) -> WorkflowDetail:
        run = access.run
        if run.status not in {RunStatus.FAILED, RunStatus.CANCELLED}:
            raise Conflict("Only a failed or cancelled workflow can be retried")
        active = await self.repository.active_for(run.resource_id)
        if active is not None:
            raise Conflict(f"Workflow {active.id} is already running for this {run.resource_type}")
        declared = engine.DEFINITIONS.get(run.kind)
        if declared is not None and declared.before_retry is not None:
            await declared.before_retry(self.session, run)
        fresh = await self.start(
            run.kind,
            organization_id=run.organization_id,
            project_id=run.project_id,
            resource_id=run.resource_id,
            arguments=dict(run.arguments),
            created_by=access.principal.user_id,
            retry_of=run.id,
        )
        return await self._detail(fresh)

    async def access(
        self, run_id: uuid.UUID, by: Principal, permission: Permission
    ) -> WorkflowAccess:
        """The run if the caller may see it (else NOT_FOUND) and holds `permission` on its
        project (else FORBIDDEN); a run of no project is its starter's to see."""
        return WorkflowAccess(await self._get(run_id, by, permission), by)

    async def _get(self, run_id: uuid.UUID, by: Principal, permission: Permission) -> WorkflowRun:
        run = await self.repository.get(by.scope, run_id)
        if run is None:
            raise NotFound("workflow", run_id)
        if by.has_role(Role.ORG_ADMIN):
            return run
        if run.project_id is None:
            if run.created_by == by.user_id and permission is Permission.ENDPOINT_VIEW:
                return run
            raise NotFound("workflow", run_id)
        try:
            await self.projects.access(run.project_id, by, permission)
        except NotFound:
            raise NotFound("workflow", run_id) from None
        except Forbidden:
            raise
        return run


async def resources_in_flight(session: AsyncSession, resource_type: str) -> set[uuid.UUID]:
    """The resources of a type that a workflow is pending or running for."""
    return await WorkflowRepository(session).busy_resources(resource_type)

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Depends

from budapp.core.auth import CurrentPrincipal
from budapp.core.deps import SessionDep
from budapp.core.roles import Permission
from budapp.projects.dependencies import ProjectServiceDep
from budapp.workflows.service import WorkflowAccess, WorkflowService


async def _service(session: SessionDep, projects: ProjectServiceDep) -> WorkflowService:
    return WorkflowService(session, projects)


WorkflowServiceDep = Annotated[WorkflowService, Depends(_service)]


def workflow_access(permission: Permission) -> Callable[..., Awaitable[WorkflowAccess]]:
    """Dependency: the path's `workflow_id`, visible to the caller, who holds `permission` on
    its project. Runs act on endpoints, so endpoint permissions govern them."""

    async def dependency(
        workflow_id: uuid.UUID, principal: CurrentPrincipal, service: WorkflowServiceDep
    ) -> WorkflowAccess:
        return await service.access(workflow_id, principal, permission)

    return dependency


WorkflowReader = Annotated[WorkflowAccess, Depends(workflow_access(Permission.ENDPOINT_VIEW))]
WorkflowManager = Annotated[WorkflowAccess, Depends(workflow_access(Permission.ENDPOINT_MANAGE))]

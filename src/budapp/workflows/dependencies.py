from __future__ import annotations

from typing import Annotated

from fastapi import Depends

from budapp.core.deps import SessionDep
from budapp.projects.dependencies import ProjectServiceDep
from budapp.workflows.service import WorkflowService


async def _service(session: SessionDep, projects: ProjectServiceDep) -> WorkflowService:
    return WorkflowService(session, projects)


WorkflowServiceDep = Annotated[WorkflowService, Depends(_service)]

from __future__ import annotations

from typing import Annotated

from fastapi import Depends

from budapp.core.deps import SessionDep
from budapp.projects.dependencies import ProjectServiceDep
from budapp.usage.service import UsageService


async def _service(session: SessionDep, projects: ProjectServiceDep) -> UsageService:
    return UsageService(session, projects)


UsageServiceDep = Annotated[UsageService, Depends(_service)]

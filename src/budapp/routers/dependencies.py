from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from budapp.core.components import components
from budapp.core.deps import SessionDep
from budapp.core.roles import Permission
from budapp.credentials.dependencies import CredentialServiceDep
from budapp.projects.dependencies import project_access
from budapp.projects.service import ProjectAccess
from budapp.routers.service import RouterService


async def _service(
    request: Request, session: SessionDep, credentials: CredentialServiceDep
) -> RouterService:
    return RouterService(session, components(request).event_bus, credentials)


RouterServiceDep = Annotated[RouterService, Depends(_service)]
RoutersViewer = Annotated[ProjectAccess, Depends(project_access(Permission.ROUTER_VIEW))]
RoutersManager = Annotated[ProjectAccess, Depends(project_access(Permission.ROUTER_MANAGE))]

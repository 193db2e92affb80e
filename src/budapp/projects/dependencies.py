from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Depends, Request

from budapp.core.auth import CurrentPrincipal, Principal
from budapp.core.components import components
from budapp.core.deps import SessionDep
from budapp.core.roles import Permission
from budapp.organizations.dependencies import OrganizationServiceDep
from budapp.projects.service import ProjectAccess, ProjectService
from budapp.users.dependencies import UserServiceDep


async def _service(
    request: Request,
    session: SessionDep,
    users: UserServiceDep,
    organizations: OrganizationServiceDep,
) -> ProjectService:
    return ProjectService(session, users, organizations, components(request).references)


ProjectServiceDep = Annotated[ProjectService, Depends(_service)]


def project_access(permission: Permission) -> Callable[..., Awaitable[ProjectAccess]]:
    """Dependency: the path's `project_id`, visible to the caller, who holds `permission`."""

    async def dependency(
        project_id: uuid.UUID, principal: CurrentPrincipal, service: ProjectServiceDep
    ) -> ProjectAccess:
        return await service.access(project_id, principal, permission)

    return dependency


def in_any_project(permission: Permission) -> Callable[..., Awaitable[Principal]]:
    """Dependency: the caller, who holds `permission` in at least one project (org admins
    hold every permission): for resources of the whole organisation (models, datasets)."""

    async def dependency(principal: CurrentPrincipal, service: ProjectServiceDep) -> Principal:
        await service.require_in_any_project(principal, permission)
        return principal

    return dependency


ProjectViewer = Annotated[ProjectAccess, Depends(project_access(Permission.PROJECT_VIEW))]
ProjectManager = Annotated[ProjectAccess, Depends(project_access(Permission.PROJECT_MANAGE))]
MembersViewer = Annotated[ProjectAccess, Depends(project_access(Permission.MEMBERS_VIEW))]
MembersManager = Annotated[ProjectAccess, Depends(project_access(Permission.MEMBERS_MANAGE))]

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Depends, Request

from budapp.core.auth import CurrentPrincipal
from budapp.core.components import components
from budapp.core.deps import SessionDep
from budapp.core.roles import Permission
from budapp.credentials.service import VAULT, CredentialAccess, CredentialService
from budapp.organizations.dependencies import OrganizationServiceDep
from budapp.projects.dependencies import ProjectServiceDep


async def _service(
    request: Request,
    session: SessionDep,
    projects: ProjectServiceDep,
    organizations: OrganizationServiceDep,
) -> CredentialService:
    state = components(request)
    return CredentialService(session, state[VAULT], projects, organizations, state.references)


CredentialServiceDep = Annotated[CredentialService, Depends(_service)]


def credential_access(permission: Permission) -> Callable[..., Awaitable[CredentialAccess]]:
    """Dependency: the path's `credential_id`, visible to the caller, who holds `permission`
    on it (on its project, or org admin for organisation-wide credentials)."""

    async def dependency(
        credential_id: uuid.UUID, principal: CurrentPrincipal, service: CredentialServiceDep
    ) -> CredentialAccess:
        return await service.access(credential_id, principal, permission)

    return dependency


CredentialReader = Annotated[
    CredentialAccess, Depends(credential_access(Permission.CREDENTIAL_VIEW))
]
CredentialManager = Annotated[
    CredentialAccess, Depends(credential_access(Permission.CREDENTIAL_MANAGE))
]

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from budapp.core.components import components
from budapp.core.deps import SessionDep
from budapp.credentials.service import VAULT, CredentialService
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

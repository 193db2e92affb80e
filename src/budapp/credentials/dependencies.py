from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from budapp.core.deps import SessionDep
from budapp.credentials.service import CredentialService
from budapp.organizations.dependencies import OrganizationServiceDep
from budapp.projects.dependencies import ProjectServiceDep


async def _service(
    request: Request,
    session: SessionDep,
    projects: ProjectServiceDep,
    organizations: OrganizationServiceDep,
) -> CredentialService:
    state = request.app.state
    return CredentialService(session, state.vault, projects, organizations, state.references)


CredentialServiceDep = Annotated[CredentialService, Depends(_service)]

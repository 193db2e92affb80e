from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import Depends, Request

from budapp.core.auth import CurrentPrincipal, SuperAdmin
from budapp.core.components import components
from budapp.core.deps import SessionDep
from budapp.organizations.models import Organization
from budapp.organizations.service import OrganizationService


async def _service(request: Request, session: SessionDep) -> OrganizationService:
    return OrganizationService(session, components(request).references)


OrganizationServiceDep = Annotated[OrganizationService, Depends(_service)]


async def _visible(
    organization_id: uuid.UUID, principal: CurrentPrincipal, service: OrganizationServiceDep
) -> Organization:
    return await service.get(principal.scope, organization_id)


async def _managed(
    organization_id: uuid.UUID, principal: CurrentPrincipal, service: OrganizationServiceDep
) -> Organization:
    return await service.managed(organization_id, principal)


async def _deletable(
    organization_id: uuid.UUID, principal: SuperAdmin, service: OrganizationServiceDep
) -> Organization:
    return await service.get(principal.scope, organization_id)


# The caller's own organisation (any organisation, for super admins).
OrganizationReader = Annotated[Organization, Depends(_visible)]
# ...that the caller administers (org admins and above).
OrganizationManager = Annotated[Organization, Depends(_managed)]
# Super admins only, on any organisation.
OrganizationRemover = Annotated[Organization, Depends(_deletable)]

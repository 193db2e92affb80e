from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from budapp.core.auth import CurrentPrincipal, SuperAdmin
from budapp.core.envelope import Envelope, PageEnvelope, PageParams
from budapp.core.errors import Conflict, Forbidden, NotFound, Unauthorized
from budapp.core.http import errors
from budapp.organizations.dependencies import (
    OrganizationManager,
    OrganizationReader,
    OrganizationRemover,
    OrganizationServiceDep,
)
from budapp.organizations.schemas import OrganizationCreate, OrganizationRead, OrganizationUpdate

router = APIRouter(prefix="/organizations", tags=["organizations"], responses=errors(Unauthorized))


@router.get("", responses=errors(Forbidden))
async def list_organizations(
    principal: CurrentPrincipal,
    service: OrganizationServiceDep,
    params: Annotated[PageParams, Query()],
) -> PageEnvelope[OrganizationRead]:
    """Super admins see every organization; everyone else sees their own."""
    return (await service.page(principal.scope, params)).envelope()


@router.post("", status_code=201, responses=errors(Forbidden, Conflict))
async def create_organization(
    body: OrganizationCreate, _: SuperAdmin, service: OrganizationServiceDep
) -> Envelope[OrganizationRead]:
    organization = await service.create(body)
    return Envelope(data=OrganizationRead.model_validate(organization))


@router.get("/{organization_id}", responses=errors(NotFound))
async def get_organization(organization: OrganizationReader) -> Envelope[OrganizationRead]:
    return Envelope(data=OrganizationRead.model_validate(organization))


@router.put("/{organization_id}", responses=errors(NotFound, Forbidden, Conflict))
async def update_organization(
    organization: OrganizationManager, body: OrganizationUpdate, service: OrganizationServiceDep
) -> Envelope[OrganizationRead]:
    return Envelope(data=await service.update(organization, body))


@router.delete(
    "/{organization_id}", status_code=204, responses=errors(NotFound, Forbidden, Conflict)
)
async def delete_organization(
    organization: OrganizationRemover, principal: SuperAdmin, service: OrganizationServiceDep
) -> None:
    await service.delete(principal, organization)

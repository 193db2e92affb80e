from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response

from budapp.core.auth import CurrentPrincipal
from budapp.core.envelope import Envelope, PageEnvelope
from budapp.core.errors import Conflict, Forbidden, InvalidInput, NotFound, Unauthorized
from budapp.core.http import errors
from budapp.credentials.dependencies import (
    CredentialManager,
    CredentialReader,
    CredentialServiceDep,
)
from budapp.credentials.schemas import (
    CredentialCreate,
    CredentialFilter,
    CredentialRead,
    CredentialUpdate,
)

router = APIRouter(prefix="/credentials", tags=["credentials"], responses=errors(Unauthorized))


@router.get("")
async def list_credentials(
    principal: CurrentPrincipal,
    service: CredentialServiceDep,
    filters: Annotated[CredentialFilter, Query()],
) -> PageEnvelope[CredentialRead]:
    """Secrets are never returned: only masked, as `secrets`. Lists what the caller may see:
    their projects' credentials (with credential:view), organisation-wide ones for project
    admins and above."""
    return (await service.page(principal, filters)).envelope()


@router.post("", status_code=201, responses=errors(Forbidden, Conflict, NotFound, InvalidInput))
async def create_credential(
    body: CredentialCreate, principal: CurrentPrincipal, service: CredentialServiceDep
) -> Envelope[CredentialRead]:
    """A project's credential needs credential:manage on `project_id`; an organisation-wide
    one (no `project_id`) the org_admin role."""
    return Envelope(data=await service.create(principal, body))


@router.get("/{credential_id}", responses=errors(NotFound))
async def get_credential(
    credential: CredentialReader, service: CredentialServiceDep
) -> Envelope[CredentialRead]:
    return Envelope(data=service.read(credential))


@router.put("/{credential_id}", responses=errors(NotFound, Forbidden, Conflict, InvalidInput))
async def update_credential(
    credential: CredentialManager, body: CredentialUpdate, service: CredentialServiceDep
) -> Envelope[CredentialRead]:
    return Envelope(data=await service.update(credential, body))


@router.delete(
    "/{credential_id}",
    status_code=204,
    response_class=Response,
    responses=errors(NotFound, Forbidden, Conflict),
)
async def delete_credential(credential: CredentialManager, service: CredentialServiceDep) -> None:
    await service.delete(credential)

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query, Response

from budapp.core.auth import CurrentPrincipal
from budapp.core.envelope import Envelope, PageEnvelope
from budapp.core.errors import Conflict, Forbidden, InvalidInput, NotFound, Unauthorized
from budapp.core.http import errors
from budapp.credentials.dependencies import CredentialServiceDep
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
    """Secrets are never returned: only masked, as `secrets`."""
    return (await service.page(filters, by=principal)).envelope()


@router.post("", status_code=201, responses=errors(Forbidden, Conflict, NotFound, InvalidInput))
async def create_credential(
    body: CredentialCreate, principal: CurrentPrincipal, service: CredentialServiceDep
) -> Envelope[CredentialRead]:
    return Envelope(data=await service.create(body, by=principal))


@router.get("/{credential_id}", responses=errors(NotFound))
async def get_credential(
    credential_id: uuid.UUID, principal: CurrentPrincipal, service: CredentialServiceDep
) -> Envelope[CredentialRead]:
    return Envelope(data=await service.read(credential_id, by=principal))


@router.put("/{credential_id}", responses=errors(NotFound, Forbidden, Conflict, InvalidInput))
async def update_credential(
    credential_id: uuid.UUID,
    body: CredentialUpdate,
    principal: CurrentPrincipal,
    service: CredentialServiceDep,
) -> Envelope[CredentialRead]:
    return Envelope(data=await service.update(credential_id, body, by=principal))


@router.delete(
    "/{credential_id}",
    status_code=204,
    response_class=Response,
    responses=errors(NotFound, Forbidden, Conflict),
)
async def delete_credential(
    credential_id: uuid.UUID, principal: CurrentPrincipal, service: CredentialServiceDep
) -> None:
    await service.delete(credential_id, by=principal)

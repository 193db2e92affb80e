from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query, Response

from budapp.api_keys.dependencies import ApiKeyServiceDep, CurrentApiKey, KeysManager, KeysViewer
from budapp.api_keys.schemas import (
    ApiKeyCreate,
    ApiKeyCreated,
    ApiKeyFilter,
    ApiKeyIdentityRead,
    ApiKeyRead,
)
from budapp.core.envelope import Envelope, PageEnvelope
from budapp.core.errors import Forbidden, NotFound, Unauthorized
from budapp.core.http import errors

router = APIRouter(tags=["api keys"], responses=errors(Unauthorized))
_KEYS = "/projects/{project_id}/api-keys"


@router.post(_KEYS, status_code=201, responses=errors(NotFound, Forbidden))
async def create_api_key(
    body: ApiKeyCreate, access: KeysManager, service: ApiKeyServiceDep
) -> Envelope[ApiKeyCreated]:
    """The response holds the whole key, this once; budapp stores only its hash."""
    return Envelope(data=await service.create(access, body))


@router.get(_KEYS, responses=errors(NotFound, Forbidden))
async def list_api_keys(
    access: KeysViewer, service: ApiKeyServiceDep, filters: Annotated[ApiKeyFilter, Query()]
) -> PageEnvelope[ApiKeyRead]:
    return (await service.page(access, filters)).envelope()


@router.get(_KEYS + "/{key_id}", responses=errors(NotFound, Forbidden))
async def get_api_key(
    key_id: uuid.UUID, access: KeysViewer, service: ApiKeyServiceDep
) -> Envelope[ApiKeyRead]:
    return Envelope(data=await service.get(access, key_id))


@router.delete(
    _KEYS + "/{key_id}",
    status_code=204,
    response_class=Response,
    responses=errors(NotFound, Forbidden),
)
async def revoke_api_key(key_id: uuid.UUID, access: KeysManager, service: ApiKeyServiceDep) -> None:
    """Revokes the key on every replica within moments; the record stays, marked revoked."""
    await service.revoke(access, key_id)


@router.get("/api-keys/current")
async def current_key(identity: CurrentApiKey) -> Envelope[ApiKeyIdentityRead]:
    """Who the presented API key acts for: authenticate with the key, not a user token."""
    return Envelope(
        data=ApiKeyIdentityRead(
            key_id=identity.key_id,
            prefix=identity.prefix,
            project_id=identity.project_id,
            organization_id=identity.organization_id,
            expires_at=identity.expires_at,
        )
    )

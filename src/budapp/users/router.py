from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query

from budapp.core.auth import CurrentPrincipal, OrgAdmin, ProjectAdmin
from budapp.core.envelope import Envelope, PageEnvelope
from budapp.core.errors import Conflict, Forbidden, InvalidInput, NotFound, Unauthorized
from budapp.core.http import errors
from budapp.users.dependencies import UserServiceDep
from budapp.users.schemas import RoleUpdate, UserCreate, UserFilter, UserRead, UserRoles, UserUpdate

router = APIRouter(prefix="/users", tags=["users"], responses=errors(Unauthorized))


@router.get("", responses=errors(Forbidden))
async def list_users(
    principal: ProjectAdmin, service: UserServiceDep, filters: Annotated[UserFilter, Query()]
) -> PageEnvelope[UserRead]:
    return (await service.page(principal.scope, filters)).envelope()


@router.post("", status_code=201, responses=errors(Forbidden, Conflict, NotFound, InvalidInput))
async def create_user(
    body: UserCreate, principal: OrgAdmin, service: UserServiceDep
) -> Envelope[UserRead]:
    return Envelope(data=await service.create(body, by=principal))


@router.get("/{user_id}", responses=errors(NotFound, Forbidden))
async def get_user(
    user_id: uuid.UUID, principal: CurrentPrincipal, service: UserServiceDep
) -> Envelope[UserRead]:
    return Envelope(data=await service.read(user_id, by=principal))


@router.put("/{user_id}", responses=errors(NotFound, Forbidden, Conflict, InvalidInput))
async def update_user(
    user_id: uuid.UUID, body: UserUpdate, principal: CurrentPrincipal, service: UserServiceDep
) -> Envelope[UserRead]:
    return Envelope(data=await service.update(user_id, body, by=principal))


@router.delete("/{user_id}", status_code=204, responses=errors(NotFound, Forbidden, Conflict))
async def delete_user(user_id: uuid.UUID, principal: OrgAdmin, service: UserServiceDep) -> None:
    await service.delete(user_id, by=principal)


@router.get("/{user_id}/roles", responses=errors(NotFound, Forbidden))
async def get_user_roles(
    user_id: uuid.UUID, principal: CurrentPrincipal, service: UserServiceDep
) -> Envelope[UserRoles]:
    return Envelope(data=await service.roles(user_id, by=principal))


@router.put("/{user_id}/roles", responses=errors(NotFound, Forbidden, Conflict))
async def set_user_roles(
    user_id: uuid.UUID, body: RoleUpdate, principal: OrgAdmin, service: UserServiceDep
) -> Envelope[UserRoles]:
    return Envelope(data=await service.set_role(user_id, body, by=principal))

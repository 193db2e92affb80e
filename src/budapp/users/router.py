from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from budapp.core.auth import OrgAdmin, ProjectAdmin
from budapp.core.envelope import Envelope, PageEnvelope
from budapp.core.errors import Conflict, Forbidden, InvalidInput, NotFound, Unauthorized
from budapp.core.http import errors
from budapp.users.dependencies import UserEditor, UserManager, UserReader, UserServiceDep
from budapp.users.schemas import RoleUpdate, UserCreate, UserFilter, UserRead, UserRoles, UserUpdate
from budapp.users.service import UserService

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
    return Envelope(data=await service.create(principal, body))


@router.get("/{user_id}", responses=errors(NotFound, Forbidden))
async def get_user(user: UserReader) -> Envelope[UserRead]:
    return Envelope(data=UserService.read(user))


@router.put("/{user_id}", responses=errors(NotFound, Forbidden, Conflict, InvalidInput))
async def update_user(
    user: UserEditor, body: UserUpdate, service: UserServiceDep
) -> Envelope[UserRead]:
    return Envelope(data=await service.update(user, body))


@router.delete("/{user_id}", status_code=204, responses=errors(NotFound, Forbidden, Conflict))
async def delete_user(user: UserManager, service: UserServiceDep) -> None:
    await service.delete(user)


@router.get("/{user_id}/roles", responses=errors(NotFound, Forbidden))
async def get_user_roles(user: UserReader) -> Envelope[UserRoles]:
    return Envelope(data=UserService.roles(user))


@router.put("/{user_id}/roles", responses=errors(NotFound, Forbidden, Conflict))
async def set_user_roles(
    user: UserManager, body: RoleUpdate, service: UserServiceDep
) -> Envelope[UserRoles]:
    return Envelope(data=await service.set_role(user, body))

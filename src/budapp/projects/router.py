from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query

from budapp.core.auth import CurrentPrincipal, ProjectAdmin
from budapp.core.envelope import Envelope, PageEnvelope
from budapp.core.errors import Conflict, Forbidden, NotFound, Unauthorized
from budapp.core.http import errors
from budapp.projects.dependencies import (
    MembersManager,
    MembersViewer,
    ProjectManager,
    ProjectServiceDep,
    ProjectViewer,
)
from budapp.projects.schemas import (
    MemberAdd,
    MemberRead,
    MemberUpdate,
    ProjectCreate,
    ProjectFilter,
    ProjectRead,
    ProjectUpdate,
)

router = APIRouter(prefix="/projects", tags=["projects"], responses=errors(Unauthorized))


@router.get("")
async def list_projects(
    principal: CurrentPrincipal,
    service: ProjectServiceDep,
    filters: Annotated[ProjectFilter, Query()],
) -> PageEnvelope[ProjectRead]:
    """Org admins see every project of their organization; others the projects they belong to."""
    return (await service.page(principal, filters)).envelope()


@router.post("", status_code=201, responses=errors(Forbidden, Conflict, NotFound))
async def create_project(
    body: ProjectCreate, principal: ProjectAdmin, service: ProjectServiceDep
) -> Envelope[ProjectRead]:
    return Envelope(data=await service.create(principal, body))


@router.get("/{project_id}", responses=errors(NotFound))
async def get_project(access: ProjectViewer) -> Envelope[ProjectRead]:
    return Envelope(data=ProjectRead.model_validate(access.project))


@router.put("/{project_id}", responses=errors(NotFound, Forbidden, Conflict))
async def update_project(
    body: ProjectUpdate, access: ProjectManager, service: ProjectServiceDep
) -> Envelope[ProjectRead]:
    return Envelope(data=await service.update(access, body))


@router.delete("/{project_id}", status_code=204, responses=errors(NotFound, Forbidden, Conflict))
async def delete_project(access: ProjectManager, service: ProjectServiceDep) -> None:
    await service.delete(access)


@router.get("/{project_id}/members", responses=errors(NotFound, Forbidden))
async def list_members(
    access: MembersViewer, service: ProjectServiceDep
) -> Envelope[list[MemberRead]]:
    members = await service.members(access)
    return Envelope(data=members, meta={"total": len(members)})


@router.post(
    "/{project_id}/members", status_code=201, responses=errors(NotFound, Forbidden, Conflict)
)
async def add_member(
    body: MemberAdd, access: MembersManager, service: ProjectServiceDep
) -> Envelope[MemberRead]:
    return Envelope(data=await service.add_member(access, body))


@router.put("/{project_id}/members/{user_id}", responses=errors(NotFound, Forbidden, Conflict))
async def update_member(
    user_id: uuid.UUID, body: MemberUpdate, access: MembersManager, service: ProjectServiceDep
) -> Envelope[MemberRead]:
    return Envelope(data=await service.update_member(access, user_id, body))


@router.delete(
    "/{project_id}/members/{user_id}",
    status_code=204,
    responses=errors(NotFound, Forbidden, Conflict),
)
async def remove_member(
    user_id: uuid.UUID, access: MembersManager, service: ProjectServiceDep
) -> None:
    await service.remove_member(access, user_id)

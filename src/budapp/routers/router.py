from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query, Response

from budapp.core.envelope import Envelope, PageEnvelope
from budapp.core.errors import Conflict, Forbidden, NotFound, Unauthorized
from budapp.core.http import errors
from budapp.routers.dependencies import RouterServiceDep, RoutersManager, RoutersViewer
from budapp.routers.schemas import (
    RateLimitsRead,
    RateLimitsUpdate,
    RouterCreate,
    RouterFilter,
    RouterRead,
    RouterUpdate,
)

router = APIRouter(tags=["routers"], responses=errors(Unauthorized, NotFound, Forbidden))
_ROUTERS = "/projects/{project_id}/routers"


@router.post(_ROUTERS, status_code=201, responses=errors(Conflict))
async def create_router(
    body: RouterCreate, access: RoutersManager, service: RouterServiceDep
) -> Envelope[RouterRead]:
    """Gateway clients call the router by sending its name as `model`."""
    return Envelope(data=await service.create(access, body))


@router.get(_ROUTERS)
async def list_routers(
    access: RoutersViewer, service: RouterServiceDep, filters: Annotated[RouterFilter, Query()]
) -> PageEnvelope[RouterRead]:
    return (await service.page(access, filters)).envelope()


@router.get(_ROUTERS + "/{router_id}")
async def get_router(
    router_id: uuid.UUID, access: RoutersViewer, service: RouterServiceDep
) -> Envelope[RouterRead]:
    return Envelope(data=await service.get(access, router_id))


@router.patch(_ROUTERS + "/{router_id}", responses=errors(Conflict))
async def update_router(
    router_id: uuid.UUID, body: RouterUpdate, access: RoutersManager, service: RouterServiceDep
) -> Envelope[RouterRead]:
    """Takes effect on every replica's gateway within moments."""
    return Envelope(data=await service.update(access, router_id, body))


@router.delete(_ROUTERS + "/{router_id}", status_code=204, response_class=Response)
async def delete_router(
    router_id: uuid.UUID, access: RoutersManager, service: RouterServiceDep
) -> None:
    await service.delete(access, router_id)


@router.get("/projects/{project_id}/rate-limits")
async def get_rate_limits(
    access: RoutersViewer, service: RouterServiceDep
) -> Envelope[RateLimitsRead]:
    return Envelope(data=await service.limits(access))


@router.put("/projects/{project_id}/rate-limits")
async def set_rate_limits(
    body: RateLimitsUpdate, access: RoutersManager, service: RouterServiceDep
) -> Envelope[RateLimitsRead]:
    """RPM/TPM for the whole project and for each of its API keys; null removes a limit."""
    return Envelope(data=await service.set_limits(access, body))

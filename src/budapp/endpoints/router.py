from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query, Response
from fastapi.responses import JSONResponse

from budapp.core.auth import CurrentPrincipal
from budapp.core.envelope import Envelope, PageEnvelope
from budapp.core.errors import Conflict, Forbidden, InvalidInput, NotFound, Unauthorized
from budapp.core.http import errors
from budapp.endpoints.dependencies import EndpointServiceDep
from budapp.endpoints.schemas import (
    EndpointCreate,
    EndpointFilter,
    EndpointMetricsQuery,
    EndpointMetricsRead,
    EndpointRead,
    EndpointStatusRead,
    EndpointUpdate,
    LogsRead,
    PlanRead,
    PlanRequest,
    ScaleRequest,
)

router = APIRouter(prefix="/endpoints", tags=["endpoints"], responses=errors(Unauthorized))
_WRITE = errors(NotFound, Forbidden, Conflict, InvalidInput)


@router.get("")
async def list_endpoints(
    principal: CurrentPrincipal,
    service: EndpointServiceDep,
    filters: Annotated[EndpointFilter, Query()],
) -> PageEnvelope[EndpointRead]:
    """The endpoints of the projects where the caller may view endpoints (all, for org admins)."""
    return (await service.page(filters, by=principal)).envelope()


@router.post("", status_code=201, responses=_WRITE)
async def create_endpoint(
    body: EndpointCreate, principal: CurrentPrincipal, service: EndpointServiceDep
) -> Envelope[EndpointRead]:
    """Creates the endpoint (PENDING); `POST /endpoints/{id}/deploy` starts it."""
    return Envelope(data=await service.create(body, by=principal))


@router.post("/plan", responses=errors(NotFound, Forbidden, InvalidInput))
async def plan_endpoint(
    body: PlanRequest, principal: CurrentPrincipal, service: EndpointServiceDep
) -> Envelope[PlanRead]:
    """A dry run: the memory a replica needs (weights, KV cache, runtime) and where the
    replicas would go, or why no cluster can take them."""
    return Envelope(data=await service.plan(body, by=principal))


@router.get("/{endpoint_id}", responses=errors(NotFound))
async def get_endpoint(
    endpoint_id: uuid.UUID, principal: CurrentPrincipal, service: EndpointServiceDep
) -> Envelope[EndpointRead]:
    return Envelope(data=await service.read(endpoint_id, by=principal))


@router.put("/{endpoint_id}", responses=_WRITE)
async def update_endpoint(
    endpoint_id: uuid.UUID,
    body: EndpointUpdate,
    principal: CurrentPrincipal,
    service: EndpointServiceDep,
) -> Envelope[EndpointRead]:
    return Envelope(data=await service.update(endpoint_id, body, by=principal))


@router.delete(
    "/{endpoint_id}",
    status_code=204,
    response_class=Response,
    responses={
        202: {"description": "Deleting: the delete workflow stops the replicas first"},
        **_WRITE,
    },
)
async def delete_endpoint(
    endpoint_id: uuid.UUID, principal: CurrentPrincipal, service: EndpointServiceDep
) -> Response:
    """An endpoint that runs nowhere is deleted at once (204); a deployed one is stopped and
    deleted by a workflow (202, with its id)."""
    workflow_id = await service.delete(endpoint_id, by=principal)
    if workflow_id is None:
        return Response(status_code=204)
    return JSONResponse({"data": {"workflow_id": str(workflow_id)}, "meta": {}}, status_code=202)


@router.post("/{endpoint_id}/deploy", status_code=202, responses=_WRITE)
async def deploy_endpoint(
    endpoint_id: uuid.UUID, principal: CurrentPrincipal, service: EndpointServiceDep
) -> Envelope[EndpointStatusRead]:
    """Plans the placement, then starts the deploy workflow (`workflow_id`; follow it at
    `GET /workflows/{id}` or on the WebSocket)."""
    return Envelope(data=await service.deploy(endpoint_id, by=principal))


@router.post("/{endpoint_id}/undeploy", status_code=202, responses=_WRITE)
async def undeploy_endpoint(
    endpoint_id: uuid.UUID, principal: CurrentPrincipal, service: EndpointServiceDep
) -> Envelope[EndpointStatusRead]:
    return Envelope(data=await service.undeploy(endpoint_id, by=principal))


@router.post("/{endpoint_id}/scale", status_code=202, responses=_WRITE)
async def scale_endpoint(
    endpoint_id: uuid.UUID,
    body: ScaleRequest,
    principal: CurrentPrincipal,
    service: EndpointServiceDep,
) -> Envelope[EndpointStatusRead]:
    """A running endpoint is re-planned and scaled by a workflow; one not deployed only takes
    the new count for its next deploy."""
    return Envelope(data=await service.scale(endpoint_id, body.replicas, by=principal))


@router.get("/{endpoint_id}/status", responses=errors(NotFound))
async def endpoint_status(
    endpoint_id: uuid.UUID, principal: CurrentPrincipal, service: EndpointServiceDep
) -> Envelope[EndpointStatusRead]:
    return Envelope(data=await service.status(endpoint_id, by=principal))


@router.get("/{endpoint_id}/metrics", responses=errors(NotFound, Forbidden))
async def endpoint_metrics(
    endpoint_id: uuid.UUID,
    principal: CurrentPrincipal,
    service: EndpointServiceDep,
    query: Annotated[EndpointMetricsQuery, Query()],
) -> Envelope[EndpointMetricsRead]:
    """The calls the gateway sent to this endpoint in a window (the last 24 hours by default):
    totals, latency and time-to-first-token percentiles, and a series per hour or day. Read
    from the per-call usage rows, so only as far back as BUDAPP_USAGE_RETENTION_DAYS."""
    return Envelope(data=await service.metrics(endpoint_id, query, by=principal))


@router.get("/{endpoint_id}/logs", responses=errors(NotFound))
async def endpoint_logs(
    endpoint_id: uuid.UUID,
    principal: CurrentPrincipal,
    service: EndpointServiceDep,
    replica: Annotated[int, Query(ge=0, le=63)] = 0,
    lines: Annotated[int, Query(ge=1, le=5000)] = 200,
) -> Envelope[LogsRead]:
    """The last lines a replica's runtime wrote (stdout and stderr)."""
    return Envelope(
        data=await service.logs(endpoint_id, by=principal, replica=replica, lines=lines)
    )

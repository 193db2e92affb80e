from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response
from fastapi.responses import JSONResponse

from budapp.catalog.dependencies import ModelsViewer
from budapp.core.envelope import Envelope, PageEnvelope
from budapp.core.errors import Conflict, Forbidden, InvalidInput, NotFound, Unauthorized
from budapp.core.http import errors
from budapp.endpoints.dependencies import (
    EndpointCreation,
    EndpointManager,
    EndpointReader,
    EndpointServiceDep,
    EndpointsViewer,
)
from budapp.endpoints.schemas import (
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
from budapp.endpoints.service import EndpointService

router = APIRouter(prefix="/endpoints", tags=["endpoints"], responses=errors(Unauthorized))
_WRITE = errors(NotFound, Forbidden, Conflict, InvalidInput)


@router.get("")
async def list_endpoints(
    principal: EndpointsViewer,
    service: EndpointServiceDep,
    filters: Annotated[EndpointFilter, Query()],
) -> PageEnvelope[EndpointRead]:
    """The endpoints of the projects where the caller may view endpoints (all, for org admins)."""
    return (await service.page(principal, filters)).envelope()


@router.post("", status_code=201, responses=_WRITE)
async def create_endpoint(
    new: EndpointCreation, service: EndpointServiceDep
) -> Envelope[EndpointRead]:
    """Creates the endpoint (PENDING) in `project_id`, where the caller holds
    endpoint:manage; `POST /endpoints/{id}/deploy` starts it."""
    return Envelope(data=await service.create(new.project, new.body))


@router.post("/plan", responses=errors(NotFound, Forbidden, InvalidInput))
async def plan_endpoint(
    body: PlanRequest, principal: ModelsViewer, service: EndpointServiceDep
) -> Envelope[PlanRead]:
    """A dry run: the memory a replica needs (weights, KV cache, runtime) and where the
    replicas would go, or why no cluster can take them."""
    return Envelope(data=await service.plan(principal, body))


@router.get("/{endpoint_id}", responses=errors(NotFound))
async def get_endpoint(endpoint: EndpointReader) -> Envelope[EndpointRead]:
    return Envelope(data=EndpointService.read(endpoint))


@router.put("/{endpoint_id}", responses=_WRITE)
async def update_endpoint(
    endpoint: EndpointManager, body: EndpointUpdate, service: EndpointServiceDep
) -> Envelope[EndpointRead]:
    return Envelope(data=await service.update(endpoint, body))


@router.delete(
    "/{endpoint_id}",
    status_code=204,
    response_class=Response,
    responses={
        202: {"description": "Deleting: the delete workflow stops the replicas first"},
        **_WRITE,
    },
)
async def delete_endpoint(endpoint: EndpointManager, service: EndpointServiceDep) -> Response:
    """An endpoint that runs nowhere is deleted at once (204); a deployed one is stopped and
    deleted by a workflow (202, with its id)."""
    workflow_id = await service.delete(endpoint)
    if workflow_id is None:
        return Response(status_code=204)
    return JSONResponse({"data": {"workflow_id": str(workflow_id)}, "meta": {}}, status_code=202)


@router.post("/{endpoint_id}/deploy", status_code=202, responses=_WRITE)
async def deploy_endpoint(
    endpoint: EndpointManager, service: EndpointServiceDep
) -> Envelope[EndpointStatusRead]:
    """Plans the placement, then starts the deploy workflow (`workflow_id`; follow it at
    `GET /workflows/{id}` or on the WebSocket)."""
    return Envelope(data=await service.deploy(endpoint))


@router.post("/{endpoint_id}/undeploy", status_code=202, responses=_WRITE)
async def undeploy_endpoint(
    endpoint: EndpointManager, service: EndpointServiceDep
) -> Envelope[EndpointStatusRead]:
    return Envelope(data=await service.undeploy(endpoint))


@router.post("/{endpoint_id}/scale", status_code=202, responses=_WRITE)
async def scale_endpoint(
    endpoint: EndpointManager, body: ScaleRequest, service: EndpointServiceDep
) -> Envelope[EndpointStatusRead]:
    """A running endpoint is re-planned and scaled by a workflow; one not deployed only takes
    the new count for its next deploy."""
    return Envelope(data=await service.scale(endpoint, body.replicas))


@router.get("/{endpoint_id}/status", responses=errors(NotFound))
async def endpoint_status(
    endpoint: EndpointReader, service: EndpointServiceDep
) -> Envelope[EndpointStatusRead]:
    return Envelope(data=await service.status(endpoint))


@router.get("/{endpoint_id}/metrics", responses=errors(NotFound, Forbidden))
async def endpoint_metrics(
    endpoint: EndpointReader,
    service: EndpointServiceDep,
    query: Annotated[EndpointMetricsQuery, Query()],
) -> Envelope[EndpointMetricsRead]:
    """The calls the gateway sent to this endpoint in a window (the last 24 hours by default):
    totals, latency and time-to-first-token percentiles, and a series per hour or day. Read
    from the per-call usage rows, so only as far back as BUDAPP_USAGE_RETENTION_DAYS."""
    return Envelope(data=await service.metrics(endpoint, query))


@router.get("/{endpoint_id}/logs", responses=errors(NotFound))
async def endpoint_logs(
    endpoint: EndpointReader,
    service: EndpointServiceDep,
    replica: Annotated[int, Query(ge=0, le=63)] = 0,
    lines: Annotated[int, Query(ge=1, le=5000)] = 200,
) -> Envelope[LogsRead]:
    """The last lines a replica's runtime wrote (stdout and stderr)."""
    return Envelope(data=await service.logs(endpoint, replica=replica, lines=lines))

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response

from budapp.clusters.dependencies import ClusterManager, ClusterReader, ClusterServiceDep
from budapp.clusters.schemas import ClusterCreate, ClusterFilter, ClusterRead, ClusterStatusRead
from budapp.clusters.service import ClusterService
from budapp.core.auth import CurrentPrincipal, OrgAdmin
from budapp.core.envelope import Envelope, PageEnvelope
from budapp.core.errors import (
    Conflict,
    Forbidden,
    InvalidInput,
    NotFound,
    ServiceUnavailable,
    Unauthorized,
)
from budapp.core.http import errors

router = APIRouter(prefix="/clusters", tags=["clusters"], responses=errors(Unauthorized))


@router.get("")
async def list_clusters(
    principal: CurrentPrincipal,
    service: ClusterServiceDep,
    filters: Annotated[ClusterFilter, Query()],
) -> PageEnvelope[ClusterRead]:
    return (await service.page(principal, filters)).envelope()


@router.post("", status_code=201, responses=errors(Forbidden, Conflict, NotFound, InvalidInput))
async def register_cluster(
    body: ClusterCreate, principal: OrgAdmin, service: ClusterServiceDep
) -> Envelope[ClusterRead]:
    """Registers the cluster in status ONBOARDING; `POST /clusters/{id}/onboard` reaches it.
    Tokens are stored encrypted and never returned."""
    return Envelope(data=await service.register(principal, body))


@router.get("/{cluster_id}", responses=errors(NotFound))
async def get_cluster(cluster: ClusterReader, service: ClusterServiceDep) -> Envelope[ClusterRead]:
    return Envelope(data=service.read(cluster))


@router.delete(
    "/{cluster_id}",
    status_code=204,
    response_class=Response,
    responses=errors(NotFound, Forbidden, Conflict),
)
async def delete_cluster(cluster: ClusterManager, service: ClusterServiceDep) -> None:
    await service.delete(cluster)


@router.post("/{cluster_id}/onboard", responses=errors(NotFound, Forbidden, ServiceUnavailable))
async def onboard_cluster(
    cluster: ClusterManager, service: ClusterServiceDep
) -> Envelope[ClusterRead]:
    """Reaches the cluster and records its inventory: AVAILABLE, or ERROR (503) with the
    reason in `last_error`."""
    return Envelope(data=await service.onboard(cluster))


@router.get("/{cluster_id}/status", responses=errors(NotFound))
async def cluster_status(cluster: ClusterReader) -> Envelope[ClusterStatusRead]:
    """The recorded status and free capacity, as of the last onboard or sync."""
    return Envelope(data=ClusterService.status(cluster))


@router.post("/{cluster_id}/sync", responses=errors(NotFound, Forbidden, ServiceUnavailable))
async def sync_cluster(
    cluster: ClusterManager, service: ClusterServiceDep
) -> Envelope[ClusterRead]:
    """Refreshes the inventory; an unreachable cluster becomes NOT_AVAILABLE (503)."""
    return Envelope(data=await service.sync(cluster))

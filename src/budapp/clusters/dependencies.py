from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import Depends, Request

from budapp.clusters.models import Cluster
from budapp.clusters.service import ClusterService
from budapp.core.auth import CurrentPrincipal, OrgAdmin
from budapp.core.components import CLUSTER_CONNECTOR, components
from budapp.core.deps import SessionDep
from budapp.organizations.dependencies import OrganizationServiceDep


async def _service(
    request: Request, session: SessionDep, organizations: OrganizationServiceDep
) -> ClusterService:
    state = components(request)
    return ClusterService(
        session, state.keyring, state[CLUSTER_CONNECTOR], organizations, state.references
    )


ClusterServiceDep = Annotated[ClusterService, Depends(_service)]


async def _cluster(
    cluster_id: uuid.UUID, principal: CurrentPrincipal, service: ClusterServiceDep
) -> Cluster:
    return await service.get(principal.scope, cluster_id)


async def _managed_cluster(
    cluster_id: uuid.UUID, principal: OrgAdmin, service: ClusterServiceDep
) -> Cluster:
    return await service.get(principal.scope, cluster_id)


# Every user of an organisation sees its clusters (deployments are placed on them); org
# admins register, onboard, sync and delete them.
ClusterReader = Annotated[Cluster, Depends(_cluster)]
ClusterManager = Annotated[Cluster, Depends(_managed_cluster)]

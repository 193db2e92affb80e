from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from budapp.clusters.service import ClusterService
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

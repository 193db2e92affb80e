from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from budapp.clusters.service import ClusterService
from budapp.core.deps import SessionDep
from budapp.organizations.dependencies import OrganizationServiceDep


async def _service(
    request: Request, session: SessionDep, organizations: OrganizationServiceDep
) -> ClusterService:
    state = request.app.state
    return ClusterService(
        session, state.vault.keyring, state.cluster_connector, organizations, state.references
    )


ClusterServiceDep = Annotated[ClusterService, Depends(_service)]

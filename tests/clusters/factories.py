from __future__ import annotations

import uuid

from fastapi import FastAPI

from budapp.clusters.models import Cluster, ClusterProviderKind
from budapp.core.components import components


async def create_cluster(
    app: FastAPI, organization_id: uuid.UUID, name: str, *, provider: str = "local"
) -> uuid.UUID:
    """A cluster row as registration leaves it (ONBOARDING); a `local` one can be onboarded
    and synced without any network."""
    kind = ClusterProviderKind(provider)
    config = {"base_url": "http://127.0.0.1:9"} if kind is ClusterProviderKind.BUDCLUSTER else {}
    async with components(app).session_factory() as session:
        cluster = Cluster(organization_id=organization_id, name=name, provider=kind, config=config)
        session.add(cluster)
        await session.commit()
        return cluster.id

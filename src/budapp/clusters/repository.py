from __future__ import annotations

import uuid

from sqlalchemy import Select, func, select

from budapp.clusters.models import Cluster, ClusterProviderKind, ClusterStatus
from budapp.clusters.schemas import ClusterFilter
from budapp.core.auth import TenantScope
from budapp.core.repository import (
    Repository,
    equal,
    fetch_page,
    name_taken,
    narrowed,
    search,
)

_FILTERS = (
    equal("provider", Cluster.provider),
    equal("status", Cluster.status),
    search("name", Cluster.name),
    equal("organization_id", Cluster.organization_id),
)


class ClusterRepository(Repository):
    def _scoped(self, scope: TenantScope) -> Select[Cluster]:
        return select(Cluster).where(
            Cluster.deleted_at.is_(None), scope.where(Cluster.organization_id)
        )

    async def get(self, scope: TenantScope, cluster_id: uuid.UUID) -> Cluster | None:
        return await self.session.scalar(self._scoped(scope).where(Cluster.id == cluster_id))

    async def available(self, scope: TenantScope) -> list[Cluster]:
        statement = self._scoped(scope).where(Cluster.status == ClusterStatus.AVAILABLE)
        return list((await self.session.scalars(statement.order_by(Cluster.created_at))).all())

    async def page(self, scope: TenantScope, filters: ClusterFilter) -> tuple[list[Cluster], int]:
        statement = narrowed(self._scoped(scope), filters, _FILTERS)
        statement = statement.order_by(Cluster.name, Cluster.id)
        return await fetch_page(self.session, statement, filters)

    async def name_taken(self, organization_id: uuid.UUID, name: str) -> bool:
        return await name_taken(self.session, Cluster, name, organization_id=organization_id)

    async def local_registered(self, *, including_deleted: bool) -> bool:
        statement = select(func.count()).where(Cluster.provider == ClusterProviderKind.LOCAL)
        if not including_deleted:
            statement = statement.where(Cluster.deleted_at.is_(None))
        return bool(await self.session.scalar(statement))

    async def onboarded_ids(self, provider: ClusterProviderKind) -> list[uuid.UUID]:
        statement = select(Cluster.id).where(
            Cluster.deleted_at.is_(None),
            Cluster.provider == provider,
            Cluster.status.in_((ClusterStatus.AVAILABLE, ClusterStatus.NOT_AVAILABLE)),
        )
        return list((await self.session.scalars(statement)).all())

    async def local_ids(self) -> list[uuid.UUID]:
        statement = select(Cluster.id).where(Cluster.provider == ClusterProviderKind.LOCAL)
        return list((await self.session.scalars(statement)).all())

    async def count_in_organization(self, organization_id: uuid.UUID) -> int:
        statement = select(func.count()).where(
            Cluster.deleted_at.is_(None), Cluster.organization_id == organization_id
        )
        return int(await self.session.scalar(statement) or 0)

    async def key_ids_in_use(self) -> list[str]:
        statement = select(Cluster.key_id).where(Cluster.ciphertext.is_not(None)).distinct()
        return [key_id for key_id in (await self.session.scalars(statement)).all() if key_id]

    async def sealed_with_other_keys(self, primary: str) -> list[Cluster]:
        # Clusters are few (tens): one batch, unlike credentials.
        statement = select(Cluster).where(
            Cluster.ciphertext.is_not(None), Cluster.key_id != primary
        )
        return list((await self.session.scalars(statement.with_for_update())).all())

    async def count_using_credential(self, credential_id: uuid.UUID) -> int:
        statement = select(func.count()).where(
            Cluster.deleted_at.is_(None),
            Cluster.provider == ClusterProviderKind.KUBERNETES,
            Cluster.config["credential_id"].as_string() == str(credential_id),
        )
        return int(await self.session.scalar(statement) or 0)

from __future__ import annotations

import uuid
from collections.abc import Iterable
from typing import Any

from sqlalchemy import ColumnElement, func, select, update

from budapp.core.auth import TenantScope
from budapp.core.db import utcnow
from budapp.core.repository import Repository, equal, fetch_page, narrowed, search
from budapp.endpoints.models import Endpoint, EndpointReplica, EndpointStatus, ReplicaState
from budapp.endpoints.schemas import EndpointFilter

_SERVING = (EndpointStatus.RUNNING, EndpointStatus.DEPLOYING)


_FILTERS = (
    equal("project_id", Endpoint.project_id),
    equal("status", Endpoint.status),
    equal("model_id", Endpoint.model_id),
    equal("cluster_id", Endpoint.cluster_id),
    search("name", Endpoint.name),
)


class EndpointRepository(Repository):
    async def get(self, scope: TenantScope, endpoint_id: uuid.UUID) -> Endpoint | None:
        statement = select(Endpoint).where(
            Endpoint.id == endpoint_id,
            Endpoint.deleted_at.is_(None),
            scope.where(Endpoint.organization_id),
        )
        return (await self.session.scalars(statement)).first()

    async def page(
        self, scope: TenantScope, filters: EndpointFilter, *, projects: list[uuid.UUID] | None
    ) -> tuple[list[Endpoint], int]:
        statement = select(Endpoint).where(
            Endpoint.deleted_at.is_(None), scope.where(Endpoint.organization_id)
        )
        if projects is not None:
            statement = statement.where(Endpoint.project_id.in_(projects))
        statement = narrowed(statement, filters, _FILTERS).order_by(
            Endpoint.created_at.desc(), Endpoint.id.desc()
        )
        return await fetch_page(self.session, statement, filters)

    async def name_taken(
        self, project_id: uuid.UUID, name: str, *, excluding: uuid.UUID | None = None
    ) -> bool:
        statement = select(Endpoint.id).where(
            Endpoint.project_id == project_id,
            func.lower(Endpoint.name) == name.lower(),
            Endpoint.deleted_at.is_(None),
        )
        if excluding is not None:
            statement = statement.where(Endpoint.id != excluding)
        return (await self.session.scalar(statement.limit(1))) is not None

    async def move(
        self,
        endpoint: Endpoint,
        to: EndpointStatus,
        allowed_from: Iterable[EndpointStatus],
        message: str | None,
    ) -> bool:
        """Moves the status only if it still is one of `allowed_from` (one conditional UPDATE,
        so two concurrent requests cannot both win)."""
        await self.session.flush()  # pending changes first: the refresh below reloads the row
        now = utcnow()
        statement = (
            update(Endpoint)
            .where(Endpoint.id == endpoint.id, Endpoint.status.in_(list(allowed_from)))
            .values(status=to, status_message=message, updated_at=now)
            .execution_options(synchronize_session=False)
        )
        result = await self.session.execute(statement)
        moved = bool(getattr(result, "rowcount", 0) == 1)
        if moved:
            await self.session.refresh(endpoint)
        return moved

    async def replicas(self, endpoint_id: uuid.UUID) -> list[EndpointReplica]:
        statement = (
            select(EndpointReplica)
            .where(EndpointReplica.endpoint_id == endpoint_id)
            .order_by(EndpointReplica.index)
        )
        return list((await self.session.scalars(statement)).all())

    async def serving_specs(self, cluster_ids: list[uuid.UUID]) -> list[dict[str, Any]]:
        """The runtime specs of replicas on these clusters of endpoints that should serve."""
        statement = (
            select(EndpointReplica.spec)
            .join(Endpoint, Endpoint.id == EndpointReplica.endpoint_id)
            .where(
                Endpoint.deleted_at.is_(None),
                Endpoint.status.in_(_SERVING),
                EndpointReplica.index < Endpoint.replicas,
                EndpointReplica.state != ReplicaState.STOPPED,
                EndpointReplica.cluster_id.in_(cluster_ids),
            )
        )
        return [spec for spec in (await self.session.scalars(statement)).all() if spec]

    async def running_replica_urls(
        self, endpoint_id: uuid.UUID | None = None
    ) -> list[tuple[uuid.UUID, str, dict[str, Any] | None]]:
        """(endpoint id, URL, spec) of every running replica of running endpoints (or of one),
        in replica order: what the gateway routes to."""
        statement = (
            select(EndpointReplica.endpoint_id, EndpointReplica.url, EndpointReplica.spec)
            .join(Endpoint, Endpoint.id == EndpointReplica.endpoint_id)
            .where(
                Endpoint.deleted_at.is_(None),
                Endpoint.status == EndpointStatus.RUNNING,
                EndpointReplica.state == ReplicaState.RUNNING,
                EndpointReplica.url.is_not(None),
                EndpointReplica.index < Endpoint.replicas,
            )
            .order_by(EndpointReplica.endpoint_id, EndpointReplica.index)
        )
        if endpoint_id is not None:
            statement = statement.where(Endpoint.id == endpoint_id)
        rows = (await self.session.execute(statement)).all()
        return [(row[0], row[1], row[2]) for row in rows]

    async def replicas_on_cluster(self, cluster_id: uuid.UUID) -> list[tuple[Any, ...]]:
        """(runtime id, spec, index, endpoint id, status, desired replicas, deleted at) of every
        replica placed on the cluster, deleted endpoints' too."""
        statement = (
            select(
                EndpointReplica.runtime_id,
                EndpointReplica.spec,
                EndpointReplica.index,
                Endpoint.id,
                Endpoint.status,
                Endpoint.replicas,
                Endpoint.deleted_at,
            )
            .join(Endpoint, Endpoint.id == EndpointReplica.endpoint_id)
            .where(EndpointReplica.cluster_id == cluster_id)
        )
        return [tuple(row) for row in (await self.session.execute(statement)).all()]

    async def by_id(self, endpoint_id: uuid.UUID) -> Endpoint | None:
        """Any endpoint, deleted or not: for background work that already knows its id."""
        return await self.session.get(Endpoint, endpoint_id)

    async def replica_by_runtime(self, runtime_id: str) -> EndpointReplica | None:
        statement = select(EndpointReplica).where(EndpointReplica.runtime_id == runtime_id)
        return (await self.session.scalars(statement)).first()

    async def count_live(self, column: ColumnElement[bool]) -> int:
        statement = (
            select(func.count()).select_from(Endpoint).where(column, Endpoint.deleted_at.is_(None))
        )
        return int(await self.session.scalar(statement) or 0)

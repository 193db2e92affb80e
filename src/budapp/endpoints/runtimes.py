"""Keeps replicas and the local runtime supervisor in step: what should run after a restart
of budapp (reconciliation), and what the supervisor reports about runtimes as they crash,
restart or give up."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from budapp.adapters.clusters.base import RuntimeSpec, RuntimeState, RuntimeStatus
from budapp.clusters.service import local_cluster_ids
from budapp.core.db import session_scope
from budapp.core.logging import get_logger
from budapp.endpoints.models import EndpointStatus, ReplicaState
from budapp.endpoints.repository import EndpointRepository
from budapp.endpoints.service import move_status, publish_status
from budapp.notifications.models import Severity
from budapp.notifications.service import notify

log = get_logger("budapp.endpoints")


async def desired_local_runtimes(factory: async_sessionmaker[AsyncSession]) -> list[RuntimeSpec]:
    """The replicas on the local cluster of endpoints that should be serving."""
    async with factory() as session:
        local = await local_cluster_ids(session)
        specs = await EndpointRepository(session).serving_specs(local) if local else []
    return [RuntimeSpec.model_validate(spec) for spec in specs]


class RuntimeEvents:
    """Supervisor status listener: records each replica's state; a replica that gives up
    puts its running endpoint in ERROR and tells the endpoint's owner."""

    def __init__(self, factory: async_sessionmaker[AsyncSession]) -> None:
        self.factory = factory

    async def __call__(self, status: RuntimeStatus) -> None:
        try:
            await self._record(status)
        except Exception:
            log.warning("replica_status_not_recorded", runtime_id=status.runtime_id, exc_info=True)

    async def _record(self, status: RuntimeStatus) -> None:
        async with session_scope(self.factory) as session:
            repository = EndpointRepository(session)
            replica = await repository.replica_by_runtime(status.runtime_id)
            if replica is None:
                return
            moved = (replica.state.value, replica.url) != (status.state.value, status.url)
            replica.state = ReplicaState(status.state.value)
            replica.restarts = status.restarts
            replica.url = status.url
            replica.message = status.message[:2000] if status.message else None
            endpoint = await repository.by_id(replica.endpoint_id)
            if endpoint is None or endpoint.status is not EndpointStatus.RUNNING:
                return
            if status.state is not RuntimeState.FAILED:
                if moved:
                    # A replica restarted or came back: the gateway re-reads the addresses.
                    publish_status(session, endpoint)
                return
            message = f"replica {replica.index} failed: {status.message or 'runtime gave up'}"
            await move_status(session, endpoint, EndpointStatus.ERROR, message[:2000])
            if endpoint.created_by is not None:
                await notify(
                    session,
                    organization_id=endpoint.organization_id,
                    user_id=endpoint.created_by,
                    kind="endpoint.failed",
                    title=f"Endpoint {endpoint.name} stopped serving",
                    body=message,
                    payload={"endpoint_id": str(endpoint.id)},
                    severity=Severity.ERROR,
                )

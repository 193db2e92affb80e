"""Drift between what budapp believes and what its Kubernetes clusters run, found and repaired
at start-up and then every `BUDAPP_CLUSTER_RECONCILE_INTERVAL_SECONDS`.

- A replica of a RUNNING endpoint whose Deployment is gone (deleted by hand, a namespace
  wiped) is created again.
- A runtime budapp labelled but no longer wants (its endpoint stopped, failed or deleted; a
  deploy that failed while the API server was unreachable left it behind) is deleted.
- Endpoints with a workflow in flight are left to that workflow.

Every replica may reconcile at the same time: creating what exists and deleting what is gone
are both no-ops on the API server."""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from budapp.adapters.clusters import ClusterConnector, ProviderError, ReconcilingProvider
from budapp.adapters.clusters.base import RuntimeSpec
from budapp.clusters.service import ClusterService, kubernetes_cluster_ids
from budapp.core.auth import system_scope
from budapp.core.background import BackgroundTask
from budapp.core.components import CLUSTER_CONNECTOR, Components, Key
from budapp.core.errors import BudappError
from budapp.core.keyring import Keyring
from budapp.core.logging import get_logger
from budapp.core.references import ReferenceGuard
from budapp.endpoints.models import EndpointStatus
from budapp.endpoints.repository import EndpointRepository
from budapp.organizations.service import OrganizationService
from budapp.workflows.service import resources_in_flight

log = get_logger("budapp.endpoints.reconcile")

_FIRST_RUN_DELAY_SECONDS = 5.0


@dataclass(frozen=True)
class Drift:
    cluster_id: uuid.UUID
    runtime_id: str
    # `missing`: wanted, not there (created again); `orphan`: there, not wanted (deleted).
    kind: str
    repaired: bool
    error: str | None = None


@dataclass
class _Wanted:
    serving: dict[str, dict[str, Any]]
    # Runtimes of endpoints a workflow is busy with: neither created nor deleted here.
    busy: set[str]


class ClusterReconciler:
    def __init__(
        self,
        factory: async_sessionmaker[AsyncSession],
        keyring: Keyring,
        connector: ClusterConnector,
        references: ReferenceGuard,
        *,
        every_seconds: float,
    ) -> None:
        self.factory = factory
        self.keyring = keyring
        self.connector = connector
        self.references = references
        self.every = every_seconds
        self._task = BackgroundTask("cluster-reconciler")

    async def start(self) -> None:
        if self.every > 0:
            self._task.start(self._run)

    async def close(self) -> None:
        await self._task.stop()

    async def reconcile(self) -> list[Drift]:
        drifts: list[Drift] = []
        for cluster_id in await self._clusters():
            try:
                drifts.extend(await self._reconcile_cluster(cluster_id))
            except (ProviderError, BudappError) as exc:
                # Unreachable now: the next run tries again.
                log.warning("cluster_reconcile_failed", cluster_id=str(cluster_id), error=str(exc))
        for drift in drifts:
            log.warning(
                "cluster_drift",
                cluster_id=str(drift.cluster_id),
                runtime_id=drift.runtime_id,
                drift=drift.kind,
                repaired=drift.repaired,
                error=drift.error,
            )
        return drifts

    async def _run(self) -> None:
        await asyncio.sleep(min(self.every, _FIRST_RUN_DELAY_SECONDS))
        while True:
            try:
                await self.reconcile()
            except Exception as exc:
                log.warning("cluster_reconcile_failed", error=str(exc))
            await asyncio.sleep(self.every)

    async def _clusters(self) -> list[uuid.UUID]:
        async with self.factory() as session:
            return await kubernetes_cluster_ids(session)

    async def _reconcile_cluster(self, cluster_id: uuid.UUID) -> list[Drift]:
        async with self.factory() as session:
            clusters = ClusterService(
                session,
                self.keyring,
                self.connector,
                OrganizationService(session, self.references),
                self.references,
            )
            provider = await clusters.provider_for(system_scope(), cluster_id)
            wanted = await _wanted(session, cluster_id)
        if not isinstance(provider, ReconcilingProvider):
            return []
        actual = await provider.runtime_ids()
        drifts = []
        for runtime_id in sorted(set(wanted.serving) - actual - wanted.busy):
            drifts.append(
                await _repair(
                    cluster_id,
                    runtime_id,
                    "missing",
                    provider.ensure_runtime(RuntimeSpec.model_validate(wanted.serving[runtime_id])),
                )
            )
        for runtime_id in sorted(actual - set(wanted.serving) - wanted.busy):
            drifts.append(
                await _repair(cluster_id, runtime_id, "orphan", provider.stop_runtime(runtime_id))
            )
        return drifts


async def _repair(cluster_id: uuid.UUID, runtime_id: str, kind: str, action: Any) -> Drift:
    try:
        await action
    except ProviderError as exc:
        return Drift(cluster_id, runtime_id, kind, repaired=False, error=str(exc))
    return Drift(cluster_id, runtime_id, kind, repaired=True)


async def _wanted(session: AsyncSession, cluster_id: uuid.UUID) -> _Wanted:
    rows = await EndpointRepository(session).replicas_on_cluster(cluster_id)
    in_flight = await resources_in_flight(session, "endpoint")
    serving: dict[str, dict[str, Any]] = {}
    busy: set[str] = set()
    for runtime_id, spec, index, endpoint_id, status, replicas, deleted_at in rows:
        if endpoint_id in in_flight or (status is EndpointStatus.DEPLOYING and deleted_at is None):
            busy.add(runtime_id)
        elif deleted_at is None and status is EndpointStatus.RUNNING and index < replicas and spec:
            serving[runtime_id] = spec
    return _Wanted(serving, busy)


def cluster_reconciler(components: Components) -> ClusterReconciler:
    """Drift between budapp and its Kubernetes clusters, repaired on a schedule."""
    return components.provide(
        CLUSTER_RECONCILER,
        ClusterReconciler(
            components.session_factory,
            components.keyring,
            components[CLUSTER_CONNECTOR],
            components.references,
            every_seconds=components.settings.cluster_reconcile_interval_seconds,
        ),
    )


CLUSTER_RECONCILER: Key[ClusterReconciler] = Key("cluster reconciler")

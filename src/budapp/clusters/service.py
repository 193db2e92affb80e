"""Clusters: register, onboard (first inventory), sync, delete; and, for the endpoints domain,
the provider of a cluster (`provider_for`) through which runtimes are deployed."""

from __future__ import annotations

import contextlib
import json
import uuid
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from budapp.adapters.clusters import ClusterConnector, ClusterProvider, Inventory, ProviderError
from budapp.clusters.models import Cluster, ClusterProviderKind, ClusterStatus
from budapp.clusters.repository import ClusterRepository
from budapp.clusters.schemas import (
    ClusterCapacity,
    ClusterCreate,
    ClusterFilter,
    ClusterRead,
    ClusterStatusRead,
    ConnectionRead,
    KubernetesRead,
    NodeRead,
)
from budapp.core.auth import Principal, TenantScope, system_scope
from budapp.core.db import utcnow
from budapp.core.envelope import Page
from budapp.core.errors import Conflict, Forbidden, NotFound, ServiceUnavailable
from budapp.core.keyring import DecryptionError, Keyring, Sealed
from budapp.core.logging import get_logger
from budapp.core.references import ReferenceGuard
from budapp.core.roles import Role
from budapp.credentials.service import CredentialVault, organization_secrets
from budapp.organizations.service import OrganizationService

log = get_logger("budapp.clusters")

_ERROR_LENGTH = 4000


class ClusterUnreachableError(ServiceUnavailable):
    """The provider could not be reached or refused: the cluster's new status (ERROR or
    NOT_AVAILABLE) and the reason are kept although the request fails."""

    commit = True


def _associated(cluster_id: uuid.UUID) -> bytes:
    # Binds the ciphertext to its row: copied onto another cluster it does not open.
    return f"budapp:cluster:{cluster_id}".encode()


class ClusterService:
    def __init__(
        self,
        session: AsyncSession,
        keyring: Keyring,
        connector: ClusterConnector,
        organizations: OrganizationService,
        references: ReferenceGuard,
    ) -> None:
        self.session = session
        self.repository = ClusterRepository(session)
        self.keyring = keyring
        self.connector = connector
        self.organizations = organizations
        self.references = references

    # --- reads -------------------------------------------------------------------------------

    async def get(self, scope: TenantScope, cluster_id: uuid.UUID) -> Cluster:
        cluster = await self.repository.get(scope, cluster_id)
        if cluster is None:
            raise NotFound("cluster", cluster_id)
        return cluster

    def read(self, cluster: Cluster) -> ClusterRead:
        return self._read(cluster)

    async def page(self, principal: Principal, filters: ClusterFilter) -> Page[ClusterRead]:
        rows, total = await self.repository.page(principal.scope, filters)
        return Page([self._read(row) for row in rows], total, filters)

    @staticmethod
    def status(cluster: Cluster) -> ClusterStatusRead:
        return ClusterStatusRead(
            id=cluster.id,
            name=cluster.name,
            provider=cluster.provider,
            status=cluster.status,
            last_synced_at=cluster.last_synced_at,
            last_error=cluster.last_error,
            capacity=_capacity(cluster),
        )

    async def available_in(self, scope: TenantScope) -> list[Cluster]:
        """The clusters a deployment may be placed on automatically, oldest first."""
        return await self.repository.available(scope)

    async def provider_for(self, scope: TenantScope, cluster_id: uuid.UUID) -> ClusterProvider:
        """The provider to deploy onto; for the endpoints domain. Never exposed over HTTP."""
        return await self._provider(await self.get(scope, cluster_id))

    # --- writes ------------------------------------------------------------------------------

    async def register(self, by: Principal, data: ClusterCreate) -> ClusterRead:
        if data.provider is ClusterProviderKind.LOCAL and not by.has_role(Role.SUPER_ADMIN):
            # The local provider runs processes on the budapp host itself.
            raise Forbidden("Only a super admin may register the local host as a cluster")
        if data.kubernetes and data.kubernetes.in_cluster and not by.has_role(Role.SUPER_ADMIN):
            # It acts with budapp's own service account, on budapp's own cluster.
            raise Forbidden("Only a super admin may register budapp's own cluster (in_cluster)")
        organization_id = data.organization_id or by.organization_id
        await self.organizations.get(by.scope, organization_id)
        if data.kubernetes and data.kubernetes.credential_id:
            # Refused now rather than at onboarding: another tenant's or a project's
            # credential, or one that is not a kubeconfig.
            await self._kubeconfig(organization_id, data.kubernetes.credential_id)
        cluster = await self.create_in(organization_id, data)
        return self._read(cluster)

    async def onboard(self, cluster: Cluster) -> ClusterRead:
        """Reaches the cluster for the first time (or again) and records its inventory."""
        await self.refresh_inventory(cluster, failed=ClusterStatus.ERROR)
        return self._read(cluster)

    async def sync(self, cluster: Cluster) -> ClusterRead:
        onboarded = cluster.status in (ClusterStatus.AVAILABLE, ClusterStatus.NOT_AVAILABLE)
        failed = ClusterStatus.NOT_AVAILABLE if onboarded else ClusterStatus.ERROR
        await self.refresh_inventory(cluster, failed=failed)
        return self._read(cluster)

    async def delete(self, cluster: Cluster) -> None:
        await self.references.ensure_unreferenced("cluster", self.session, cluster.id)
        cluster.deleted_at = utcnow()
        # The tokens are erased with the cluster, not merely hidden.
        cluster.ciphertext = None
        cluster.key_id = None
        await self.session.flush()

    async def create_in(self, organization_id: uuid.UUID, data: ClusterCreate) -> Cluster:
        if await self.repository.name_taken(organization_id, data.name):
            raise Conflict(f"A cluster named {data.name!r} already exists in this organization")
        if data.provider is ClusterProviderKind.LOCAL and await self.repository.local_registered(
            including_deleted=False
        ):
            raise Conflict("The local host is already registered as a cluster")
        cluster = Cluster(
            id=uuid.uuid4(),
            organization_id=organization_id,
            name=data.name,
            description=data.description,
            provider=data.provider,
            status=ClusterStatus.ONBOARDING,
            config=(
                data.kubernetes.config_values()
                if data.kubernetes
                else data.connection.config_values()
                if data.connection
                else {}
            ),
            nodes=[],
        )
        secrets = data.connection.secret_values() if data.connection else {}
        if secrets:
            sealed = self.keyring.seal(json.dumps(secrets).encode(), _associated(cluster.id))
            cluster.key_id, cluster.ciphertext = sealed.key_id, sealed.ciphertext
        self.repository.add(cluster)
        await self.session.flush()
        return cluster

    async def refresh_inventory(self, cluster: Cluster, *, failed: ClusterStatus) -> None:
        try:
            inventory = await (await self._provider(cluster)).inventory()
        except ProviderError as exc:
            cluster.status = failed
            cluster.last_error = str(exc)[:_ERROR_LENGTH]
            await self.session.flush()
            log.warning("cluster_unreachable", cluster_id=str(cluster.id), reason=str(exc))
            raise ClusterUnreachableError(f"Cluster {cluster.name!r}: {exc}") from exc
        _apply(cluster, inventory)
        await self.session.flush()

    # --- rules -------------------------------------------------------------------------------

    async def _provider(self, cluster: Cluster) -> ClusterProvider:
        secrets = self._open(cluster)
        credential_id = cluster.config.get("credential_id")
        if cluster.provider is ClusterProviderKind.KUBERNETES and credential_id:
            secrets = await self._kubeconfig(cluster.organization_id, uuid.UUID(credential_id))
        try:
            return self.connector.connect(cluster.provider.value, cluster.config, secrets)
        except ProviderError as exc:
            raise ClusterUnreachableError(f"Cluster {cluster.name!r}: {exc}") from exc

    async def _kubeconfig(
        self, organization_id: uuid.UUID, credential_id: uuid.UUID
    ) -> dict[str, str]:
        values = await organization_secrets(
            self.session,
            CredentialVault(self.keyring),
            organization_id,
            credential_id,
            kind="kubeconfig",
        )
        return {name: str(value) for name, value in values.items() if value is not None}

    def _open(self, cluster: Cluster) -> dict[str, str]:
        if cluster.ciphertext is None or cluster.key_id is None:
            return {}
        try:
            plaintext = self.keyring.open(
                Sealed(cluster.key_id, cluster.ciphertext), _associated(cluster.id)
            )
        except DecryptionError as exc:
            raise ClusterUnreachableError(
                f"The tokens of cluster {cluster.name!r} cannot be read: {exc}"
            ) from exc
        secrets: dict[str, str] = json.loads(plaintext)
        return secrets

    def _read(self, cluster: Cluster) -> ClusterRead:
        return ClusterRead(
            id=cluster.id,
            created_at=cluster.created_at,
            updated_at=cluster.updated_at,
            organization_id=cluster.organization_id,
            name=cluster.name,
            description=cluster.description,
            provider=cluster.provider,
            status=cluster.status,
            connection=_connection(cluster, self._secret_names(cluster)),
            kubernetes=_kubernetes(cluster),
            capacity=_capacity(cluster),
            nodes=[NodeRead.model_validate(node) for node in cluster.nodes],
            last_synced_at=cluster.last_synced_at,
            last_error=cluster.last_error,
        )

    def _secret_names(self, cluster: Cluster) -> set[str]:
        try:
            return set(self._open(cluster))
        except ClusterUnreachableError:
            return set()


def _apply(cluster: Cluster, inventory: Inventory) -> None:
    cluster.nodes = [node.model_dump(mode="json") for node in inventory.nodes]
    cluster.node_count = len(inventory.nodes)
    cluster.cpu_cores = inventory.cpu_cores
    cluster.memory_total_bytes = inventory.memory_total_bytes
    cluster.memory_free_bytes = inventory.memory_free_bytes
    cluster.gpu_count = inventory.gpu_count
    cluster.gpu_memory_total_bytes = inventory.gpu_memory_total_bytes
    cluster.gpu_memory_free_bytes = inventory.gpu_memory_free_bytes
    cluster.status = ClusterStatus.AVAILABLE
    cluster.last_synced_at = utcnow()
    cluster.last_error = None


def _capacity(cluster: Cluster) -> ClusterCapacity:
    return ClusterCapacity(
        node_count=cluster.node_count,
        cpu_cores=cluster.cpu_cores,
        memory_total_bytes=cluster.memory_total_bytes,
        memory_free_bytes=cluster.memory_free_bytes,
        gpu_count=cluster.gpu_count,
        gpu_memory_total_bytes=cluster.gpu_memory_total_bytes,
        gpu_memory_free_bytes=cluster.gpu_memory_free_bytes,
    )


def _kubernetes(cluster: Cluster) -> KubernetesRead | None:
    if cluster.provider is not ClusterProviderKind.KUBERNETES:
        return None
    config: dict[str, Any] = cluster.config
    return KubernetesRead(
        credential_id=config.get("credential_id"),
        in_cluster=bool(config.get("in_cluster")),
        namespace=config.get("namespace", ""),
        service_url=config.get("service_url", ""),
        service_type=config.get("service_type", "ClusterIP"),
        model_cache_size=config.get("model_cache_size"),
        model_cache_storage_class=config.get("model_cache_storage_class"),
        runtime_class=config.get("runtime_class"),
        node_selector=config.get("node_selector") or {},
    )


def _connection(cluster: Cluster, secrets: set[str]) -> ConnectionRead | None:
    config: dict[str, Any] = cluster.config
    if "base_url" not in config:
        return None
    return ConnectionRead(
        base_url=config["base_url"],
        dapr_app_id=config.get("dapr_app_id"),
        token_set="token" in secrets,
        dapr_api_token_set="dapr_api_token" in secrets,
    )


# --- start-up and other domains ---------------------------------------------------------------


async def ensure_local_cluster(
    factory: async_sessionmaker[AsyncSession],
    *,
    organization_name: str,
    cluster_name: str,
    keyring: Keyring,
    connector: ClusterConnector,
    references: ReferenceGuard,
) -> bool:
    """Registers this host as the `local` cluster of the default organization, once: never
    again after an operator deleted it. True when it registered it now."""
    async with factory() as session:
        organizations = OrganizationService(session, references)
        service = ClusterService(session, keyring, connector, organizations, references)
        if await service.repository.local_registered(including_deleted=True):
            return False
        organization = await organizations.find_by_name(system_scope(), organization_name)
        if organization is None:
            return False
        data = ClusterCreate(
            name=cluster_name,
            description="This host: model runtimes as supervised processes",
            provider=ClusterProviderKind.LOCAL,
        )
        try:
            cluster = await service.create_in(organization.id, data)
            # A failure is recorded on the row as ERROR; an operator can onboard it again.
            with contextlib.suppress(ClusterUnreachableError):
                await service.refresh_inventory(cluster, failed=ClusterStatus.ERROR)
            await session.commit()
        except (IntegrityError, Conflict):
            # Another replica registered it at the same moment.
            await session.rollback()
            return False
    log.info("local_cluster_registered", cluster=cluster_name, organization=organization_name)
    return True


async def reseal_cluster_tokens(factory: async_sessionmaker[AsyncSession], keyring: Keyring) -> int:
    """Re-seals the budcluster tokens under the primary key (part of `budapp keys rotate`).
    Tokens that cannot be opened are left as they are and logged."""
    resealed = 0
    async with factory() as session:
        for cluster in await ClusterRepository(session).sealed_with_other_keys(keyring.primary):
            if cluster.key_id is None or cluster.ciphertext is None:
                continue
            try:
                plaintext = keyring.open(
                    Sealed(cluster.key_id, cluster.ciphertext), _associated(cluster.id)
                )
            except DecryptionError as exc:
                log.error("cluster_tokens_unreadable", cluster_id=str(cluster.id), error=str(exc))
                continue
            sealed = keyring.seal(plaintext, _associated(cluster.id))
            cluster.key_id, cluster.ciphertext = sealed.key_id, sealed.ciphertext
            resealed += 1
        await session.commit()
    return resealed


async def kubernetes_cluster_ids(session: AsyncSession) -> list[uuid.UUID]:
    """The onboarded Kubernetes clusters, which the reconciler compares with budapp's view."""
    return await ClusterRepository(session).onboarded_ids(ClusterProviderKind.KUBERNETES)


async def local_cluster_ids(session: AsyncSession) -> list[uuid.UUID]:
    """The clusters whose runtimes this host's supervisor runs."""
    return await ClusterRepository(session).local_ids()


async def cluster_key_ids_in_use(session: AsyncSession) -> list[str]:
    return await ClusterRepository(session).key_ids_in_use()


async def clusters_using_credential(session: AsyncSession, credential_id: uuid.UUID) -> str | None:
    """A kubeconfig credential a cluster connects with cannot be deleted."""
    count = await ClusterRepository(session).count_using_credential(credential_id)
    return f"{count} cluster(s)" if count else None


async def clusters_of_organization(session: AsyncSession, organization_id: uuid.UUID) -> str | None:
    count = await ClusterRepository(session).count_in_organization(organization_id)
    return f"{count} cluster(s)" if count else None

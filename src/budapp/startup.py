"""What a budapp process starts, in order, and how it stops: one structure for both. Each
`_start_*` builds part of the components and registers on the exit stack how that part stops,
so shutdown is start-up in reverse, with no hand-kept mirror to fall out of step.

`budapp serve` starts everything; `budapp gateway` only what `/v1` needs (`GATEWAY_ONLY`).
Background workers (flushers, sweeps, delivery and scan workers) are declared next to their
code as `(Components) -> Worker` builders and started from the two lists at the end of this
module. Like `main.py` and `cli.py`, this module knows every domain; no domain imports it.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable
from contextlib import AsyncExitStack
from datetime import timedelta
from typing import Protocol

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from budapp.adapters.cache import create_window_counter
from budapp.adapters.clusters import ClusterConnector
from budapp.adapters.clusters.catalog import SHIPPED, TemplateCatalog
from budapp.adapters.clusters.local import LocalProvider
from budapp.adapters.clusters.processes import SupervisorBusy
from budapp.adapters.clusters.runtime import RestartPolicy, SupervisorConfig
from budapp.adapters.clusters.supervisor import RuntimeSupervisor
from budapp.adapters.events import create_event_bus
from budapp.adapters.storage import ObjectStorage, StorageError, create_object_storage
from budapp.api_keys.resolver import API_KEY_RESOLVER, ApiKeyResolver, api_key_flusher
from budapp.api_keys.service import active_keys_of_project
from budapp.auth.bearer import BearerAuthenticator
from budapp.auth.principals import PRINCIPAL_CACHE, PrincipalCache
from budapp.auth.providers import IDENTITY_PROVIDERS, IdentityProviders
from budapp.auth.service import TokenAuthenticator
from budapp.auth.throttle import LOGIN_THROTTLE, LoginThrottle
from budapp.auth.tokens import TOKEN_ISSUER, TokenIssuer
from budapp.benchmarks.environment import BENCHMARK_ENVIRONMENT, benchmark_environment
from budapp.bootstrap import ensure_initial_admin
from budapp.catalog.objects import MODEL_FILES
from budapp.catalog.scanning import scan_worker
from budapp.catalog.service import models_using_credential
from budapp.catalog.sweeper import STORAGE_SWEEPER, StorageSweeper
from budapp.clusters.service import (
    clusters_of_organization,
    clusters_using_credential,
    ensure_local_cluster,
)
from budapp.core import migrate
from budapp.core.auth import AUTHENTICATOR
from budapp.core.components import (
    CLUSTER_CONNECTOR,
    PASSWORD_HASHER,
    RUNTIME_SUPERVISOR,
    RUNTIME_TEMPLATES,
    STORAGE,
    Components,
)
from budapp.core.db import create_engine, create_session_factory
from budapp.core.errors import BudappError
from budapp.core.keyring import Keyring, KeyringError, load_keyring
from budapp.core.logging import get_logger
from budapp.core.origin import parse_networks
from budapp.core.references import ReferenceGuard
from budapp.core.security import PasswordHasher, load_signing_key
from budapp.credentials.service import VAULT, CredentialVault, check_keyring, credentials_of_project
from budapp.datasets.objects import DATASET_FILES
from budapp.endpoints.reconcile import cluster_reconciler
from budapp.endpoints.runtimes import RuntimeEvents, desired_local_runtimes
from budapp.endpoints.service import (
    endpoints_in_project,
    endpoints_on_cluster,
    endpoints_using_model,
)
from budapp.endpoints.targets import ENDPOINT_TARGETS, EndpointTargets
from budapp.events.hub import EVENT_HUB, EventHub
from budapp.events.service import bind_event_bus
from budapp.gateway.runtime import start_gateway
from budapp.gateway.targets import TARGET_RESOLVER, EndpointRegistry
from budapp.projects.service import projects_in_organization
from budapp.routers.service import routers_of_project
from budapp.settings import Settings
from budapp.usage.meter import usage_meter
from budapp.usage.retention import usage_retention
from budapp.users.service import users_in_organization
from budapp.webhooks.dispatcher import webhook_dispatcher
from budapp.webhooks.service import webhooks_of_organization
from budapp.workflows.engine import WorkflowEngine, system_database_url

log = get_logger("budapp")


class Worker(Protocol):
    """A background worker: started once all components exist, closed in reverse order."""

    async def start(self) -> None: ...

    async def close(self) -> None: ...


WorkerBuilder = Callable[[Components], Worker | None]


async def start_components(
    settings: Settings, stack: AsyncExitStack, *, gateway_only: bool = False
) -> Components:
    """Everything a process needs, started; closing `stack` stops it all in reverse order."""
    # 0700: the data directory holds the SQLite database and the signing key.
    settings.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    url = settings.resolved_database_url
    if settings.should_auto_migrate and not gateway_only:
        # Alembic drives its own event loop, so it runs in a thread of its own.
        await asyncio.to_thread(migrate.upgrade, url)
    engine = create_engine(url, pool_size=settings.database_pool_size, echo=settings.database_echo)
    stack.push_async_callback(engine.dispose)
    workflows = _WorkflowsStop()
    # Registered this early so that it runs last but for the engine's disposal: DBOS shuts
    # down the thread pool it lent this event loop, which the other parts' closing may use.
    stack.push_async_callback(workflows.stop)
    factory = create_session_factory(engine)
    keyring = await _keyring(settings, factory)
    window_counter = create_window_counter(settings.redis_url)
    stack.push_async_callback(window_counter.close)
    event_bus = create_event_bus(settings.redis_url)
    components = Components(
        settings=settings,
        engine=engine,
        session_factory=factory,
        keyring=keyring,
        event_bus=event_bus,
        window_counter=window_counter,
        references=reference_guard(),
        trusted_networks=parse_networks(settings.trusted_proxies),
    )
    components.provide(VAULT, CredentialVault(keyring))
    if not gateway_only:
        bind_event_bus(factory, event_bus)
        components.provide(EVENT_HUB, EventHub(event_bus, queue_size=settings.ws_queue_size))
    await event_bus.start()
    stack.push_async_callback(event_bus.close)
    components.provide(API_KEY_RESOLVER, _api_key_resolver(components))
    if not gateway_only:
        await _start_identity(components, stack)
        await _start_storage(components, stack)
        await _bootstrap(components)
        await _start_clusters(components, stack)
        components.provide(BENCHMARK_ENVIRONMENT, benchmark_environment(components))
        workflows.engine = await _start_workflows(components)
    await _start_endpoint_targets(components, stack)
    for build in GATEWAY_WORKERS if gateway_only else SERVE_WORKERS:
        worker = build(components)
        if worker is not None:
            await worker.start()
            stack.push_async_callback(worker.close)
    # Last to start, first to stop: requests in flight are metered before the meter closes.
    stack.push_async_callback(await start_gateway(components))
    return components


class _WorkflowsStop:
    engine: WorkflowEngine | None = None

    async def stop(self) -> None:
        if self.engine is not None:
            await self.engine.stop()


def reference_guard() -> ReferenceGuard:
    """What stops the deletion of a resource others still use (`core/references.py`)."""
    references = ReferenceGuard()
    references.register("organization", users_in_organization)
    references.register("organization", projects_in_organization)
    references.register("organization", clusters_of_organization)
    references.register("organization", webhooks_of_organization)
    references.register("project", credentials_of_project)
    references.register("project", active_keys_of_project)
    references.register("project", routers_of_project)
    references.register("project", endpoints_in_project)
    references.register("credential", models_using_credential)
    references.register("credential", clusters_using_credential)
    references.register("model", endpoints_using_model)
    references.register("cluster", endpoints_on_cluster)
    return references


async def _keyring(settings: Settings, factory: async_sessionmaker[AsyncSession]) -> Keyring:
    """Loads the data keys and proves they open what is stored, or refuses to start."""
    inline = settings.inline_encryption_keys
    try:
        keyring, generated = load_keyring(inline, settings.encryption_key_file, settings.data_dir)
        async with factory() as session:
            await check_keyring(session, keyring, generated=generated)
    except KeyringError as exc:
        log.error("encryption_keys_invalid", reason=str(exc))
        raise SystemExit(f"budapp cannot start: {exc}") from None
    return keyring


def _api_key_resolver(components: Components) -> ApiKeyResolver:
    settings = components.settings
    return ApiKeyResolver(
        components.session_factory,
        components.event_bus,
        ttl_seconds=settings.api_key_cache_ttl_seconds,
        flush_seconds=settings.api_key_usage_flush_seconds,
    )


async def _start_identity(components: Components, stack: AsyncExitStack) -> None:
    """Password hashing, budapp's own token signing key, the identity providers, and the
    authenticator of bearer tokens (budapp's own and the providers')."""
    settings = components.settings
    hasher = components.provide(
        PASSWORD_HASHER,
        PasswordHasher(
            time_cost=settings.password_time_cost, memory_kib=settings.password_memory_kib
        ),
    )
    private_pem = (
        settings.jwt_private_key.get_secret_value().encode() if settings.jwt_private_key else None
    )
    signing_key = load_signing_key(private_pem, settings.jwt_private_key_file, settings.data_dir)
    issuer = components.provide(
        TOKEN_ISSUER,
        TokenIssuer(
            signing_key,
            issuer=settings.jwt_issuer,
            audience=settings.jwt_audience,
            ttl_seconds=settings.access_token_ttl_seconds,
        ),
    )
    providers = components.provide(IDENTITY_PROVIDERS, IdentityProviders.from_settings(settings))
    stack.push_async_callback(providers.close)
    cache = components.provide(
        PRINCIPAL_CACHE,
        PrincipalCache(components.event_bus, ttl_seconds=settings.principal_cache_ttl_seconds),
    )
    components.provide(
        AUTHENTICATOR,
        BearerAuthenticator(
            TokenAuthenticator(issuer, cache),
            providers,
            own_issuer=settings.jwt_issuer,
            counter=components.window_counter,
            hasher=hasher,
            references=components.references,
        ),
    )
    components.provide(
        LOGIN_THROTTLE,
        LoginThrottle(
            components.window_counter,
            max_failures_per_account=settings.login_max_failures_per_account,
            failure_window_seconds=settings.login_failure_window_seconds,
            max_attempts_per_address=settings.login_max_attempts_per_address,
            address_window_seconds=settings.login_address_window_seconds,
        ),
    )


def object_storage(settings: Settings) -> ObjectStorage:
    """The object storage the settings name (local directory or S3); not started."""

    def secret(value: object) -> str | None:
        return value.get_secret_value() if hasattr(value, "get_secret_value") else None

    return create_object_storage(
        settings.storage_backend,
        directory=settings.resolved_storage_dir,
        bucket=settings.s3_bucket,
        endpoint_url=settings.s3_endpoint_url,
        region=settings.s3_region,
        access_key_id=secret(settings.s3_access_key_id),
        secret_access_key=secret(settings.s3_secret_access_key),
        part_size=settings.s3_part_size_bytes,
        max_attempts=settings.s3_max_attempts,
        create_bucket=settings.s3_create_bucket,
        concurrency=settings.s3_upload_concurrency,
    )


def storage_sweeper(
    settings: Settings, factory: async_sessionmaker[AsyncSession], storage: ObjectStorage
) -> StorageSweeper:
    """The sweeper of `budapp serve` and of `budapp storage sweep`."""
    days = settings.storage_deleted_retention_days
    return StorageSweeper(
        factory,
        storage,
        [MODEL_FILES, DATASET_FILES],
        grace=timedelta(hours=settings.storage_orphan_grace_hours),
        retention=timedelta(days=days) if days else None,
        every_seconds=settings.storage_sweep_interval_seconds,
    )


async def _start_storage(components: Components, stack: AsyncExitStack) -> None:
    storage = components.provide(STORAGE, object_storage(components.settings))
    try:
        await storage.start()
    except StorageError as exc:
        log.error("object_storage_unavailable", reason=str(exc))
        raise SystemExit(f"budapp cannot start: object storage: {exc}") from None
    stack.push_async_callback(storage.close)
    (components.settings.data_dir / "spool").mkdir(mode=0o700, exist_ok=True)


async def _bootstrap(components: Components) -> None:
    """The first super admin, on an empty database."""
    settings = components.settings
    try:
        password = await ensure_initial_admin(
            components.session_factory,
            settings,
            components[PASSWORD_HASHER],
            components.references,
        )
    except BudappError as exc:
        # A misconfiguration (e.g. BUDAPP_ADMIN_PASSWORD too short): say so plainly and stop.
        log.error("bootstrap_failed", reason=exc.message)
        raise SystemExit(f"budapp cannot start: {exc.message}") from None
    if password is not None:
        # Shown once, on the console rather than in the structured log.
        print(  # noqa: T201
            f"\n  budapp: created super admin {settings.admin_email} "
            f"with password: {password}\n  (shown once; change it after logging in)\n",
            file=sys.stderr,
            flush=True,
        )


def runtime_templates(settings: Settings) -> TemplateCatalog:
    extra = [settings.runtime_templates_dir] if settings.runtime_templates_dir else []
    return TemplateCatalog.load([SHIPPED, *extra])


def _runtime_supervisor(settings: Settings, templates: TemplateCatalog) -> RuntimeSupervisor:
    config = SupervisorConfig(
        runtime_dir=settings.resolved_runtime_dir,
        host=settings.runtime_host,
        port_range=(settings.runtime_port_min, settings.runtime_port_max),
        restart=RestartPolicy(
            max_restarts=settings.runtime_max_restarts,
            window_seconds=settings.runtime_restart_window_seconds,
            backoff_initial_seconds=settings.runtime_backoff_initial_seconds,
            backoff_max_seconds=settings.runtime_backoff_max_seconds,
        ),
        stop_grace_seconds=settings.runtime_stop_grace_seconds,
        log_max_bytes=settings.runtime_log_max_bytes,
        log_backups=settings.runtime_log_backups,
    )
    return RuntimeSupervisor(config, templates)


async def _start_clusters(components: Components, stack: AsyncExitStack) -> None:
    """The runtime templates, this host's runtime supervisor, and the cluster connector."""
    settings = components.settings
    templates = components.provide(RUNTIME_TEMPLATES, runtime_templates(settings))
    supervisor = _runtime_supervisor(settings, templates)

    def connector(local: LocalProvider | None) -> ClusterConnector:
        return ClusterConnector(
            local,
            timeout=settings.cluster_request_timeout_seconds,
            templates=templates,
            kubernetes_poll_seconds=settings.kubernetes_poll_seconds,
        )

    try:
        await supervisor.open()
    except SupervisorBusy as exc:
        # `serve --workers N`: the first worker runs the local runtimes; the others cannot.
        log.warning("local_provider_disabled", reason=str(exc))
        components.provide(RUNTIME_SUPERVISOR, None)
        components.provide(CLUSTER_CONNECTOR, connector(None))
        return
    components.provide(RUNTIME_SUPERVISOR, supervisor)

    async def close_supervisor() -> None:
        await supervisor.close(stop_runtimes=settings.runtime_stop_on_shutdown)

    stack.push_async_callback(close_supervisor)
    supervisor.subscribe(RuntimeEvents(components.session_factory))
    local = LocalProvider(supervisor, nvidia_smi=settings.nvidia_smi)
    cluster_connector = components.provide(CLUSTER_CONNECTOR, connector(local))
    await supervisor.reconcile(await desired_local_runtimes(components.session_factory))
    if settings.should_register_local_cluster:
        await ensure_local_cluster(
            components.session_factory,
            organization_name=settings.default_organization,
            cluster_name=settings.local_cluster_name,
            keyring=components.keyring,
            connector=cluster_connector,
            references=components.references,
        )


async def _start_workflows(components: Components) -> WorkflowEngine:
    settings = components.settings
    engine = WorkflowEngine(
        system_database_url(settings.resolved_database_url, settings.workflow_database_url),
        executor_id=settings.replica_id,
        concurrency=settings.workflow_concurrency,
        heartbeat_seconds=settings.workflow_heartbeat_seconds,
        takeover_seconds=settings.workflow_takeover_seconds,
    )
    await engine.start(components)
    return engine


async def _start_endpoint_targets(components: Components, stack: AsyncExitStack) -> None:
    """The gateway's map of endpoint replicas, kept current from endpoint.status events."""
    registry = components.provide(TARGET_RESOLVER, EndpointRegistry())
    targets = components.provide(
        ENDPOINT_TARGETS, EndpointTargets(components.session_factory, registry)
    )
    await targets.start(components.event_bus)
    stack.push_async_callback(targets.close)


# Started in this order once every component exists, stopped in the reverse order.
SERVE_WORKERS: tuple[WorkerBuilder, ...] = (
    api_key_flusher,
    scan_worker,
    lambda components: components.provide(
        STORAGE_SWEEPER,
        storage_sweeper(components.settings, components.session_factory, components[STORAGE]),
    ),
    webhook_dispatcher,
    cluster_reconciler,
    usage_meter,
    usage_retention,
)
GATEWAY_WORKERS: tuple[WorkerBuilder, ...] = (api_key_flusher, usage_meter, usage_retention)

"""create_app(): the one place that knows every domain: routers, middleware, error handlers,
the adapters chosen from settings, and the lifespan that opens and closes them."""

from __future__ import annotations

import asyncio
import gc
import re
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any

from fastapi import APIRouter, FastAPI
from fastapi_offline import FastAPIOffline
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Mount, Route

import budapp.benchmarks.workflows
import budapp.endpoints.workflows  # noqa: F401 - registers the endpoint workflows with DBOS
from budapp import __version__
from budapp.adapters.cache import create_window_counter
from budapp.adapters.clusters import ClusterConnector
from budapp.adapters.clusters.catalog import SHIPPED, TemplateCatalog
from budapp.adapters.clusters.local import LocalProvider
from budapp.adapters.clusters.processes import SupervisorBusy
from budapp.adapters.clusters.runtime import RestartPolicy, SupervisorConfig
from budapp.adapters.clusters.supervisor import RuntimeSupervisor
from budapp.adapters.events import create_event_bus
from budapp.adapters.storage import ObjectStorage, StorageError, create_object_storage
from budapp.api_keys.resolver import ApiKeyResolver
from budapp.api_keys.router import router as api_keys_router
from budapp.api_keys.service import active_keys_of_project
from budapp.audit.router import router as audit_router
from budapp.auth.bearer import BearerAuthenticator
from budapp.auth.principals import PrincipalCache
from budapp.auth.providers import IdentityProviders
from budapp.auth.router import router as auth_router
from budapp.auth.service import TokenAuthenticator
from budapp.auth.sso_router import router as sso_router
from budapp.auth.throttle import LoginThrottle
from budapp.auth.tokens import TokenIssuer
from budapp.benchmarks.environment import BenchmarkEnvironment
from budapp.benchmarks.router import router as benchmarks_router
from budapp.bootstrap import ensure_initial_admin
from budapp.catalog.objects import MODEL_FILES
from budapp.catalog.router import router as catalog_router
from budapp.catalog.scanning import ScanLimits, ScanWorker
from budapp.catalog.service import models_using_credential
from budapp.catalog.sweeper import StorageSweeper
from budapp.clusters.router import router as clusters_router
from budapp.clusters.service import clusters_of_organization, ensure_local_cluster
from budapp.core import migrate
from budapp.core.db import create_engine, create_session_factory
from budapp.core.errors import BudappError
from budapp.core.http import install_error_handlers
from budapp.core.keyring import Keyring, KeyringError, load_keyring
from budapp.core.logging import configure_logging, get_logger
from budapp.core.middleware import BodySizeLimitMiddleware, RequestContextMiddleware
from budapp.core.origin import parse_networks
from budapp.core.references import ReferenceGuard
from budapp.core.security import PasswordHasher, load_signing_key
from budapp.credentials.router import router as credentials_router
from budapp.credentials.service import CredentialVault, check_keyring, credentials_of_project
from budapp.datasets.objects import DATASET_FILES
from budapp.datasets.router import router as datasets_router
from budapp.endpoints.router import router as endpoints_router
from budapp.endpoints.runtimes import RuntimeEvents, desired_local_runtimes
from budapp.endpoints.service import (
    endpoints_in_project,
    endpoints_on_cluster,
    endpoints_using_model,
)
from budapp.endpoints.targets import EndpointTargets
from budapp.events.hub import EventHub
from budapp.events.router import router as events_router
from budapp.events.service import bind_event_bus
from budapp.gateway.metrics import metrics_endpoint
from budapp.gateway.router import router as usage_router
from budapp.gateway.routes import gateway_routes
from budapp.gateway.runtime import start_gateway, stop_gateway
from budapp.gateway.targets import EndpointRegistry
from budapp.health.router import router as health_router
from budapp.internal.router import router as internal_router
from budapp.notifications.router import router as notifications_router
from budapp.organizations.router import router as organizations_router
from budapp.projects.router import router as projects_router
from budapp.projects.service import projects_in_organization
from budapp.routers.router import router as routers_router
from budapp.routers.service import routers_of_project
from budapp.settings import Settings, get_settings
from budapp.users.router import router as users_router
from budapp.users.service import users_in_organization
from budapp.webhooks.dispatcher import DeliveryPolicy, WebhookDispatcher
from budapp.webhooks.router import router as webhooks_router
from budapp.webhooks.service import webhooks_of_organization
from budapp.workflows.engine import EngineContext, WorkflowEngine, system_database_url
from budapp.workflows.router import router as workflows_router

log = get_logger("budapp")


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    configure_logging(settings.log_level, json=settings.log_json)

    app = FastAPIOffline(
        title="budapp",
        version=__version__,
        description="Control plane of a self-hosted AI model-serving platform.",
        lifespan=_lifespan,
        openapi_url=f"{settings.api_prefix}/openapi.json",
        docs_url=f"{settings.api_prefix}/docs",
        redoc_url=f"{settings.api_prefix}/redoc",
        static_url=f"{settings.api_prefix}/static-offline-docs",
    )
    app.state.settings = settings
    app.state.trusted_networks = parse_networks(settings.trusted_proxies)
    app.state.references = _reference_guard()
    app.state.desired_runtimes = desired_local_runtimes
    install_error_handlers(app)
    app.add_middleware(
        BodySizeLimitMiddleware,
        max_bytes=settings.max_request_body_bytes,
        uploads=_upload_limits(settings),
    )
    app.add_middleware(RequestContextMiddleware, access_log=settings.access_log)

    app.include_router(health_router)
    api = APIRouter(prefix=settings.api_prefix)
    for router in (
        auth_router,
        sso_router,
        internal_router,
        organizations_router,
        users_router,
        projects_router,
        audit_router,
        credentials_router,
        api_keys_router,
        workflows_router,
        notifications_router,
        webhooks_router,
        events_router,
        clusters_router,
        endpoints_router,
        catalog_router,
        datasets_router,
        routers_router,
        usage_router,
        benchmarks_router,
    ):
        api.include_router(router)
    app.include_router(api)
    app.add_route("/metrics", metrics_endpoint, include_in_schema=False)
    if settings.gateway_enabled:
        # Not under api_prefix: OpenAI clients expect /v1 at the base URL they are given.
        # First among the routes: Starlette tries them in order, and the hot path should not
        # test every management route's pattern before its own.
        app.router.routes.insert(0, Mount("/v1", gateway_routes(app.state)))
    return app


def create_gateway_app(settings: Settings | None = None) -> Starlette:
    """`budapp gateway`: /v1, /metrics and /health with only what they need (database for
    cache misses and the meter, event bus, API keys, credentials), to scale apart."""
    settings = settings or get_settings()
    configure_logging(settings.log_level, json=settings.log_json)
    app = Starlette(
        routes=[Route("/metrics", metrics_endpoint), Route("/health", _gateway_health)],
        lifespan=_gateway_lifespan,
    )
    app.state.settings = settings
    app.router.routes.append(Mount("/v1", gateway_routes(app.state)))
    return app


def _freeze_startup_objects() -> None:
    """Moves what start-up allocated (modules, models, routes) out of the garbage collector's
    reach: a full collection then walks only what requests allocate, instead of pausing
    every request for ~100 ms (seen as the gateway's p99 under load)."""
    gc.collect()
    gc.freeze()


async def _gateway_health(request: Request) -> JSONResponse:
    del request
    return JSONResponse({"status": "ok"})


@asynccontextmanager
async def _gateway_lifespan(app: Starlette) -> AsyncIterator[None]:
    settings: Settings = app.state.settings
    settings.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    url = settings.resolved_database_url
    engine = create_engine(url, pool_size=settings.database_pool_size, echo=settings.database_echo)
    state = app.state
    state.engine = engine
    state.session_factory = create_session_factory(engine)
    state.keyring = await _keyring(settings, state.session_factory)
    state.vault = CredentialVault(state.keyring)
    state.event_bus = create_event_bus(settings.redis_url)
    await state.event_bus.start()
    state.api_key_resolver = ApiKeyResolver(
        state.session_factory,
        state.event_bus,
        ttl_seconds=settings.api_key_cache_ttl_seconds,
        flush_seconds=settings.api_key_usage_flush_seconds,
    )
    await state.api_key_resolver.start()
    await _start_endpoint_targets(state)
    await start_gateway(state, settings)
    _freeze_startup_objects()
    log.info("budapp_gateway_started", database=engine.url.get_backend_name())
    try:
        yield
    finally:
        await stop_gateway(state)
        await state.endpoint_targets.close()
        await state.api_key_resolver.close()
        await state.event_bus.close()
        await engine.dispose()


def _upload_limits(settings: Settings) -> list[tuple[re.Pattern[str], int | None]]:
    """Upload routes stream their bodies into object storage: they get the upload limits
    instead of the 1 MiB of management routes (each file is also capped while streaming).
    The gateway caps its bodies itself, answering in OpenAI's error shape."""
    prefix = re.escape(settings.api_prefix)
    return [
        (re.compile(rf"^{prefix}/models/local/?$"), settings.model_upload_max_bytes),
        (re.compile(r"^/v1/"), None),
        # The multipart envelope adds a few hundred bytes around the file.
        (
            re.compile(rf"^{prefix}/datasets(/[^/]+/versions)?/?$"),
            settings.dataset_max_bytes + 64 * 1024,
        ),
    ]


def object_storage(settings: Settings) -> ObjectStorage:
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


def _reference_guard() -> ReferenceGuard:
    references = ReferenceGuard()
    references.register("organization", users_in_organization)
    references.register("organization", projects_in_organization)
    references.register("organization", clusters_of_organization)
    references.register("project", credentials_of_project)
    references.register("project", active_keys_of_project)
    references.register("project", routers_of_project)
    references.register("organization", webhooks_of_organization)
    references.register("credential", models_using_credential)
    references.register("model", endpoints_using_model)
    references.register("cluster", endpoints_on_cluster)
    references.register("project", endpoints_in_project)
    return references


def _delivery_policy(settings: Settings) -> DeliveryPolicy:
    return DeliveryPolicy(
        timeout_seconds=settings.webhook_timeout_seconds,
        max_attempts=settings.webhook_max_attempts,
        backoff_base_seconds=settings.webhook_backoff_base_seconds,
        backoff_max_seconds=settings.webhook_backoff_max_seconds,
        allow_private=settings.webhook_private_destinations_allowed,
        batch_size=settings.webhook_batch_size,
        poll_seconds=settings.webhook_poll_seconds,
    )


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


def runtime_templates(settings: Settings) -> TemplateCatalog:
    extra = [settings.runtime_templates_dir] if settings.runtime_templates_dir else []
    return TemplateCatalog.load([SHIPPED, *extra])


async def _start_clusters(app: FastAPI, settings: Settings) -> None:
    state = app.state
    state.runtime_templates = runtime_templates(settings)
    supervisor = _runtime_supervisor(settings, state.runtime_templates)
    try:
        await supervisor.open()
    except SupervisorBusy as exc:
        # `serve --workers N`: the first worker runs the local runtimes; the others cannot.
        log.warning("local_provider_disabled", reason=str(exc))
        state.runtime_supervisor = None
        state.cluster_connector = ClusterConnector(
            None, timeout=settings.cluster_request_timeout_seconds
        )
        return
    state.runtime_supervisor = supervisor
    supervisor.subscribe(RuntimeEvents(state.session_factory))
    local = LocalProvider(supervisor, nvidia_smi=settings.nvidia_smi)
    state.cluster_connector = ClusterConnector(
        local, timeout=settings.cluster_request_timeout_seconds
    )
    await supervisor.reconcile(await state.desired_runtimes(state.session_factory))
    if settings.should_register_local_cluster:
        await ensure_local_cluster(
            state.session_factory,
            organization_name=settings.default_organization,
            cluster_name=settings.local_cluster_name,
            keyring=state.vault.keyring,
            connector=state.cluster_connector,
            references=state.references,
        )


async def _start_endpoint_targets(state: Any) -> None:
    """The gateway's map of endpoint replicas, kept current from endpoint.status events."""
    state.target_resolver = EndpointRegistry()
    state.endpoint_targets = EndpointTargets(state.session_factory, state.target_resolver)
    await state.endpoint_targets.start(state.event_bus)


def _authenticator(state: Any, settings: Settings) -> BearerAuthenticator:
    """Bearer tokens: budapp's own, and those of the configured identity providers."""
    state.principal_cache = PrincipalCache(
        state.event_bus, ttl_seconds=settings.principal_cache_ttl_seconds
    )
    return BearerAuthenticator(
        TokenAuthenticator(state.token_issuer, state.principal_cache),
        state.identity_providers,
        own_issuer=settings.jwt_issuer,
        counter=state.window_counter,
        hasher=state.password_hasher,
        references=state.references,
    )


async def _start_events(state: Any, settings: Settings) -> None:
    """The event bus (in-process or Redis), the WebSocket hub and the webhook dispatcher."""
    state.event_bus = create_event_bus(settings.redis_url)
    bind_event_bus(state.session_factory, state.event_bus)
    state.event_hub = EventHub(state.event_bus, queue_size=settings.ws_queue_size)
    state.webhook_dispatcher = WebhookDispatcher(
        state.session_factory, state.vault.keyring, state.event_bus, _delivery_policy(settings)
    )
    await state.event_bus.start()


async def _start_workflows(state: Any, settings: Settings, url: str) -> WorkflowEngine:
    engine = WorkflowEngine(
        system_database_url(url, settings.workflow_database_url),
        executor_id=settings.replica_id,
        concurrency=settings.workflow_concurrency,
    )
    state.benchmarks = BenchmarkEnvironment(
        gateway_url=settings.resolved_gateway_url
        if settings.gateway_enabled or settings.gateway_url
        else None,
        allow_private_urls=settings.benchmark_private_urls_allowed,
        max_rate=settings.benchmark_max_rate,
        max_concurrency=settings.benchmark_max_concurrency,
        max_duration_seconds=settings.benchmark_max_duration_seconds,
        keyring=state.keyring,
        vault=state.vault,
        storage=state.storage,
        bus=state.event_bus,
        session_factory=state.session_factory,
    )
    # What workflow steps reach for: deployments talk to clusters and read model files,
    # benchmarks reach their targets.
    services = {
        "benchmarks": state.benchmarks,
        "keyring": state.keyring,
        "connector": state.cluster_connector,
        "references": state.references,
        "storage": state.storage,
        "templates": state.runtime_templates,
        "model_cache": settings.data_dir / "model-cache",
    }
    await engine.start(EngineContext(state.session_factory, services=services))
    return engine


def _start_identity(state: Any, settings: Settings) -> None:
    """Password hashing and budapp's own token signing key."""
    state.password_hasher = PasswordHasher(
        time_cost=settings.password_time_cost, memory_kib=settings.password_memory_kib
    )
    private_pem = (
        settings.jwt_private_key.get_secret_value().encode() if settings.jwt_private_key else None
    )
    signing_key = load_signing_key(private_pem, settings.jwt_private_key_file, settings.data_dir)
    state.token_issuer = TokenIssuer(
        signing_key,
        issuer=settings.jwt_issuer,
        audience=settings.jwt_audience,
        ttl_seconds=settings.access_token_ttl_seconds,
    )


async def _start_catalog(state: Any, settings: Settings) -> None:
    """Object storage and the safety-scan worker of uploaded model files."""
    state.storage = object_storage(settings)
    try:
        await state.storage.start()
    except StorageError as exc:
        log.error("object_storage_unavailable", reason=str(exc))
        raise SystemExit(f"budapp cannot start: object storage: {exc}") from None
    (settings.data_dir / "spool").mkdir(mode=0o700, exist_ok=True)
    state.scan_worker = ScanWorker(
        state.session_factory,
        state.storage,
        settings.data_dir / "scans",
        ScanLimits(
            zip_max_ratio=settings.scan_zip_max_ratio,
            zip_max_bytes=settings.scan_zip_max_bytes,
            lease_seconds=settings.scan_lease_seconds,
            max_attempts=settings.scan_max_attempts,
            poll_seconds=settings.scan_poll_seconds,
        ),
    )
    await state.scan_worker.start()
    state.storage_sweeper = storage_sweeper(settings, state.session_factory, state.storage)
    await state.storage_sweeper.start()


async def _bootstrap(state: Any, settings: Settings) -> None:
    """The first super admin, on an empty database."""
    try:
        password = await ensure_initial_admin(
            state.session_factory, settings, state.password_hasher, state.references
        )
    except BudappError as exc:
        # A misconfiguration (e.g. BUDAPP_ADMIN_PASSWORD too short): say so plainly and stop.
        log.error("bootstrap_failed", reason=exc.message)
        raise SystemExit(f"budapp cannot start: {exc.message}") from None
    if password is not None:
        # Shown once, on the console rather than in the structured log.
        print(
            f"\n  budapp: created super admin {settings.admin_email} "
            f"with password: {password}\n  (shown once; change it after logging in)\n",
            file=sys.stderr,
            flush=True,
        )


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    settings: Settings = app.state.settings
    # 0700: the data directory holds the SQLite database and the signing key.
    settings.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    url = settings.resolved_database_url
    if settings.should_auto_migrate:
        # Alembic drives its own event loop, so it runs in a thread of its own.
        await asyncio.to_thread(migrate.upgrade, url)

    engine = create_engine(url, pool_size=settings.database_pool_size, echo=settings.database_echo)
    state = app.state
    state.engine = engine
    state.session_factory = create_session_factory(engine)
    _start_identity(state, settings)
    state.keyring = await _keyring(settings, state.session_factory)
    state.vault = CredentialVault(state.keyring)
    state.window_counter = create_window_counter(settings.redis_url)
    state.identity_providers = IdentityProviders.from_settings(settings)
    await _start_events(state, settings)
    state.authenticator = _authenticator(state, settings)
    state.api_key_resolver = ApiKeyResolver(
        state.session_factory,
        state.event_bus,
        ttl_seconds=settings.api_key_cache_ttl_seconds,
        flush_seconds=settings.api_key_usage_flush_seconds,
    )
    await state.api_key_resolver.start()
    await _start_catalog(state, settings)
    state.login_throttle = LoginThrottle(
        state.window_counter,
        max_failures_per_account=settings.login_max_failures_per_account,
        failure_window_seconds=settings.login_failure_window_seconds,
        max_attempts_per_address=settings.login_max_attempts_per_address,
        address_window_seconds=settings.login_address_window_seconds,
    )

    await _bootstrap(state, settings)
    if settings.webhook_worker_enabled:
        await state.webhook_dispatcher.start()
    await _start_clusters(app, settings)
    state.workflow_engine = await _start_workflows(state, settings, url)
    await _start_endpoint_targets(state)
    await start_gateway(state, settings)
    _freeze_startup_objects()
    log.info("budapp_started", database=engine.url.get_backend_name(), prefix=settings.api_prefix)
    try:
        yield
    finally:
        await stop_gateway(state)
        await state.endpoint_targets.close()
        await state.webhook_dispatcher.close()
        if state.runtime_supervisor is not None:
            await state.runtime_supervisor.close(stop_runtimes=settings.runtime_stop_on_shutdown)
        await state.storage_sweeper.close()
        await state.scan_worker.close()
        await state.storage.close()
        await state.api_key_resolver.close()
        await state.identity_providers.close()
        await state.event_bus.close()
        await state.window_counter.close()
        # Last: DBOS shuts down the thread pool it lent this event loop.
        await state.workflow_engine.stop()
        await engine.dispose()

"""The endpoint workflows: deploy (also used to scale), undeploy and delete. Each step is
idempotent, because a step interrupted by a crash runs again after restart: starting a
runtime that already runs returns it, stopping one that is gone is a no-op."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from budapp.adapters.clusters.base import ClusterProvider, Placement, RuntimeSpec, RuntimeState
from budapp.catalog.service import load_model, model_files
from budapp.clusters.models import ClusterProviderKind
from budapp.clusters.service import ClusterService
from budapp.core.auth import system_scope
from budapp.core.components import CLUSTER_CONNECTOR, RUNTIME_TEMPLATES, STORAGE
from budapp.core.db import session_scope, utcnow
from budapp.endpoints.models import (
    TRANSITIONS,
    Endpoint,
    EndpointReplica,
    EndpointStatus,
    ReplicaState,
)
from budapp.endpoints.repository import EndpointRepository
from budapp.endpoints.service import DELETE, DEPLOY, SCALE, UNDEPLOY, move_status, publish_status
from budapp.notifications.models import Severity
from budapp.notifications.service import notify
from budapp.organizations.service import OrganizationService
from budapp.workflows import engine
from budapp.workflows.engine import StepError
from budapp.workflows.models import WorkflowRun

DEPLOY_STEPS = [
    ("validate", "Check the endpoint and its placement"),
    ("prepare_model", "Prepare the model files"),
    ("start_replicas", "Start the replicas"),
    ("verify", "Check every replica is healthy"),
    ("activate", "Mark the endpoint running"),
]
STOP_STEPS = [
    ("stop_replicas", "Stop the replicas"),
    ("finish", "Mark the endpoint stopped"),
]
DELETE_STEPS = [
    ("stop_replicas", "Stop the replicas"),
    ("remove", "Delete the endpoint"),
]


def runtime_id(endpoint_id: uuid.UUID, index: int) -> str:
    return f"ep-{endpoint_id.hex}-{index}"


async def _endpoint(session: AsyncSession, endpoint_id: str) -> Endpoint:
    endpoint = await EndpointRepository(session).get(system_scope(), uuid.UUID(endpoint_id))
    if endpoint is None:
        raise StepError("The endpoint no longer exists")
    return endpoint


async def _provider(session: AsyncSession, cluster_id: uuid.UUID) -> ClusterProvider:
    return await _clusters(session).provider_for(system_scope(), cluster_id)


# --- deploy / scale ----------------------------------------------------------------------------


@engine.step("validate", max_attempts=1)
async def validate(run_id: str, endpoint_id: str) -> list[dict[str, Any]]:
    async with session_scope(engine.context().session_factory) as session:
        endpoint = await _endpoint(session, endpoint_id)
        if endpoint.status is not EndpointStatus.DEPLOYING:
            raise StepError(f"The endpoint is {endpoint.status.value}, not DEPLOYING")
        placements: list[dict[str, Any]] = endpoint.plan.get("placements", [])
        if len(placements) < endpoint.replicas:
            raise StepError("The endpoint's plan does not place every replica; deploy again")
        await engine.note(run_id, "validate", f"{endpoint.replicas} replica(s) placed")
        return placements[: endpoint.replicas]


def _clusters(session: AsyncSession) -> ClusterService:
    parts = engine.context()
    return ClusterService(
        session,
        parts.keyring,
        parts[CLUSTER_CONNECTOR],
        OrganizationService(session, parts.references),
        parts.references,
    )


async def _on_kubernetes(session: AsyncSession, endpoint: Endpoint) -> bool:
    clusters = _clusters(session)
    placements: list[dict[str, Any]] = endpoint.plan.get("placements", [])
    for cluster_id in {placement["cluster_id"] for placement in placements}:
        cluster = await clusters.get(system_scope(), uuid.UUID(cluster_id))
        if cluster.provider is ClusterProviderKind.KUBERNETES:
            return True
    return False


def _needs_path(template_command: list[str]) -> bool:
    return any("{model_path}" in argument for argument in template_command)


@engine.step("prepare_model", max_attempts=3, timeout_seconds=3600)
async def prepare_model(run_id: str, endpoint_id: str) -> str | None:
    """The path (or repository id) the runtime loads the model from; None when the runtime
    needs no files (the simulator)."""
    templates = engine.context()[RUNTIME_TEMPLATES]
    async with session_scope(engine.context().session_factory) as session:
        endpoint = await _endpoint(session, endpoint_id)
        if not _needs_path(templates.get(endpoint.runtime).command):
            await engine.note(run_id, "prepare_model", "the runtime loads no model files")
            return None
        model = await load_model(session, endpoint.model_id)
        if model is None:
            raise StepError("The endpoint's model no longer exists")
        files = await model_files(session, model.id)
        if await _on_kubernetes(session, endpoint):
            # The pod fetches the weights itself, into the cluster's model-cache volume.
            if model.repo_id:
                await engine.note(run_id, "prepare_model", f"the pods fetch {model.repo_id}")
                return model.repo_id
            raise StepError(
                "The model's files are in budapp's storage; runtimes on Kubernetes load a "
                "model by repository id (register the model with repo_id)"
            )
        if not files:
            if model.repo_id:
                await engine.note(run_id, "prepare_model", f"the runtime fetches {model.repo_id}")
                return model.repo_id
            raise StepError("The model has no files for the runtime to load")
    parts = engine.context()
    cache = parts.settings.data_dir / "model-cache" / str(model.id)
    storage = parts[STORAGE]
    for position, file in enumerate(files, start=1):
        target = cache / file.path
        if target.exists() and target.stat().st_size == file.size:
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(target.name + ".partial")
        with partial.open("wb") as out:
            async for block in storage.read(file.object_key):
                out.write(block)
        partial.replace(target)
        await engine.note(run_id, "prepare_model", f"file {position} of {len(files)} ready")
    ggufs = sorted(file.path for file in files if file.path.endswith(".gguf"))
    return str(cache / ggufs[0]) if ggufs and len(ggufs) == len(files) else str(cache)


@engine.step("start_replicas", max_attempts=2, timeout_seconds=3600)
async def start_replicas(
    run_id: str, endpoint_id: str, placements: list[dict[str, Any]], model_path: str | None
) -> list[str]:
    factory = engine.context().session_factory
    async with session_scope(factory) as session:
        endpoint = await _endpoint(session, endpoint_id)
        model = await load_model(session, endpoint.model_id)
        served_name = model.name if model is not None else endpoint.name
        repository = EndpointRepository(session)
        existing = {replica.index: replica for replica in await repository.replicas(endpoint.id)}
        wanted = []
        for index, placement in enumerate(placements):
            spec = RuntimeSpec(
                runtime_id=runtime_id(endpoint.id, index),
                template=endpoint.runtime,
                model_name=served_name,
                model_path=model_path,
                context_length=endpoint.context_length,
                env=(
                    {"CUDA_VISIBLE_DEVICES": ",".join(map(str, placement["devices"]))}
                    if placement["device_kind"] == "gpu"
                    else {}
                ),
                placement=Placement(
                    node=placement["node"],
                    device_kind=placement["device_kind"],
                    device_count=len(placement["devices"]),
                    memory_bytes=placement.get("memory_bytes"),
                ),
                endpoint_id=str(endpoint.id),
            )
            replica = existing.get(index)
            if replica is None:
                replica = EndpointReplica(
                    endpoint_id=endpoint.id,
                    cluster_id=uuid.UUID(placement["cluster_id"]),
                    index=index,
                    runtime_id=spec.runtime_id,
                )
                repository.add(replica)
            replica.node = placement["node"]
            replica.devices = list(placement["devices"])
            replica.spec = spec.model_dump(mode="json")
            replica.state = ReplicaState.STARTING
            wanted.append((replica.cluster_id, spec))
        surplus = [replica for index, replica in existing.items() if index >= len(placements)]
    started = []
    for number, (cluster_id, spec) in enumerate(wanted, start=1):
        async with session_scope(factory) as session:
            provider = await _provider(session, cluster_id)

        async def progress(line: str, number: int = number) -> None:
            await engine.note(run_id, "start_replicas", f"replica {number}: {line}")

        status = await provider.deploy_runtime(spec, progress)
        await _record_replica(spec.runtime_id, status.state, status.url, status.message)
        if status.state is RuntimeState.FAILED:
            raise RuntimeError(f"replica {number} failed to start: {status.message}")
        started.append(spec.runtime_id)
        await engine.note(run_id, "start_replicas", f"replica {number} of {len(wanted)} started")
    for replica in surplus:  # scaled down
        await _stop_replica(replica.cluster_id, replica.runtime_id)
    return started


@engine.step("verify", max_attempts=5, interval_seconds=2.0, timeout_seconds=600)
async def verify(run_id: str, endpoint_id: str) -> int:
    factory = engine.context().session_factory
    async with session_scope(factory) as session:
        endpoint = await _endpoint(session, endpoint_id)
        replicas = [
            (replica.cluster_id, replica.runtime_id)
            for replica in await EndpointRepository(session).replicas(endpoint.id)
            if replica.index < endpoint.replicas
        ]
    for cluster_id, runtime in replicas:
        async with session_scope(factory) as session:
            provider = await _provider(session, cluster_id)
        status = await provider.runtime_status(runtime)
        await _record_replica(runtime, status.state, status.url, status.message)
        if status.state is not RuntimeState.RUNNING:
            raise RuntimeError(f"replica {runtime} is {status.state.value}: {status.message or ''}")
    await engine.note(run_id, "verify", f"{len(replicas)} replica(s) healthy")
    return len(replicas)


@engine.step("activate", max_attempts=3)
async def activate(_run_id: str, endpoint_id: str) -> None:
    async with session_scope(engine.context().session_factory) as session:
        endpoint = await _endpoint(session, endpoint_id)
        if endpoint.status is not EndpointStatus.RUNNING:
            await move_status(session, endpoint, EndpointStatus.RUNNING, None)
        endpoint.deployed_at = utcnow()
        await _tell_owner(
            session,
            endpoint,
            "endpoint.ready",
            f"Endpoint {endpoint.name} is running",
            f"{endpoint.replicas} replica(s) of {endpoint.runtime} are serving.",
        )


async def _deploy_failed(arguments: dict[str, Any], message: str) -> None:
    async with session_scope(engine.context().session_factory) as session:
        endpoint = await EndpointRepository(session).get(
            system_scope(), uuid.UUID(arguments["endpoint_id"])
        )
        if endpoint is None or endpoint.status is EndpointStatus.ERROR:
            return
        if EndpointStatus.ERROR in _allowed(endpoint):
            await move_status(session, endpoint, EndpointStatus.ERROR, message[:2000])
        await _tell_owner(
            session,
            endpoint,
            "endpoint.failed",
            f"Endpoint {endpoint.name} failed to deploy",
            message,
            severity=Severity.ERROR,
        )


async def _deploy_body(run_id: str, arguments: dict[str, Any]) -> None:
    endpoint_id = arguments["endpoint_id"]
    placements = await validate(run_id, endpoint_id)
    model_path = await prepare_model(run_id, endpoint_id)
    await start_replicas(run_id, endpoint_id, placements, model_path)
    await verify(run_id, endpoint_id)
    await activate(run_id, endpoint_id)


async def _mark_cancelled(session: AsyncSession, run: WorkflowRun) -> None:
    endpoint = await EndpointRepository(session).get(system_scope(), run.resource_id)
    if endpoint is not None and endpoint.status is EndpointStatus.DEPLOYING:
        await move_status(
            session, endpoint, EndpointStatus.ERROR, "Deployment cancelled; undeploy to clean up"
        )


async def _deploy_again(session: AsyncSession, run: WorkflowRun) -> None:
    endpoint = await EndpointRepository(session).get(system_scope(), run.resource_id)
    if endpoint is None:
        raise StepError("The endpoint no longer exists")
    if endpoint.status is not EndpointStatus.DEPLOYING:
        await move_status(session, endpoint, EndpointStatus.DEPLOYING, "deploying (retry)")


@engine.definition(
    DEPLOY, "endpoint", DEPLOY_STEPS, on_cancel=_mark_cancelled, before_retry=_deploy_again
)
async def deploy_workflow(run_id: str) -> None:
    await engine.execute(
        run_id, lambda arguments: _deploy_body(run_id, arguments), on_failure=_deploy_failed
    )


@engine.definition(
    SCALE, "endpoint", DEPLOY_STEPS, on_cancel=_mark_cancelled, before_retry=_deploy_again
)
async def scale_workflow(run_id: str) -> None:
    await engine.execute(
        run_id, lambda arguments: _deploy_body(run_id, arguments), on_failure=_deploy_failed
    )


# --- undeploy / delete -------------------------------------------------------------------------


@engine.step("stop_replicas", max_attempts=3, timeout_seconds=600)
async def stop_replicas(run_id: str, endpoint_id: str) -> int:
    async with session_scope(engine.context().session_factory) as session:
        endpoint = await _endpoint(session, endpoint_id)
        replicas = [
            (replica.cluster_id, replica.runtime_id)
            for replica in await EndpointRepository(session).replicas(endpoint.id)
        ]
    for number, (cluster_id, runtime) in enumerate(replicas, start=1):
        await _stop_replica(cluster_id, runtime)
        await engine.note(run_id, "stop_replicas", f"replica {number} of {len(replicas)} stopped")
    return len(replicas)


@engine.step("finish", max_attempts=3)
async def finish(_run_id: str, endpoint_id: str) -> None:
    async with session_scope(engine.context().session_factory) as session:
        endpoint = await _endpoint(session, endpoint_id)
        if endpoint.status is not EndpointStatus.STOPPED:
            await move_status(session, endpoint, EndpointStatus.STOPPED, None)


@engine.step("remove", max_attempts=3)
async def remove(_run_id: str, endpoint_id: str) -> None:
    async with session_scope(engine.context().session_factory) as session:
        endpoint = await EndpointRepository(session).get(system_scope(), uuid.UUID(endpoint_id))
        if endpoint is None:
            return  # already deleted by an earlier attempt
        endpoint.status = EndpointStatus.STOPPED
        endpoint.deleted_at = utcnow()
        publish_status(session, endpoint)


async def _stop_failed(arguments: dict[str, Any], message: str) -> None:
    async with session_scope(engine.context().session_factory) as session:
        endpoint = await EndpointRepository(session).get(
            system_scope(), uuid.UUID(arguments["endpoint_id"])
        )
        if endpoint is None:
            return
        if EndpointStatus.ERROR in _allowed(endpoint):
            await move_status(session, endpoint, EndpointStatus.ERROR, message[:2000])
        await _tell_owner(
            session,
            endpoint,
            "endpoint.failed",
            f"Endpoint {endpoint.name} could not be stopped",
            message,
            severity=Severity.ERROR,
        )


@engine.definition(UNDEPLOY, "endpoint", STOP_STEPS)
async def undeploy_workflow(run_id: str) -> None:
    async def body(arguments: dict[str, Any]) -> None:
        await stop_replicas(run_id, arguments["endpoint_id"])
        await finish(run_id, arguments["endpoint_id"])

    await engine.execute(run_id, body, on_failure=_stop_failed)


@engine.definition(DELETE, "endpoint", DELETE_STEPS)
async def delete_workflow(run_id: str) -> None:
    async def body(arguments: dict[str, Any]) -> None:
        await stop_replicas(run_id, arguments["endpoint_id"])
        await remove(run_id, arguments["endpoint_id"])

    await engine.execute(run_id, body, on_failure=_stop_failed)


# --- shared --------------------------------------------------------------------------------


def _allowed(endpoint: Endpoint) -> frozenset[EndpointStatus]:
    return TRANSITIONS[endpoint.status]


async def _stop_replica(cluster_id: uuid.UUID, runtime: str) -> None:
    async with session_scope(engine.context().session_factory) as session:
        provider = await _provider(session, cluster_id)
    await provider.stop_runtime(runtime)
    await _record_replica(runtime, RuntimeState.STOPPED, None, None)


async def _record_replica(
    runtime: str, state: RuntimeState, url: str | None, message: str | None
) -> None:
    async with session_scope(engine.context().session_factory) as session:
        replica = await EndpointRepository(session).replica_by_runtime(runtime)
        if replica is None:
            return
        replica.state = ReplicaState(state.value)
        replica.url = url
        replica.message = (message or None) and message[:2000]


async def _tell_owner(
    session: AsyncSession,
    endpoint: Endpoint,
    kind: str,
    title: str,
    body: str,
    *,
    severity: Severity = Severity.INFO,
) -> None:
    if endpoint.created_by is None:
        return
    await notify(
        session,
        organization_id=endpoint.organization_id,
        user_id=endpoint.created_by,
        kind=kind,
        title=title,
        body=body,
        payload={"endpoint_id": str(endpoint.id), "project_id": str(endpoint.project_id)},
        severity=severity,
    )

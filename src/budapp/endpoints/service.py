"""Endpoints: the business rules of creating, planning, deploying, scaling, undeploying and
deleting a model endpoint. Long operations start workflows (endpoints/workflows.py); this
module decides whether they may start and records the intent in the request's transaction."""

from __future__ import annotations

import uuid
from dataclasses import asdict, dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from budapp.adapters.clusters.catalog import RuntimeTemplate, TemplateCatalog, TemplateError
from budapp.catalog.models import Model
from budapp.catalog.service import ModelService, ensure_deployable
from budapp.clusters.models import Cluster, ClusterStatus
from budapp.clusters.service import ClusterService
from budapp.core.auth import Principal, system_scope
from budapp.core.db import utcnow
from budapp.core.envelope import Page
from budapp.core.errors import Conflict, InvalidInput, NotFound
from budapp.core.roles import Permission, Role
from budapp.endpoints import planning
from budapp.endpoints.models import TRANSITIONS, Endpoint, EndpointStatus
from budapp.endpoints.repository import EndpointRepository
from budapp.endpoints.schemas import (
    EndpointCreate,
    EndpointFilter,
    EndpointMetricsQuery,
    EndpointMetricsRead,
    EndpointRead,
    EndpointStatusRead,
    EndpointUpdate,
    LogsRead,
    PlanRead,
    PlanRequest,
    ReplicaRead,
)
from budapp.events.service import EventType, publish_org_event
from budapp.projects.service import ProjectAccess, ProjectService
from budapp.usage.service import UsageService
from budapp.workflows.service import WorkflowService

DEPLOY, SCALE, UNDEPLOY, DELETE = (
    "endpoint.deploy",
    "endpoint.scale",
    "endpoint.undeploy",
    "endpoint.delete",
)
_SERVING_SETTINGS = ("cluster_id", "runtime", "context_length", "max_concurrency", "quantization")


class CapacityUnavailable(Conflict):
    """No cluster can take every replica; `details` says why, per cluster."""


def publish_status(session: AsyncSession, endpoint: Endpoint) -> None:
    publish_org_event(
        session,
        endpoint.organization_id,
        EventType.ENDPOINT_STATUS,
        {
            "endpoint_id": str(endpoint.id),
            "project_id": str(endpoint.project_id),
            "name": endpoint.name,
            "status": endpoint.status.value,
            "message": endpoint.status_message,
        },
    )


async def move_status(
    session: AsyncSession, endpoint: Endpoint, to: EndpointStatus, message: str | None = None
) -> None:
    """Moves an endpoint along TRANSITIONS, or answers 409 with the move that was refused."""
    allowed_from = [status for status, targets in TRANSITIONS.items() if to in targets]
    if not await EndpointRepository(session).move(endpoint, to, allowed_from, message):
        raise Conflict(
            f"An endpoint that is {endpoint.status.value} cannot become {to.value}",
            details=[{"status": endpoint.status.value, "requested": to.value}],
        )
    publish_status(session, endpoint)


def cluster_capacity(cluster: Cluster) -> planning.ClusterCapacity:
    """The planner's view of a cluster's last inventory (GPU devices expanded one by one)."""
    nodes = []
    for node in cluster.nodes:
        gpus: list[planning.DeviceSlot] = []
        for device in node.get("devices", []):
            if device.get("kind") != "gpu":
                continue
            for _ in range(int(device.get("count", 1))):
                free = device.get("memory_free_bytes") or device.get("memory_total_bytes") or 0
                gpus.append(planning.DeviceSlot(len(gpus), str(device.get("name")), int(free)))
        nodes.append(
            planning.NodeCapacity(
                name=str(node.get("name")),
                gpus=tuple(gpus),
                memory_free_bytes=int(node.get("memory_free_bytes", 0)),
                cpu_cores=int(node.get("cpu_cores", 0)),
            )
        )
    return planning.ClusterCapacity(
        str(cluster.id), cluster.name, cluster.status is ClusterStatus.AVAILABLE, tuple(nodes)
    )


def model_shape(model: Model, quantization: str | None) -> planning.ModelShape:
    if not model.parameter_count:
        raise InvalidInput(
            "The model's parameter count is unknown; set it (PUT /models/{id}) to plan memory",
            details=[{"field": "parameter_count", "model_id": str(model.id)}],
        )
    return planning.ModelShape(
        parameter_count=model.parameter_count,
        precision=quantization or model.quantization or model.dtype,
        max_context_length=model.context_length,
    )


@dataclass(frozen=True, slots=True)
class EndpointAccess:
    """An endpoint as one caller may use it: its project visible, their permission checked."""

    endpoint: Endpoint
    principal: Principal


class EndpointService:
    def __init__(  # noqa: PLR0917 - the domains an endpoint ties together
        self,
        session: AsyncSession,
        projects: ProjectService,
        models: ModelService,
        clusters: ClusterService,
        workflows: WorkflowService,
        templates: TemplateCatalog,
    ) -> None:
        self.session = session
        self.repository = EndpointRepository(session)
        self.projects = projects
        self.models = models
        self.clusters = clusters
        self.workflows = workflows
        self.templates = templates
        self.usage = UsageService(session, projects)

    # --- reads -------------------------------------------------------------------------------

    async def access(
        self, endpoint_id: uuid.UUID, by: Principal, permission: Permission
    ) -> EndpointAccess:
        """The endpoint if the caller may see its project (else NOT_FOUND) and holds
        `permission` there (else FORBIDDEN)."""
        endpoint = await self.repository.get(by.scope, endpoint_id)
        if endpoint is None:
            raise NotFound("endpoint", endpoint_id)
        try:
            await self.projects.access(endpoint.project_id, by, permission)
        except NotFound:
            raise NotFound("endpoint", endpoint_id) from None
        return EndpointAccess(endpoint, by)

    @staticmethod
    def read(access: EndpointAccess) -> EndpointRead:
        return EndpointRead.model_validate(access.endpoint)

    async def page(self, by: Principal, filters: EndpointFilter) -> Page[EndpointRead]:
        visible: list[uuid.UUID] | None = None
        if not by.has_role(Role.ORG_ADMIN):
            visible = [
                membership.project_id
                for membership in await self.projects.memberships(by.user_id)
                if Permission.ENDPOINT_VIEW in membership.permissions
            ]
        rows, total = await self.repository.page(by.scope, filters, projects=visible)
        return Page([EndpointRead.model_validate(row) for row in rows], total, filters)

    async def status(self, access: EndpointAccess) -> EndpointStatusRead:
        return await self._status(access.endpoint)

    async def _status(self, endpoint: Endpoint) -> EndpointStatusRead:
        replicas = await self.repository.replicas(endpoint.id)
        active = await self.workflows.active_for(endpoint.id)
        return EndpointStatusRead(
            id=endpoint.id,
            status=endpoint.status,
            status_message=endpoint.status_message,
            replicas_desired=endpoint.replicas,
            replicas_ready=sum(1 for replica in replicas if replica.state == "RUNNING"),
            replicas=[ReplicaRead.model_validate(replica) for replica in replicas],
            workflow_id=active.id if active else None,
        )

    async def metrics(
        self, access: EndpointAccess, query: EndpointMetricsQuery
    ) -> EndpointMetricsRead:
        endpoint = access.endpoint
        replicas = await self.repository.replicas(endpoint.id)
        calls = await self.usage.endpoint_metrics(
            access.principal.scope,
            endpoint.id,
            since=query.since,
            until=query.until,
            granularity=query.granularity,
        )
        return EndpointMetricsRead(
            endpoint_id=endpoint.id,
            since=query.since,
            until=query.until,
            granularity=query.granularity,
            replicas_desired=endpoint.replicas,
            replicas_ready=sum(1 for replica in replicas if replica.state == "RUNNING"),
            totals=calls.totals,
            series=calls.series,
        )

    async def logs(self, access: EndpointAccess, *, replica: int, lines: int) -> LogsRead:
        endpoint = access.endpoint
        rows = {row.index: row for row in await self.repository.replicas(endpoint.id)}
        if replica not in rows:
            raise NotFound("replica", replica)
        row = rows[replica]
        provider = await self.clusters.provider_for(access.principal.scope, row.cluster_id)
        return LogsRead(
            replica=replica,
            runtime_id=row.runtime_id,
            lines=await provider.runtime_logs(row.runtime_id, lines),
        )

    async def describe(self, endpoint: Endpoint, *, by: Principal) -> dict[str, Any]:
        """What a benchmark records of the endpoint it measures: the runtime, the replicas
        and the devices they run on, and the model."""
        model = await self.models.visible(by, endpoint.model_id)
        replicas: list[dict[str, Any]] = []
        names: set[str] = set()
        for replica in await self.repository.replicas(endpoint.id):
            if replica.index >= endpoint.replicas:
                continue
            cluster = await self.clusters.get(by.scope, replica.cluster_id)
            devices = device_names(cluster, replica.node, replica.devices)
            names.update(devices)
            replicas.append(
                {
                    "index": replica.index,
                    "state": replica.state.value,
                    "cluster": cluster.name,
                    "node": replica.node,
                    "devices": devices,
                }
            )
        return {
            "endpoint": {"id": str(endpoint.id), "name": endpoint.name},
            "runtime": endpoint.runtime,
            "replicas": replicas,
            "device": ", ".join(sorted(names)) or "cpu",
            "max_concurrency": endpoint.max_concurrency,
            "context_length": endpoint.context_length,
            "quantization": endpoint.quantization or model.quantization,
            "model": {
                "id": str(model.id),
                "name": model.name,
                "parameter_count": model.parameter_count,
                "architecture": model.architecture,
                "dtype": model.dtype,
            },
        }

    # --- planning --------------------------------------------------------------------------

    async def plan(self, by: Principal, data: PlanRequest) -> PlanRead:
        """`by` holds model:view in a project (`ModelsViewer`); the model is looked up in
        their organisation."""
        model = await self.models.visible(by, data.model_id)
        return await self._plan(
            model,
            organization_scope=by,
            cluster_id=data.cluster_id,
            runtime=data.runtime,
            replicas=data.replicas,
            context_length=data.context_length,
            concurrency=data.max_concurrency,
            quantization=data.quantization,
        )

    async def _plan(
        self,
        model: Model,
        *,
        organization_scope: Principal,
        cluster_id: uuid.UUID | None,
        runtime: str,
        replicas: int,
        context_length: int | None,
        concurrency: int,
        quantization: str | None,
    ) -> PlanRead:
        template = self._template(runtime)
        context = context_length or model.context_length or 4096
        if model.context_length and context > model.context_length:
            raise InvalidInput(
                f"context_length {context} exceeds the model's {model.context_length}",
                details=[{"field": "context_length", "max": model.context_length}],
            )
        estimate = planning.estimate_memory(
            model_shape(model, quantization),
            planning.Workload(context_length=context, concurrency=concurrency),
            runtime_overhead_bytes=template.overhead_mib * planning.MIB,
        )
        # A runtime that loads no weights (the simulator) needs only its own memory.
        needed = (
            template.overhead_mib * planning.MIB
            if template.device == "none"
            else estimate.total_bytes
        )
        if cluster_id is not None:
            clusters = [await self.clusters.get(organization_scope.scope, cluster_id)]
        else:
            clusters = await self.clusters.available_in(organization_scope.scope)
        result = planning.place(
            [cluster_capacity(cluster) for cluster in clusters],
            replicas=replicas,
            needed_bytes=needed,
            device=template.device,
        )
        if not clusters:
            result.reasons["*"] = "the organisation has no cluster"
        per_replica = len(result.replicas[0].devices) if result.replicas else 0
        return PlanRead(
            fits=result.fits,
            runtime=template.name,
            device=template.device,
            replicas=replicas,
            memory={
                **asdict(estimate),
                "total_bytes": estimate.total_bytes,
                "runtime_bytes": needed,
                "assumptions": list(estimate.assumptions),
            },
            devices_per_replica=per_replica,
            placements=[asdict(placement) for placement in result.replicas],
            reasons=result.reasons,
        )

    def _template(self, runtime: str) -> RuntimeTemplate:
        try:
            return self.templates.get(runtime)
        except TemplateError:
            raise InvalidInput(
                f"Unknown runtime {runtime!r}",
                details=[{"field": "runtime", "choices": self.templates.names}],
            ) from None

    # --- writes ------------------------------------------------------------------------------

    async def create(self, access: ProjectAccess, data: EndpointCreate) -> EndpointRead:
        """`access`: the body's project, where the caller holds endpoint:manage."""
        by = access.principal
        model = (await self.models.access(data.model_id, by, Permission.MODEL_VIEW)).model
        self._template(data.runtime)
        if data.cluster_id is not None:
            await self.clusters.get(by.scope, data.cluster_id)
        await self._ensure_name_free(data.project_id, data.name)
        endpoint = Endpoint(
            organization_id=access.project.organization_id,
            project_id=data.project_id,
            name=data.name,
            description=data.description,
            model_id=model.id,
            cluster_id=data.cluster_id,
            runtime=data.runtime,
            replicas=data.replicas,
            context_length=data.context_length or model.context_length,
            max_concurrency=data.max_concurrency,
            quantization=data.quantization,
            created_by=by.user_id,
        )
        self.repository.add(endpoint)
        await self.session.flush()
        return EndpointRead.model_validate(endpoint)

    async def update(self, access: EndpointAccess, data: EndpointUpdate) -> EndpointRead:
        endpoint, by = access.endpoint, access.principal
        changes = data.model_dump(exclude_unset=True)
        if set(changes) & set(_SERVING_SETTINGS) and endpoint.status in (
            EndpointStatus.DEPLOYING,
            EndpointStatus.RUNNING,
        ):
            raise Conflict(
                "Serving settings change only while the endpoint is not deployed; undeploy first"
            )
        if changes.get("name") is not None:
            await self._ensure_name_free(endpoint.project_id, changes["name"], endpoint.id)
        if changes.get("runtime") is not None:
            self._template(changes["runtime"])
        if changes.get("cluster_id") is not None:
            await self.clusters.get(by.scope, changes["cluster_id"])
        for field, value in changes.items():
            if value is None and field in ("name", "runtime", "max_concurrency"):
                continue  # required settings are not cleared
            setattr(endpoint, field, value)
        await self.session.flush()
        return EndpointRead.model_validate(endpoint)

    async def deploy(self, access: EndpointAccess) -> EndpointStatusRead:
        endpoint, by = access.endpoint, access.principal
        await self._ensure_idle(endpoint)
        model = (await self.models.access(endpoint.model_id, by, Permission.MODEL_VIEW)).model
        ensure_deployable(model)
        await self._plan_into(endpoint, model, by, replicas=endpoint.replicas)
        await move_status(self.session, endpoint, EndpointStatus.DEPLOYING, "deploying")
        await self._start(DEPLOY, endpoint, by)
        return await self._status(endpoint)

    async def scale(self, access: EndpointAccess, replicas: int) -> EndpointStatusRead:
        endpoint, by = access.endpoint, access.principal
        await self._ensure_idle(endpoint)
        if endpoint.status is not EndpointStatus.RUNNING:
            # Not deployed: only the desired count changes; the next deploy uses it.
            endpoint.replicas = replicas
            await self.session.flush()
            return await self._status(endpoint)
        model = (await self.models.access(endpoint.model_id, by, Permission.MODEL_VIEW)).model
        await self._plan_into(endpoint, model, by, replicas=replicas)
        endpoint.replicas = replicas
        await move_status(self.session, endpoint, EndpointStatus.DEPLOYING, "scaling")
        await self._start(SCALE, endpoint, by)
        return await self._status(endpoint)

    async def undeploy(self, access: EndpointAccess) -> EndpointStatusRead:
        endpoint, by = access.endpoint, access.principal
        await self._ensure_idle(endpoint)
        if EndpointStatus.STOPPED not in TRANSITIONS[endpoint.status]:
            raise Conflict(f"An endpoint that is {endpoint.status.value} is not deployed")
        await self._start(UNDEPLOY, endpoint, by)
        return await self._status(endpoint)

    async def delete(self, access: EndpointAccess) -> uuid.UUID | None:
        """Deletes at once what runs nowhere; otherwise starts the delete workflow (which
        stops the replicas first) and returns its id."""
        endpoint, by = access.endpoint, access.principal
        await self._ensure_idle(endpoint)
        replicas = await self.repository.replicas(endpoint.id)
        if endpoint.status in (EndpointStatus.PENDING, EndpointStatus.STOPPED) and not any(
            replica.state != "STOPPED" for replica in replicas
        ):
            endpoint.deleted_at = utcnow()
            await self.session.flush()
            return None
        run = await self._start(DELETE, endpoint, by)
        return run

    async def _plan_into(
        self, endpoint: Endpoint, model: Model, by: Principal, *, replicas: int
    ) -> None:
        plan = await self._plan(
            model,
            organization_scope=by,
            cluster_id=endpoint.cluster_id,
            runtime=endpoint.runtime,
            replicas=replicas,
            context_length=endpoint.context_length,
            concurrency=endpoint.max_concurrency,
            quantization=endpoint.quantization,
        )
        if not plan.fits:
            raise CapacityUnavailable(
                "No cluster has room for every replica",
                details=[{"cluster": name, "reason": why} for name, why in plan.reasons.items()],
            )
        endpoint.plan = plan.model_dump(mode="json")

    async def _ensure_idle(self, endpoint: Endpoint) -> None:
        active = await self.workflows.active_for(endpoint.id)
        if active is not None:
            raise Conflict(
                f"Workflow {active.id} ({active.kind}) is already running for this endpoint",
                details=[{"workflow_id": str(active.id), "kind": active.kind}],
            )

    async def _start(self, kind: str, endpoint: Endpoint, by: Principal) -> uuid.UUID:
        run = await self.workflows.start(
            kind,
            organization_id=endpoint.organization_id,
            project_id=endpoint.project_id,
            resource_id=endpoint.id,
            arguments={"endpoint_id": str(endpoint.id)},
            created_by=by.user_id,
        )
        return run.id

    async def _ensure_name_free(
        self, project_id: uuid.UUID, name: str, excluding: uuid.UUID | None = None
    ) -> None:
        if await self.repository.name_taken(project_id, name, excluding=excluding):
            raise Conflict(f"An endpoint named {name!r} already exists in this project")


def device_names(cluster: Cluster, node_name: str | None, indices: list[int]) -> list[str]:
    """The names of a replica's GPUs (by index among the node's GPUs); empty for CPU."""
    for node in cluster.nodes:
        if node.get("name") != node_name:
            continue
        gpus = [
            str(device.get("name"))
            for device in node.get("devices", [])
            if device.get("kind") == "gpu"
            for _ in range(int(device.get("count", 1)))
        ]
        return [gpus[index] for index in indices if 0 <= index < len(gpus)]
    return []


async def serving_replicas(
    session: AsyncSession, endpoint_id: uuid.UUID
) -> tuple[list[str], str | None]:
    """The OpenAI base URLs (ending in /v1) of a running endpoint's ready replicas and the
    model name they serve, for code acting once the caller was authorised (a benchmark)."""
    endpoint = await EndpointRepository(session).get(system_scope(), endpoint_id)
    if endpoint is None or endpoint.status is not EndpointStatus.RUNNING:
        return [], None
    urls, model = [], None
    for replica in await EndpointRepository(session).replicas(endpoint.id):
        if replica.index < endpoint.replicas and replica.state == "RUNNING" and replica.url:
            urls.append(f"{replica.url.rstrip('/')}/v1")
            model = model or (replica.spec or {}).get("model_name")
    return urls, model


# --- reference guards -------------------------------------------------------------------------


async def endpoints_using_model(session: AsyncSession, model_id: uuid.UUID) -> str | None:
    count = await EndpointRepository(session).count_live(Endpoint.model_id == model_id)
    return f"{count} endpoint(s)" if count else None


async def endpoints_on_cluster(session: AsyncSession, cluster_id: uuid.UUID) -> str | None:
    count = await EndpointRepository(session).count_live(Endpoint.cluster_id == cluster_id)
    return f"{count} endpoint(s)" if count else None


async def endpoints_in_project(session: AsyncSession, project_id: uuid.UUID) -> str | None:
    count = await EndpointRepository(session).count_live(Endpoint.project_id == project_id)
    return f"{count} endpoint(s)" if count else None

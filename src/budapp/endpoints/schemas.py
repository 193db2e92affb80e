from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

from pydantic import AwareDatetime, Field, StringConstraints, model_validator

from budapp.core.db import utcnow
from budapp.core.envelope import PageParams
from budapp.core.schemas import Description, Name, RecordRead, RequestSchema, ResponseSchema
from budapp.endpoints.models import EndpointStatus, ReplicaState
from budapp.usage.schemas import CallBucket, CallTotals

RuntimeName = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9_.-]{0,63}$")]
Replicas = Annotated[int, Field(ge=1, le=64)]
ContextLength = Annotated[int, Field(ge=128, le=10_000_000)]
Concurrency = Annotated[int, Field(ge=1, le=4096)]
Quantization = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.-]{1,64}$")]


class EndpointCreate(RequestSchema):
    project_id: uuid.UUID
    name: Name
    description: Description | None = None
    model_id: uuid.UUID
    # None: budapp picks a cluster of the organisation with room for every replica.
    cluster_id: uuid.UUID | None = None
    runtime: RuntimeName = "sim"
    replicas: Replicas = 1
    # Defaults to the model's own context length.
    context_length: ContextLength | None = None
    # Sequences served at once per replica (sizes the KV cache in the plan).
    max_concurrency: Concurrency = 8
    # Defaults to the model's quantization or precision.
    quantization: Quantization | None = None


class EndpointUpdate(RequestSchema):
    """Name and description change at any time; serving settings only while the endpoint is
    not deployed (a running one is redeployed to take them)."""

    name: Name | None = None
    description: Description | None = None
    cluster_id: uuid.UUID | None = None
    runtime: RuntimeName | None = None
    context_length: ContextLength | None = None
    max_concurrency: Concurrency | None = None
    quantization: Quantization | None = None


class ScaleRequest(RequestSchema):
    replicas: Replicas


class PlanRequest(RequestSchema):
    model_id: uuid.UUID
    cluster_id: uuid.UUID | None = None
    runtime: RuntimeName = "sim"
    replicas: Replicas = 1
    context_length: ContextLength | None = None
    max_concurrency: Concurrency = 8
    quantization: Quantization | None = None


class EndpointFilter(PageParams):
    project_id: uuid.UUID | None = None
    status: EndpointStatus | None = None
    model_id: uuid.UUID | None = None
    cluster_id: uuid.UUID | None = None
    name: Annotated[str, StringConstraints(max_length=255)] | None = None


class ReplicaRead(ResponseSchema):
    index: int
    runtime_id: str
    cluster_id: uuid.UUID
    node: str | None
    devices: list[int]
    state: ReplicaState
    url: str | None
    restarts: int
    message: str | None


class EndpointRead(RecordRead):
    organization_id: uuid.UUID
    project_id: uuid.UUID
    name: str
    description: str | None
    model_id: uuid.UUID
    cluster_id: uuid.UUID | None
    runtime: str
    replicas: int
    context_length: int | None
    max_concurrency: int
    quantization: str | None
    status: EndpointStatus
    status_message: str | None
    plan: dict[str, Any]
    created_by: uuid.UUID | None
    deployed_at: datetime | None


class EndpointStatusRead(ResponseSchema):
    id: uuid.UUID
    status: EndpointStatus
    status_message: str | None
    replicas_desired: int
    replicas_ready: int
    replicas: list[ReplicaRead]
    # The deploy/undeploy/scale/delete workflow under way, if any.
    workflow_id: uuid.UUID | None


class MemoryRead(ResponseSchema):
    weights_bytes: int
    kv_cache_bytes: int
    overhead_bytes: int
    total_bytes: int
    # What the runtime itself needs per replica (the simulator loads no weights).
    runtime_bytes: int
    assumptions: list[str]


class PlacementRead(ResponseSchema):
    cluster_id: uuid.UUID
    node: str
    device_kind: str
    devices: list[int]
    memory_bytes: int


class PlanRead(ResponseSchema):
    fits: bool
    runtime: str
    device: str
    replicas: int
    memory: MemoryRead
    devices_per_replica: int
    placements: list[PlacementRead]
    # Per cluster considered: why it cannot take every replica.
    reasons: dict[str, str]


class LogsRead(ResponseSchema):
    replica: int
    runtime_id: str
    lines: list[str]


# Hour buckets for up to a month, day buckets for up to a year: at most ~750 in a series.
METRICS_WINDOW_DEFAULT = timedelta(hours=24)
METRICS_WINDOW_MAX = {"hour": timedelta(days=31), "day": timedelta(days=366)}


class EndpointMetricsQuery(RequestSchema):
    # `until` first: the default of `since` is computed from it.
    until: AwareDatetime = Field(
        default_factory=utcnow, description="Calls that ended before this time; default now"
    )
    since: AwareDatetime = Field(
        default_factory=lambda data: (data.get("until") or utcnow()) - METRICS_WINDOW_DEFAULT,
        description="Calls that ended at or after this time; default 24 hours before `until`",
    )
    granularity: Literal["hour", "day"] = "hour"

    @model_validator(mode="after")
    def _window(self) -> EndpointMetricsQuery:
        self.since, self.until = self.since.astimezone(UTC), self.until.astimezone(UTC)
        if self.since >= self.until:
            raise ValueError("since must be before until")
        longest = METRICS_WINDOW_MAX[self.granularity]
        if self.until - self.since > longest:
            raise ValueError(
                f"The window is at most {longest.days} days with granularity={self.granularity}"
            )
        return self


class EndpointMetricsRead(ResponseSchema):
    endpoint_id: uuid.UUID
    since: datetime
    until: datetime
    granularity: Literal["hour", "day"]
    # As in GET /endpoints/{id}/status, now (not over the window).
    replicas_desired: int
    replicas_ready: int
    totals: CallTotals
    series: list[CallBucket]

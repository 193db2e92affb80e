from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AnyHttpUrl, Field, StringConstraints

from budapp.benchmarks.config import BenchmarkConfig
from budapp.benchmarks.models import BenchmarkStatus, TargetKind
from budapp.core.envelope import PageParams
from budapp.core.schemas import Description, Name, RecordRead, RequestSchema, ResponseSchema

ModelName = Annotated[str, StringConstraints(min_length=1, max_length=255)]


class EndpointTarget(RequestSchema):
    """A deployed endpoint of the project, called at its replicas' own URLs."""

    kind: Literal["endpoint"]
    endpoint_id: uuid.UUID


class RouterTarget(RequestSchema):
    """A router of the project, called through budapp's gateway with an API key minted for
    the run (revoked when it ends)."""

    kind: Literal["router"]
    router_id: uuid.UUID


class UrlTarget(RequestSchema):
    """Any OpenAI-compatible base URL (ending in /v1); the credential's key, if given, is
    sent only there, and only if the credential is bound to that URL."""

    kind: Literal["url"]
    base_url: AnyHttpUrl
    model: ModelName
    credential_id: uuid.UUID | None = None


Target = Annotated[EndpointTarget | RouterTarget | UrlTarget, Field(discriminator="kind")]


class BenchmarkCreate(BenchmarkConfig):
    name: Name
    description: Description | None = None
    target: Target


class BenchmarkFilter(PageParams):
    status: BenchmarkStatus | None = None
    target_kind: TargetKind | None = None
    endpoint_id: uuid.UUID | None = None
    project_id: uuid.UUID | None = None
    search: str | None = Field(default=None, max_length=255)


class BenchmarkRead(RecordRead):
    organization_id: uuid.UUID
    project_id: uuid.UUID
    name: str
    description: str | None
    target_kind: TargetKind
    endpoint_id: uuid.UUID | None
    router_id: uuid.UUID | None
    credential_id: uuid.UUID | None
    url: str | None
    model: str
    config: dict[str, Any]
    snapshot: dict[str, Any]
    status: BenchmarkStatus
    status_message: str | None
    partial: bool
    workflow_id: uuid.UUID | None
    api_key_id: uuid.UUID | None
    progress: dict[str, Any]
    created_by: uuid.UUID | None
    started_at: datetime | None
    finished_at: datetime | None
    # `budapp bench run ...`: the same benchmark from the command line, anywhere.
    command: str = ""


class BenchmarkResults(ResponseSchema):
    id: uuid.UUID
    status: BenchmarkStatus
    partial: bool
    stages: list[dict[str, Any]]
    summary: dict[str, Any]
    capacity: dict[str, Any] | None


class RequestRecordRead(ResponseSchema):
    stage: int
    sequence: int
    started_s: float
    status: str
    http_status: int | None
    error_kind: str | None
    error: str | None
    ttft_ms: float | None
    tpot_ms: float | None
    e2el_ms: float | None
    input_tokens: int | None
    output_tokens: int | None
    usage_reported: bool
    chunk_ms: list[float]
    chunk_tokens: list[int]


class RequestCursor(RequestSchema):
    """Keyset paging of a run's requests, in (stage, sequence) order: `after` is the
    `next_cursor` of the previous page."""

    after: Annotated[str, StringConstraints(pattern=r"^\d{1,6}:\d{1,10}$")] | None = None
    stage: int | None = Field(default=None, ge=0, le=1000)
    status: Literal["ok", "error", "aborted"] | None = None
    limit: int = Field(default=100, ge=1, le=1000)


class RequestPage(ResponseSchema):
    data: list[RequestRecordRead]
    meta: dict[str, Any]


ChartFormat = Literal["svg", "png"]
ChartKind = Literal["latency", "ttft", "tpot", "throughput"]
ExportFormat = Literal["json", "csv", "jsonl"]


class Comparison(ResponseSchema):
    """The same metrics of each run side by side (the summary, or the stage picked per run),
    and each run's difference from the first."""

    runs: list[dict[str, Any]]
    metrics: list[str]
    deltas: list[dict[str, Any]]

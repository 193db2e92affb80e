from __future__ import annotations

import re
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import Field, StringConstraints, field_validator

from budapp.catalog.licenses import CommercialUse
from budapp.catalog.models import Modality, ModelSource, ScanStatus
from budapp.core.envelope import PageParams
from budapp.core.schemas import Description, Name, RecordRead, RequestSchema, ResponseSchema

Provider = Literal[
    "openai", "anthropic", "azure_openai", "aws_bedrock", "huggingface", "openai_compatible"
]
Tag = Annotated[
    str, StringConstraints(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9._:-]*$")
]
Tags = Annotated[list[Tag], Field(max_length=32)]
Sha256 = Annotated[str, StringConstraints(pattern=r"^[0-9a-fA-F]{64}$")]
RepoId = Annotated[
    str,
    StringConstraints(
        max_length=255, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*$"
    ),
]
Short = Annotated[str, StringConstraints(min_length=1, max_length=255, strip_whitespace=True)]
LicenseId = Annotated[str, StringConstraints(min_length=1, max_length=128, strip_whitespace=True)]


class ModelMetadata(RequestSchema):
    """What a person may state about a model; what the files say wins where both exist
    only until the person changes it again."""

    description: Description | None = None
    modality: Modality | None = None
    architecture: Short | None = None
    parameter_count: int | None = Field(default=None, ge=1, le=10**15)
    context_length: int | None = Field(default=None, ge=1, le=100_000_000)
    quantization: Annotated[str, StringConstraints(max_length=64)] | None = None
    license: LicenseId | None = None
    tags: Tags | None = None

    @field_validator("tags")
    @classmethod
    def _distinct(cls, tags: list[str] | None) -> list[str] | None:
        return None if tags is None else sorted(set(tags))


class CloudModelCreate(ModelMetadata):
    name: Name
    provider: Provider
    provider_model_id: Short
    credential_id: uuid.UUID


class CustomModelCreate(ModelMetadata):
    """Weights the organisation keeps elsewhere, registered by where they are."""

    name: Name
    uri: Annotated[
        str,
        StringConstraints(
            max_length=2000, pattern=r"^(s3|gs|hf|https?|file)://[^\s]+$", strip_whitespace=True
        ),
    ]


class LocalModelReference(ModelMetadata):
    """A Hugging Face repository the cluster fetches at deploy time (nothing is uploaded)."""

    name: Name
    repo_id: RepoId
    revision: Annotated[str, StringConstraints(max_length=255, pattern=r"^[\w./-]+$")] | None = None


class LocalModelForm(ModelMetadata):
    """The text fields of a `POST /models/local` multipart upload."""

    name: Name
    # Expected SHA-256 per uploaded file name.
    checksums: dict[str, Sha256] = Field(default_factory=dict, max_length=1000)


class ModelUpdate(ModelMetadata):
    name: Name | None = None


class ScanOverride(RequestSchema):
    reason: Annotated[str, StringConstraints(min_length=10, max_length=2000, strip_whitespace=True)]


class ModelFileRead(RecordRead):
    path: str
    size: int
    sha256: str


class ModelRead(RecordRead):
    organization_id: uuid.UUID
    name: str
    description: str | None
    source: ModelSource
    provider: str | None
    provider_model_id: str | None
    credential_id: uuid.UUID | None
    repo_id: str | None
    revision: str | None
    uri: str | None
    modality: Modality
    architecture: str | None
    parameter_count: int | None
    context_length: int | None
    quantization: str | None
    dtype: str | None
    file_format: str | None
    total_size: int
    license: str | None
    license_name: str | None = None
    license_commercial_use: CommercialUse | None = None
    # True when the license is not known to allow commercial use.
    license_flagged: bool = False
    tags: list[str]
    scan_status: ScanStatus
    scan_findings: list[dict[str, Any]]
    scanned_at: datetime | None
    scan_override_by: uuid.UUID | None
    scan_override_reason: str | None
    scan_override_at: datetime | None
    deployable: bool = False
    files: list[ModelFileRead] = Field(default_factory=list)


class ModelFilter(PageParams):
    source: ModelSource | None = None
    modality: Modality | None = None
    provider: Provider | None = None
    tag: Tag | None = None
    scan_status: ScanStatus | None = None
    search: Annotated[str, StringConstraints(min_length=1, max_length=255)] | None = None
    organization_id: uuid.UUID | None = None


class LeaderboardFilter(PageParams):
    metric: Annotated[str, StringConstraints(min_length=1, max_length=64)] | None = None
    kind: Literal["benchmark", "evaluation"] | None = None
    # Rank models (their best result), or endpoints (each endpoint's best result).
    by: Literal["model", "endpoint"] = "model"
    conditions: Annotated[str, StringConstraints(min_length=1, max_length=255)] | None = None
    runtime: Annotated[str, StringConstraints(min_length=1, max_length=64)] | None = None
    device: Annotated[str, StringConstraints(min_length=1, max_length=255)] | None = None


class LeaderboardEntry(ResponseSchema):
    # Rank among the entries of the same metric and the same conditions.
    rank: int
    metric: str
    conditions: str
    model_id: uuid.UUID
    model_name: str
    endpoint_id: uuid.UUID | None = None
    endpoint_name: str | None = None
    runtime: str | None = None
    device: str | None = None
    # The best result for the metric (max, or min where lower is better).
    value: float
    higher_is_better: bool
    results: int
    last_recorded_at: datetime


@dataclass(frozen=True, slots=True)
class ModelResult:
    """A result another domain reports for the leaderboard (a benchmark, an evaluation)."""

    organization_id: uuid.UUID
    model_id: uuid.UUID
    kind: Literal["benchmark", "evaluation"]
    name: str
    metric: str
    value: float
    higher_is_better: bool
    conditions: str
    source_id: uuid.UUID
    endpoint_id: uuid.UUID | None = None
    endpoint_name: str | None = None
    runtime: str | None = None
    device: str | None = None
    details: dict[str, Any] = field(default_factory=dict)


SAFE_FILE_PATH = re.compile(r"^(?!.*(^|/)\.\.?(/|$))[A-Za-z0-9._-][A-Za-z0-9._/ +-]{0,510}$")

from __future__ import annotations

import uuid
from typing import Annotated, Literal

from pydantic import AnyHttpUrl, Field, StringConstraints

from budapp.core.envelope import PageParams
from budapp.core.schemas import Description, RecordRead, RequestSchema, ResponseSchema
from budapp.routers.models import Strategy

# What clients send as `model`: no spaces or slashes trouble, as with OpenAI's model ids.
RouterName = Annotated[
    str, StringConstraints(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9][A-Za-z0-9._:/-]*$")
]
FallbackOn = Literal["5xx", "429", "timeout", "connect_error"]
ALL_FALLBACKS: list[FallbackOn] = ["5xx", "429", "timeout", "connect_error"]


class _TargetBase(RequestSchema):
    weight: float = Field(default=1.0, gt=0, le=1_000_000)
    # Lower is tried first; higher priorities are the fallbacks.
    priority: int = Field(default=0, ge=0, le=100)
    timeout_seconds: float = Field(default=60.0, gt=0, le=3600)
    rpm: int | None = Field(default=None, ge=1)
    tpm: int | None = Field(default=None, ge=1)


class UrlTarget(_TargetBase):
    kind: Literal["url"]
    base_url: AnyHttpUrl
    # The model name the backend expects; default: the router's own name.
    model: str | None = Field(default=None, min_length=1, max_length=255)
    credential_id: uuid.UUID | None = None


class EndpointTarget(_TargetBase):
    kind: Literal["endpoint"]
    endpoint_id: uuid.UUID
    model: str | None = Field(default=None, min_length=1, max_length=255)


class ModelTarget(_TargetBase):
    """A cloud model of the registry, called through its provider with its credential."""

    kind: Literal["model"]
    model_id: uuid.UUID


Target = Annotated[UrlTarget | EndpointTarget | ModelTarget, Field(discriminator="kind")]


class RouterCreate(RequestSchema):
    name: RouterName
    description: Description | None = None
    strategy: Strategy = Strategy.WEIGHTED
    targets: list[Target] = Field(min_length=1, max_length=64)
    fallback_on: list[FallbackOn] = Field(default_factory=lambda: list(ALL_FALLBACKS))
    cooldown_seconds: float = Field(default=30.0, ge=0, le=86400)
    # Attempts in all for one request (first try + retries on other targets).
    max_attempts: int = Field(default=3, ge=1, le=10)


class RouterUpdate(RequestSchema):
    not_null = frozenset(
        {"name", "strategy", "targets", "fallback_on", "cooldown_seconds", "max_attempts"}
    )

    name: RouterName | None = None
    description: Description | None = None
    strategy: Strategy | None = None
    targets: list[Target] | None = Field(default=None, min_length=1, max_length=64)
    fallback_on: list[FallbackOn] | None = None
    cooldown_seconds: float | None = Field(default=None, ge=0, le=86400)
    max_attempts: int | None = Field(default=None, ge=1, le=10)


class TargetRead(ResponseSchema):
    kind: Literal["url", "endpoint", "model"]
    base_url: str | None = None
    endpoint_id: uuid.UUID | None = None
    model_id: uuid.UUID | None = None
    model: str | None = None
    credential_id: uuid.UUID | None = None
    weight: float
    priority: int
    timeout_seconds: float
    rpm: int | None = None
    tpm: int | None = None


class RouterRead(RecordRead):
    organization_id: uuid.UUID
    project_id: uuid.UUID
    name: str
    description: str | None
    strategy: Strategy
    targets: list[TargetRead]
    fallback_on: list[str]
    cooldown_seconds: float
    max_attempts: int
    created_by: uuid.UUID | None


class RouterFilter(PageParams):
    search: str | None = Field(default=None, max_length=255)


class RateLimitsUpdate(RequestSchema):
    """Null removes a limit."""

    rpm: int | None = Field(default=None, ge=1)
    tpm: int | None = Field(default=None, ge=1)
    key_rpm: int | None = Field(default=None, ge=1)
    key_tpm: int | None = Field(default=None, ge=1)


class RateLimitsRead(ResponseSchema):
    project_id: uuid.UUID
    rpm: int | None
    tpm: int | None
    key_rpm: int | None
    key_tpm: int | None

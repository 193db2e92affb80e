from __future__ import annotations

import json
import uuid
from datetime import datetime
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    Field,
    HttpUrl,
    StringConstraints,
    UrlConstraints,
    field_validator,
    model_validator,
)

from budapp.core.envelope import PageParams
from budapp.core.schemas import Description, RecordRead, RequestSchema, ResponseSchema
from budapp.webhooks.models import DeliveryStatus

EVENT_PATTERN = r"^(\*|[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)*(\.\*)?)$"


def _plain_url(value: HttpUrl) -> HttpUrl:
    # Credentials in the URL would be stored and shown in clear; the secret signs instead.
    if value.username or value.password:
        raise ValueError("must not contain a user name or password")
    if value.fragment:
        raise ValueError("must not contain a fragment")
    return value


WebhookUrl = Annotated[
    HttpUrl,
    UrlConstraints(max_length=2048, allowed_schemes=["http", "https"]),
    AfterValidator(_plain_url),
]
EventPattern = Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=EVENT_PATTERN)]
EventPatterns = Annotated[list[EventPattern], Field(min_length=1, max_length=50)]


class WebhookCreate(RequestSchema):
    url: WebhookUrl
    description: Description | None = None
    # The event names it receives: "endpoint.ready", a family "endpoint.*", or "*" for all.
    events: EventPatterns
    active: bool = True
    # Super admins may create a webhook in another organization.
    organization_id: uuid.UUID | None = None

    @field_validator("events")
    @classmethod
    def _distinct(cls, value: list[str]) -> list[str]:
        return list(dict.fromkeys(value))


class WebhookUpdate(RequestSchema):
    not_null = frozenset({"url", "events", "active"})

    url: WebhookUrl | None = None
    description: Description | None = None
    events: EventPatterns | None = None
    active: bool | None = None


class WebhookRead(RecordRead):
    organization_id: uuid.UUID
    url: str
    description: str | None
    events: list[str]
    active: bool
    created_by: uuid.UUID | None


class WebhookCreated(WebhookRead):
    # Shown this once: sign-checking receivers need it; budapp never returns it again.
    secret: str


class WebhookSecret(ResponseSchema):
    id: uuid.UUID
    secret: str


class WebhookFilter(PageParams):
    active: bool | None = None
    organization_id: uuid.UUID | None = None


class DeliveryRead(ResponseSchema):
    id: uuid.UUID
    webhook_id: uuid.UUID
    event: str
    status: DeliveryStatus
    attempts: int
    response_status: int | None
    response_excerpt: str | None
    error: str | None
    duration_ms: int | None
    next_attempt_at: datetime | None
    last_attempt_at: datetime | None
    completed_at: datetime | None
    created_at: datetime
    payload: dict[str, Any]

    @model_validator(mode="before")
    @classmethod
    def _payload_from_body(cls, data: Any) -> Any:
        if isinstance(data, BaseModel | dict):
            return data
        fields = {name: getattr(data, name) for name in cls.model_fields if name != "payload"}
        return {**fields, "payload": json.loads(data.body)}


class DeliveryFilter(PageParams):
    status: DeliveryStatus | None = None

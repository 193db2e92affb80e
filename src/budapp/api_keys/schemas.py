from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Annotated, Literal

from pydantic import AfterValidator, AwareDatetime, Field, model_validator

from budapp.core.envelope import PageParams
from budapp.core.schemas import Description, Name, RecordRead, RequestSchema, ResponseSchema

MAX_LIFETIME = timedelta(days=3650)


def _future(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    now = datetime.now(UTC)
    if value <= now:
        raise ValueError("must be in the future")
    if value > now + MAX_LIFETIME:
        raise ValueError("must be within ten years")
    return value


class ApiKeyCreate(RequestSchema):
    name: Name
    description: Description | None = None
    # Either an instant or a number of days; neither: the key does not expire.
    expires_at: Annotated[AwareDatetime | None, AfterValidator(_future)] = None
    expires_in_days: int | None = Field(default=None, ge=1, le=3650)

    @model_validator(mode="after")
    def _one_expiry(self) -> ApiKeyCreate:
        if self.expires_at is not None and self.expires_in_days is not None:
            raise ValueError("give expires_at or expires_in_days, not both")
        return self

    def expiry(self, now: datetime) -> datetime | None:
        if self.expires_in_days is not None:
            return now + timedelta(days=self.expires_in_days)
        return self.expires_at


class ApiKeyRead(RecordRead):
    organization_id: uuid.UUID
    project_id: uuid.UUID
    name: str
    description: str | None
    prefix: str
    created_by: uuid.UUID | None
    expires_at: datetime | None
    revoked_at: datetime | None
    last_used_at: datetime | None
    status: Literal["active", "expired", "revoked"]


class ApiKeyCreated(ApiKeyRead):
    # The whole key, shown this once: budapp keeps only its hash.
    key: str


class ApiKeyFilter(PageParams):
    status: Literal["active", "expired", "revoked"] | None = None


class ApiKeyIdentityRead(ResponseSchema):
    key_id: uuid.UUID
    prefix: str
    project_id: uuid.UUID
    organization_id: uuid.UUID
    expires_at: datetime | None

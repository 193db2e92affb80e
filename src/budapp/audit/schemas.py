from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BeforeValidator, Field, model_validator

from budapp.core.schemas import RequestSchema, ResponseSchema


def _as_utc(value: datetime | None) -> datetime | None:
    # A time without an offset is read as UTC, the zone every record is stored in.
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=UTC)


Instant = Annotated[datetime | None, AfterValidator(_as_utc)]
Short = Annotated[str | None, Field(max_length=64)]


class AuditFilter(RequestSchema):
    actor_id: Short = None
    actor_type: Literal["user", "api_key", "service", "system"] | None = None
    action: Short = None
    resource_type: Short = None
    resource_id: Short = None
    since: Instant = None
    until: Instant = None
    # Narrows to one organization; the caller's own scope still bounds what is read.
    organization_id: uuid.UUID | None = None

    @model_validator(mode="after")
    def _ordered(self) -> AuditFilter:
        if self.since and self.until and self.since > self.until:
            raise ValueError("since must not be after until")
        return self


class AuditPageQuery(AuditFilter):
    # Keyset pagination, newest first: pass the previous page's meta.next_cursor.
    cursor: int | None = Field(default=None, ge=1)
    per_page: int = Field(default=50, ge=1, le=500)


class AuditExportQuery(AuditFilter):
    format: Literal["jsonl", "csv"] = "jsonl"


def _parsed(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str) else value


class AuditRead(ResponseSchema):
    id: uuid.UUID
    sequence: int
    created_at: datetime
    action: str
    resource_type: str
    resource_id: str | None
    actor_type: str
    actor_id: str | None
    actor_label: str | None
    organization_id: uuid.UUID | None
    ip_address: str | None
    user_agent: str | None
    request_id: str | None
    details: Annotated[dict[str, Any], BeforeValidator(_parsed)]
    previous_hash: str
    current_hash: str


class VerifyRequest(RequestSchema):
    from_sequence: int | None = Field(default=None, ge=1)
    to_sequence: int | None = Field(default=None, ge=1)

    @model_validator(mode="after")
    def _ordered(self) -> VerifyRequest:
        if self.from_sequence and self.to_sequence and self.from_sequence > self.to_sequence:
            raise ValueError("from_sequence must not be after to_sequence")
        return self


class BrokenRecord(ResponseSchema):
    sequence: int
    record_id: str | None
    reason: str


class VerifyResult(ResponseSchema):
    ok: bool
    checked: int
    first_sequence: int | None
    last_sequence: int | None
    first_broken: BrokenRecord | None

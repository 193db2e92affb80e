from __future__ import annotations

import uuid
from typing import Any, Literal

from pydantic import Field

from budapp.core.envelope import PageParams
from budapp.core.schemas import Description, Name, RecordRead, RequestSchema
from budapp.credentials.specs import AnySpec


class CredentialCreate(RequestSchema):
    name: Name
    description: Description | None = None
    # None: an organization-wide credential (org admins only).
    project_id: uuid.UUID | None = None
    # Super admins may create a credential in another organization.
    organization_id: uuid.UUID | None = None
    spec: AnySpec


class CredentialUpdate(RequestSchema):
    name: Name | None = None
    description: Description | None = None
    # Fields of the credential's kind to change; secret fields left out keep their value.
    # The kind itself cannot change.
    spec: dict[str, Any] | None = Field(default=None, max_length=32)


class CredentialRead(RecordRead):
    organization_id: uuid.UUID
    project_id: uuid.UUID | None
    name: str
    description: str | None
    kind: str
    category: Literal["provider", "cloud"]
    config: dict[str, Any]
    # Secret fields, masked (last 4 characters at most); None when they cannot be decrypted.
    secrets: dict[str, str] | None
    status: Literal["ok", "unreadable"]
    error: str | None = None
    key_id: str | None


class CredentialFilter(PageParams):
    project_id: uuid.UUID | None = None
    kind: str | None = Field(default=None, max_length=32)
    category: Literal["provider", "cloud"] | None = None
    organization_id: uuid.UUID | None = None

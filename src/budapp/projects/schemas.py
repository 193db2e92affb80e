from __future__ import annotations

import json
import uuid
from datetime import datetime
from typing import Annotated, Any

from pydantic import AfterValidator, Field

from budapp.core.envelope import PageParams
from budapp.core.roles import Permission, ProjectRole
from budapp.core.schemas import Description, Name, RecordRead, RequestSchema, ResponseSchema

MAX_SETTINGS_BYTES = 16 * 1024


def _bounded(value: dict[str, Any]) -> dict[str, Any]:
    try:
        # Python's JSON parser accepts NaN and Infinity, which PostgreSQL's json type refuses.
        size = len(json.dumps(value, allow_nan=False))
    except ValueError:
        raise ValueError("settings must not contain NaN or Infinity") from None
    if size > MAX_SETTINGS_BYTES:
        raise ValueError(f"settings must serialise to at most {MAX_SETTINGS_BYTES} bytes")
    return value


# A project's free-form settings (not budapp's own `budapp.settings.Settings`).
ProjectSettings = Annotated[dict[str, Any], AfterValidator(_bounded)]
ExtraPermissions = Annotated[list[Permission], Field(max_length=len(Permission))]


class ProjectCreate(RequestSchema):
    name: Name
    description: Description | None = None
    settings: ProjectSettings = Field(default_factory=dict)
    # Super admins may create a project in another organization; others create in their own.
    organization_id: uuid.UUID | None = None


class ProjectUpdate(RequestSchema):
    not_null = frozenset({"name", "settings"})

    name: Name | None = None
    description: Description | None = None
    settings: ProjectSettings | None = None


class ProjectRead(RecordRead):
    organization_id: uuid.UUID
    name: str
    description: str | None
    owner_id: uuid.UUID | None
    settings: dict[str, Any]


class ProjectFilter(PageParams):
    search: str | None = Field(default=None, max_length=255)
    organization_id: uuid.UUID | None = None


class MemberAdd(RequestSchema):
    user_id: uuid.UUID
    role: ProjectRole = ProjectRole.DEVELOPER
    extra_permissions: ExtraPermissions = Field(default_factory=list)


class MemberUpdate(RequestSchema):
    role: ProjectRole | None = None
    extra_permissions: ExtraPermissions | None = None


class MemberRead(ResponseSchema):
    user_id: uuid.UUID
    email: str
    name: str
    role: ProjectRole
    extra_permissions: list[Permission]
    # The role's permissions plus the extra ones.
    permissions: list[Permission]
    created_at: datetime


class Membership(ResponseSchema):
    """A user's place in one project, as /auth/me lists it."""

    project_id: uuid.UUID
    project_name: str
    role: ProjectRole
    permissions: list[Permission]

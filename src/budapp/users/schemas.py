from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

from pydantic import AfterValidator, Field, SecretStr, StringConstraints

from budapp.core.envelope import PageParams
from budapp.core.roles import Role
from budapp.core.schemas import Name, RecordRead, RequestSchema, ResponseSchema

# argon2 accepts any length, but an unbounded password is a cheap denial of service.
Password = Annotated[SecretStr, Field(min_length=1, max_length=1024)]


def _lower(value: str) -> str:
    return value.lower()


# Deliberately permissive: self-hosted installs use internal domains (`.local`, `.internal`,
# single-label hosts) that strict validators reject as "special use".
Email = Annotated[
    str,
    StringConstraints(strip_whitespace=True, max_length=320, pattern=r"^[^@\s]+@[^@\s]+$"),
    AfterValidator(_lower),
]


class UserCreate(RequestSchema):
    email: Email
    name: Name
    password: Password
    role: Role = Role.USER
    # Super admins may create users in another organization; others create in their own.
    organization_id: uuid.UUID | None = None


class UserUpdate(RequestSchema):
    name: Name | None = None
    email: Email | None = None
    password: Password | None = None
    # Required when users change their own password.
    current_password: Password | None = None
    is_active: bool | None = None


class RoleUpdate(RequestSchema):
    role: Role


class UserRead(RecordRead):
    organization_id: uuid.UUID
    email: str
    name: str
    role: Role
    is_active: bool
    last_login_at: datetime | None


class UserRoles(ResponseSchema):
    user_id: uuid.UUID
    role: Role
    # The role and every role below it in the hierarchy.
    effective_roles: list[Role]


class UserFilter(PageParams):
    organization_id: uuid.UUID | None = None
    role: Role | None = None
    is_active: bool | None = None
    search: str | None = Field(default=None, max_length=255)

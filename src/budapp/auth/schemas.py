from __future__ import annotations

import uuid
from typing import Annotated, Literal

from pydantic import Field, SecretStr

from budapp.core.roles import Role
from budapp.core.schemas import RequestSchema, ResponseSchema
from budapp.projects.schemas import Membership
from budapp.users.schemas import Email, Password

RefreshTokenValue = Annotated[SecretStr, Field(min_length=1, max_length=512)]


class LoginRequest(RequestSchema):
    email: Email
    password: Password


class RefreshRequest(RequestSchema):
    refresh_token: RefreshTokenValue


class LogoutRequest(RequestSchema):
    # End every session of the user, not just this one.
    all_sessions: bool = False


class TokenPair(ResponseSchema):
    access_token: str
    refresh_token: str
    token_type: Literal["bearer"] = "bearer"  # noqa: S105 - a token type, not a secret
    expires_in: int
    refresh_expires_in: int


class OrganizationSummary(ResponseSchema):
    id: uuid.UUID
    name: str


class Me(ResponseSchema):
    id: uuid.UUID
    email: str
    name: str
    role: Role
    effective_roles: list[Role]
    organization: OrganizationSummary
    projects: list[Membership]

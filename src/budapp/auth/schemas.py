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


RedirectTarget = Annotated[str, Field(min_length=1, max_length=2048)]


class LoginCodeRequest(RequestSchema):
    # The one-time code the callback handed to the redirect target.
    login_code: Annotated[SecretStr, Field(min_length=1, max_length=256)]


class SsoLogoutRequest(RequestSchema):
    # Where the provider should send the browser after its own logout.
    redirect_to: RedirectTarget | None = None


class SsoLogout(ResponseSchema):
    # Visit this to end the provider's session too; null when there is none to end.
    end_session_url: str | None


class IdentityProviderInfo(ResponseSchema):
    name: str
    issuer: str
    login_url: str


class IntrospectionRequest(RequestSchema):
    token: Annotated[SecretStr, Field(min_length=1, max_length=16384)]


class Introspection(ResponseSchema):
    active: bool
    user_id: uuid.UUID | None = None
    organization_id: uuid.UUID | None = None
    email: str | None = None
    role: Role | None = None

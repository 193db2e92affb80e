"""Who is calling: the `Principal`, the `TenantScope` only this module can mint, and the
`Annotated` dependencies routers use to require authentication and a platform role."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated, Any, Protocol

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy import ColumnElement, true
from sqlalchemy.ext.asyncio import AsyncSession

from budapp.core.components import Key, components
from budapp.core.deps import SessionDep
from budapp.core.errors import Forbidden, Unauthorized
from budapp.core.origin import Actor, set_actor
from budapp.core.roles import Role

_MINT = object()


class TenantScope:
    """The organisations a request may touch. Repositories filter every tenant-owned query
    through it; only `Principal.scope` creates one, so a query cannot be scoped by a value
    taken from user input."""

    __slots__ = ("_organization_id",)

    def __init__(self, organization_id: uuid.UUID | None, *, _key: object) -> None:
        if _key is not _MINT:
            raise TypeError("TenantScope is created by budapp.core.auth only")
        self._organization_id = organization_id

    @property
    def all_organizations(self) -> bool:
        return self._organization_id is None

    @property
    def organization_id(self) -> uuid.UUID | None:
        return self._organization_id

    def allows(self, organization_id: uuid.UUID) -> bool:
        return self._organization_id is None or self._organization_id == organization_id

    def where(self, column: Any) -> ColumnElement[bool]:
        if self._organization_id is None:
            return true()
        clause: ColumnElement[bool] = column == self._organization_id
        return clause


def system_scope() -> TenantScope:
    """Unrestricted scope for start-up tasks and the CLI, which act as the operator."""
    return TenantScope(None, _key=_MINT)


@dataclass(frozen=True, slots=True)
class Principal:
    user_id: uuid.UUID
    organization_id: uuid.UUID
    role: Role
    email: str
    session_id: uuid.UUID | None = None

    @property
    def actor(self) -> Actor:
        return Actor("user", str(self.user_id), self.organization_id, self.email)

    def has_role(self, role: Role) -> bool:
        return self.role.includes(role)

    @property
    def scope(self) -> TenantScope:
        organization = None if self.role is Role.SUPER_ADMIN else self.organization_id
        return TenantScope(organization, _key=_MINT)


class Authenticator(Protocol):
    async def authenticate(self, token: str, session: AsyncSession) -> Principal: ...


_bearer = HTTPBearer(auto_error=False, description="Access token from POST /auth/login")


async def current_principal(
    request: Request,
    session: SessionDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    if credentials is None:
        raise Unauthorized()
    principal = await components(request)[AUTHENTICATOR].authenticate(
        credentials.credentials, session
    )
    set_actor(session.sync_session, principal.actor)
    return principal


CurrentPrincipal = Annotated[Principal, Depends(current_principal)]
# The app's authenticator of bearer tokens (the auth domain provides it at start-up).
AUTHENTICATOR: Key[Authenticator] = Key("authenticator")


def require_role(role: Role) -> Callable[[Principal], Awaitable[Principal]]:
    async def dependency(principal: CurrentPrincipal) -> Principal:
        if not principal.has_role(role):
            raise Forbidden(f"Requires the {role.value} role")
        return principal

    return dependency


ProjectAdmin = Annotated[Principal, Depends(require_role(Role.PROJECT_ADMIN))]
OrgAdmin = Annotated[Principal, Depends(require_role(Role.ORG_ADMIN))]
SuperAdmin = Annotated[Principal, Depends(require_role(Role.SUPER_ADMIN))]

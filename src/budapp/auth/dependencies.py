from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from budapp.auth.service import AuthService, ClientInfo, MeService
from budapp.core.deps import SessionDep, request_origin
from budapp.organizations.dependencies import OrganizationServiceDep
from budapp.projects.dependencies import ProjectServiceDep
from budapp.users.dependencies import UserServiceDep


async def _auth_service(
    request: Request, session: SessionDep, users: UserServiceDep
) -> AuthService:
    state = request.app.state
    return AuthService(
        session,
        users,
        state.token_issuer,
        state.login_throttle,
        refresh_ttl_seconds=state.settings.refresh_token_ttl_seconds,
    )


async def _me_service(
    users: UserServiceDep, organizations: OrganizationServiceDep, projects: ProjectServiceDep
) -> MeService:
    return MeService(users, organizations, projects)


async def _client(request: Request) -> ClientInfo:
    origin = request_origin(request)
    return ClientInfo(address=origin.ip_address or "unknown", user_agent=origin.user_agent)


AuthServiceDep = Annotated[AuthService, Depends(_auth_service)]
MeServiceDep = Annotated[MeService, Depends(_me_service)]
Client = Annotated[ClientInfo, Depends(_client)]

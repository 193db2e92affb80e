from __future__ import annotations

import ipaddress
from typing import Annotated

from fastapi import Depends, Request

from budapp.auth.service import AuthService, ClientInfo, MeService
from budapp.core.deps import SessionDep
from budapp.organizations.dependencies import OrganizationServiceDep
from budapp.projects.dependencies import ProjectServiceDep
from budapp.users.dependencies import UserServiceDep


def _auth_service(request: Request, session: SessionDep, users: UserServiceDep) -> AuthService:
    state = request.app.state
    return AuthService(
        session,
        users,
        state.token_issuer,
        state.login_throttle,
        refresh_ttl_seconds=state.settings.refresh_token_ttl_seconds,
    )


def _me_service(
    users: UserServiceDep, organizations: OrganizationServiceDep, projects: ProjectServiceDep
) -> MeService:
    return MeService(users, organizations, projects)


def _client(request: Request) -> ClientInfo:
    peer = request.client.host if request.client else "unknown"
    address = peer
    trusted: list[str] = request.app.state.settings.trusted_proxies
    forwarded = request.headers.get("x-forwarded-for")
    if forwarded and peer in trusted:
        # The right-most address not added by one of our own proxies is the client.
        for hop in reversed([part.strip() for part in forwarded.split(",")]):
            if hop not in trusted:
                address = hop
                break
    try:
        address = str(ipaddress.ip_address(address))
    except ValueError:
        address = peer
    return ClientInfo(address=address, user_agent=request.headers.get("user-agent"))


AuthServiceDep = Annotated[AuthService, Depends(_auth_service)]
MeServiceDep = Annotated[MeService, Depends(_me_service)]
Client = Annotated[ClientInfo, Depends(_client)]

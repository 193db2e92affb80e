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
    trusted = [
        ipaddress.ip_network(entry, strict=False)
        for entry in request.app.state.settings.trusted_proxies
    ]
    address = peer
    forwarded = request.headers.get("x-forwarded-for")
    if forwarded and _within(peer, trusted):
        # The right-most address not added by one of our own proxies is the client.
        for hop in reversed([part.strip() for part in forwarded.split(",")]):
            if not _within(hop, trusted):
                address = hop
                break
    if _parse(address) is None:
        address = peer
    return ClientInfo(address=address, user_agent=request.headers.get("user-agent"))


def _parse(address: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(address)
    except ValueError:
        return None


def _within(address: str, networks: list[ipaddress.IPv4Network | ipaddress.IPv6Network]) -> bool:
    parsed = _parse(address)
    return parsed is not None and any(parsed in network for network in networks)


AuthServiceDep = Annotated[AuthService, Depends(_auth_service)]
MeServiceDep = Annotated[MeService, Depends(_me_service)]
Client = Annotated[ClientInfo, Depends(_client)]

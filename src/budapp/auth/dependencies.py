from __future__ import annotations

from datetime import timedelta
from typing import Annotated

from fastapi import Depends, Request

from budapp.auth.backchannel import BackchannelLogout
from budapp.auth.provisioning import Provisioner
from budapp.auth.service import AuthService, ClientInfo, IntrospectionService, MeService
from budapp.auth.sso import SsoConfig, SsoService
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
        password_login_for_all=(
            state.settings.identity_mode == "local" or state.settings.oidc_allow_password_login
        ),
    )


async def _sso_service(
    request: Request,
    session: SessionDep,
    users: UserServiceDep,
    organizations: OrganizationServiceDep,
    auth: Annotated[AuthService, Depends(_auth_service)],
) -> SsoService:
    state = request.app.state
    settings = state.settings
    return SsoService(
        session,
        state.identity_providers,
        Provisioner(session, users, organizations),
        auth,
        state.vault.keyring,
        SsoConfig(
            callback_url=f"{settings.resolved_public_url}{settings.api_prefix}/auth/oauth/callback",
            redirect_targets=settings.oidc_redirect_targets,
            login_ttl=timedelta(seconds=settings.oidc_login_ttl_seconds),
        ),
    )


async def _backchannel_logout(request: Request, session: SessionDep) -> BackchannelLogout:
    state = request.app.state
    return BackchannelLogout(session, state.identity_providers, state.window_counter)


async def _me_service(
    users: UserServiceDep, organizations: OrganizationServiceDep, projects: ProjectServiceDep
) -> MeService:
    return MeService(users, organizations, projects)


async def _client(request: Request) -> ClientInfo:
    origin = request_origin(request)
    return ClientInfo(address=origin.ip_address or "unknown", user_agent=origin.user_agent)


AuthServiceDep = Annotated[AuthService, Depends(_auth_service)]


async def _introspection_service(request: Request, session: SessionDep) -> IntrospectionService:
    return IntrospectionService(session, request.app.state.authenticator)


IntrospectionServiceDep = Annotated[IntrospectionService, Depends(_introspection_service)]
SsoServiceDep = Annotated[SsoService, Depends(_sso_service)]
MeServiceDep = Annotated[MeService, Depends(_me_service)]
BackchannelLogoutDep = Annotated[BackchannelLogout, Depends(_backchannel_logout)]
Client = Annotated[ClientInfo, Depends(_client)]

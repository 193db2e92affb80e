from __future__ import annotations

from datetime import timedelta
from typing import Annotated

from fastapi import Depends, Request

from budapp.auth.backchannel import BackchannelLogout
from budapp.auth.providers import IDENTITY_PROVIDERS, IdentityProviders
from budapp.auth.provisioning import Provisioner
from budapp.auth.service import AuthService, ClientInfo, IntrospectionService, MeService
from budapp.auth.sso import SsoConfig, SsoService
from budapp.auth.throttle import LOGIN_THROTTLE
from budapp.auth.tokens import TOKEN_ISSUER, TokenIssuer
from budapp.core.auth import AUTHENTICATOR
from budapp.core.components import components
from budapp.core.deps import SessionDep, request_origin
from budapp.organizations.dependencies import OrganizationServiceDep
from budapp.projects.dependencies import ProjectServiceDep
from budapp.users.dependencies import UserServiceDep


async def _auth_service(
    request: Request, session: SessionDep, users: UserServiceDep
) -> AuthService:
    state = components(request)
    settings = state.settings
    return AuthService(
        session,
        users,
        state[TOKEN_ISSUER],
        state[LOGIN_THROTTLE],
        refresh_ttl_seconds=settings.refresh_token_ttl_seconds,
        password_login_for_all=(
            settings.identity_mode == "local" or settings.oidc_allow_password_login
        ),
    )


async def _sso_service(
    request: Request,
    session: SessionDep,
    users: UserServiceDep,
    organizations: OrganizationServiceDep,
    auth: Annotated[AuthService, Depends(_auth_service)],
) -> SsoService:
    state = components(request)
    settings = state.settings
    return SsoService(
        session,
        state[IDENTITY_PROVIDERS],
        Provisioner(session, users, organizations),
        auth,
        state.keyring,
        SsoConfig(
            callback_url=f"{settings.resolved_public_url}{settings.api_prefix}/auth/oauth/callback",
            redirect_targets=settings.oidc_redirect_targets,
            login_ttl=timedelta(seconds=settings.oidc_login_ttl_seconds),
        ),
    )


async def _backchannel_logout(request: Request, session: SessionDep) -> BackchannelLogout:
    state = components(request)
    return BackchannelLogout(session, state[IDENTITY_PROVIDERS], state.window_counter)


async def _me_service(
    users: UserServiceDep, organizations: OrganizationServiceDep, projects: ProjectServiceDep
) -> MeService:
    return MeService(users, organizations, projects)


async def _client(request: Request) -> ClientInfo:
    origin = request_origin(request)
    return ClientInfo(address=origin.ip_address or "unknown", user_agent=origin.user_agent)


AuthServiceDep = Annotated[AuthService, Depends(_auth_service)]


async def _introspection_service(request: Request, session: SessionDep) -> IntrospectionService:
    return IntrospectionService(session, components(request)[AUTHENTICATOR])


IntrospectionServiceDep = Annotated[IntrospectionService, Depends(_introspection_service)]
SsoServiceDep = Annotated[SsoService, Depends(_sso_service)]
MeServiceDep = Annotated[MeService, Depends(_me_service)]
BackchannelLogoutDep = Annotated[BackchannelLogout, Depends(_backchannel_logout)]
Client = Annotated[ClientInfo, Depends(_client)]


async def _token_issuer(request: Request) -> TokenIssuer:
    return components(request)[TOKEN_ISSUER]


async def _identity_providers(request: Request) -> IdentityProviders:
    return components(request)[IDENTITY_PROVIDERS]


TokenIssuerDep = Annotated[TokenIssuer, Depends(_token_issuer)]
IdentityProvidersDep = Annotated[IdentityProviders, Depends(_identity_providers)]

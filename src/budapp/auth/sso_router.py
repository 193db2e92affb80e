"""Single sign-on routes: start a browser login at a provider, take its callback, hand the
tokens over, and log out of both budapp and the provider."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Query
from fastapi.responses import RedirectResponse
from starlette.responses import Response

from budapp.auth.dependencies import (
    BackchannelLogoutDep,
    Client,
    IdentityProvidersDep,
    SsoServiceDep,
)
from budapp.auth.schemas import (
    IdentityProviderInfo,
    LoginCodeRequest,
    SsoLogout,
    SsoLogoutRequest,
    TokenPair,
)
from budapp.core.auth import CurrentPrincipal
from budapp.core.deps import SettingsDep
from budapp.core.envelope import Envelope
from budapp.core.errors import (
    BadRequest,
    InvalidInput,
    NotFound,
    ServiceUnavailable,
    Unauthorized,
)
from budapp.core.http import errors

router = APIRouter(prefix="/auth/oauth", tags=["auth"])

ProviderName = Annotated[str | None, Query(max_length=64, pattern=r"^[a-z0-9][a-z0-9_-]*$")]
Target = Annotated[str | None, Query(max_length=2048)]
Short = Annotated[str | None, Query(max_length=2048)]


@router.get("/providers")
async def providers(
    settings: SettingsDep, configured: IdentityProvidersDep
) -> Envelope[list[IdentityProviderInfo]]:
    """The identity providers users may sign in with (empty in local identity mode)."""
    prefix = settings.api_prefix
    return Envelope(
        data=[
            IdentityProviderInfo(
                name=provider.name,
                issuer=provider.settings.issuer,
                login_url=f"{prefix}/auth/oauth/login?provider={provider.name}",
            )
            for provider in configured
        ]
    )


@router.get(
    "/login",
    status_code=302,
    response_class=RedirectResponse,
    responses=errors(NotFound, InvalidInput, ServiceUnavailable),
)
async def login(
    service: SsoServiceDep, provider: ProviderName = None, redirect_to: Target = None
) -> Response:
    """Start a browser login: redirects to the provider's authorization page (authorization
    code flow with PKCE). `redirect_to` must be one of the configured redirect targets; the
    browser returns there with a one-time `login_code` for `POST /auth/oauth/token`."""
    return RedirectResponse(await service.begin(provider, redirect_to), status_code=302)


@router.get(
    "/callback",
    response_model=Envelope[TokenPair],
    responses={
        302: {"description": "Back to the login's redirect target, with a one-time login_code"},
        **errors(Unauthorized, ServiceUnavailable),
    },
)
async def callback(
    service: SsoServiceDep,
    client: Client,
    state: Short = None,
    code: Short = None,
    error: Short = None,
) -> Response | Envelope[TokenPair]:
    """Where the provider sends the browser back. Without a redirect target the session
    tokens are the answer; with one, the browser is sent there with a one-time code."""
    result = await service.complete(state=state, code=code, error=error, client=client)
    if result.redirect_url is not None:
        return RedirectResponse(result.redirect_url, status_code=302)
    assert result.tokens is not None  # noqa: S101 - complete() returns one or the other
    return Envelope(data=result.tokens)


@router.post("/token", responses=errors(Unauthorized))
async def token(body: LoginCodeRequest, service: SsoServiceDep) -> Envelope[TokenPair]:
    """Exchange the one-time login code for budapp's session tokens."""
    return Envelope(data=await service.redeem(body.login_code.get_secret_value()))


@router.post("/logout", responses=errors(Unauthorized, InvalidInput))
async def logout(
    principal: CurrentPrincipal,
    service: SsoServiceDep,
    body: SsoLogoutRequest | None = None,
) -> Envelope[SsoLogout]:
    """End this session; when it came from a provider, also returns the provider's
    end-session URL for the browser to visit."""
    url = await service.logout(principal, body.redirect_to if body else None)
    return Envelope(data=SsoLogout(end_session_url=url))


@router.post(
    "/backchannel-logout",
    status_code=200,
    response_class=Response,
    responses={
        200: {"description": "The sessions the token names have ended (or none were open)"},
        **errors(BadRequest, ServiceUnavailable),
    },
)
async def backchannel_logout(
    service: BackchannelLogoutDep,
    logout_token: Annotated[str | None, Form(max_length=16384)] = None,
) -> Response:
    """OpenID Connect Back-Channel Logout: the identity provider posts a signed
    `logout_token` (form-encoded) when a user's session there ends; budapp ends the sessions
    that came from it. Configure this URL as the client's back-channel logout URL."""
    if not logout_token:
        raise BadRequest("The form field logout_token is required")
    await service.logout(logout_token)
    return Response(status_code=200, headers={"Cache-Control": "no-store"})

from __future__ import annotations

from fastapi import APIRouter

from budapp.auth.dependencies import AuthServiceDep, Client, MeServiceDep, TokenIssuerDep
from budapp.auth.schemas import LoginRequest, LogoutRequest, Me, RefreshRequest, TokenPair
from budapp.core.auth import CurrentPrincipal
from budapp.core.envelope import Envelope
from budapp.core.errors import RateLimited, Unauthorized
from budapp.core.http import errors

router = APIRouter(prefix="/auth", tags=["auth"])


@router.post("/login", responses=errors(Unauthorized, RateLimited))
async def login(body: LoginRequest, client: Client, service: AuthServiceDep) -> Envelope[TokenPair]:
    """Exchange e-mail and password for an access token and a refresh token."""
    return Envelope(data=await service.login(body, client))


@router.post("/refresh", responses=errors(Unauthorized))
async def refresh(body: RefreshRequest, service: AuthServiceDep) -> Envelope[TokenPair]:
    """Rotate a refresh token: the presented one is spent. Presenting a spent token again
    revokes the whole session."""
    return Envelope(data=await service.refresh(body.refresh_token.get_secret_value()))


@router.post("/logout", status_code=204, responses=errors(Unauthorized))
async def logout(
    principal: CurrentPrincipal, service: AuthServiceDep, body: LogoutRequest | None = None
) -> None:
    await service.logout(principal, all_sessions=bool(body and body.all_sessions))


@router.get("/me", responses=errors(Unauthorized))
async def me(principal: CurrentPrincipal, service: MeServiceDep) -> Envelope[Me]:
    return Envelope(data=await service.me(principal))


@router.get("/jwks", include_in_schema=True)
async def jwks(issuer: TokenIssuerDep) -> dict[str, list[dict[str, str]]]:
    """Public keys that verify budapp's access tokens, for sibling services."""
    return {"keys": [issuer.key.public_jwk()]}

"""OpenID Connect Back-Channel Logout 1.0: an identity provider tells budapp, server to server,
that a user logged out there (or was logged out by an administrator, or their provider session
expired), and budapp ends the sessions that came from it. Without it, a Keycloak logout leaves
budapp's sessions open until their refresh tokens run out.

The provider POSTs a signed logout token. It is checked like an ID token (the provider's keys,
issuer, audience = budapp's client id, expiry) plus what the specification adds: the
back-channel logout event, no nonce, a `jti`, and a `sid` or a `sub`. A token is accepted once;
a replay is refused, so a captured token cannot end sessions opened after it."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from budapp.adapters.cache import WindowCounter
from budapp.adapters.identity import ProviderUnavailable, TokenInvalid, unverified_issuer
from budapp.audit.service import AuditEntry, record_event
from budapp.auth.providers import IdentityProvider, IdentityProviders
from budapp.auth.repository import AuthSessionRepository, UserIdentityRepository
from budapp.core.db import utcnow
from budapp.core.errors import BadRequest, ServiceUnavailable
from budapp.core.logging import get_logger
from budapp.core.origin import Actor

BACKCHANNEL_LOGOUT_EVENT = "http://schemas.openid.net/event/backchannel-logout"
_REQUIRED_CLAIMS = ("iss", "aud", "iat", "exp", "jti", "events")
# How long a spent token's jti is remembered: at least its remaining lifetime, within bounds.
_MIN_REPLAY_WINDOW = 60
_MAX_REPLAY_WINDOW = 24 * 3600

log = get_logger("budapp.auth")


class LogoutTokenInvalid(BadRequest):
    pass


@dataclass(frozen=True, slots=True)
class LogoutResult:
    provider: str
    sessions_ended: int


class BackchannelLogout:
    def __init__(
        self, session: AsyncSession, providers: IdentityProviders, counter: WindowCounter
    ) -> None:
        self.session = session
        self.providers = providers
        self.counter = counter
        self.repository = AuthSessionRepository(session)

    async def logout(self, logout_token: str) -> LogoutResult:
        provider = self.providers.by_issuer(unverified_issuer(logout_token))
        if provider is None:
            raise LogoutTokenInvalid("The logout token is not from a configured identity provider")
        claims = await self._checked_claims(provider, logout_token)
        await self._spend(provider, claims)

        sid = claims.get("sid") if isinstance(claims.get("sid"), str) else None
        subject = claims.get("sub") if isinstance(claims.get("sub"), str) else None
        identity = await self._identity(provider, subject) if subject is not None else None
        ended = 0
        if subject is None or identity is not None:
            ended = await self.repository.revoke_provider_sessions(
                provider.name,
                user_id=identity.user_id if identity is not None else None,
                sid=sid,
                reason="provider_logout",
                now=utcnow(),
            )
        entry = AuditEntry(
            "auth.backchannel_logout",
            "user",
            str(identity.user_id) if identity is not None else None,
            identity.organization_id if identity is not None else None,
            {"provider": provider.name, "by": "sid" if sid else "sub", "sessions_ended": ended},
        )
        organization = identity.organization_id if identity is not None else None
        await record_event(self.session, entry, Actor("system", None, organization, provider.name))
        log.info("backchannel_logout", provider=provider.name, sessions_ended=ended)
        return LogoutResult(provider.name, ended)

    async def _checked_claims(self, provider: IdentityProvider, token: str) -> dict[str, Any]:
        try:
            claims = await provider.client.validate(
                token, audience=provider.settings.client_id, required=_REQUIRED_CLAIMS
            )
        except TokenInvalid as exc:
            log.warning("backchannel_logout_refused", provider=provider.name, reason=exc.reason)
            raise LogoutTokenInvalid(f"Invalid logout token: {exc.message}") from None
        except ProviderUnavailable:
            # A 5xx lets the provider retry once its keys can be fetched again.
            raise ServiceUnavailable(
                f"The identity provider {provider.name} cannot be reached to check this token"
            ) from None
        events = claims.get("events")
        if not isinstance(events, dict) or not isinstance(
            events.get(BACKCHANNEL_LOGOUT_EVENT), dict
        ):
            raise LogoutTokenInvalid("The token carries no back-channel logout event")
        if "nonce" in claims:
            raise LogoutTokenInvalid("A logout token must not carry a nonce")
        if not isinstance(claims.get("sid"), str) and not isinstance(claims.get("sub"), str):
            raise LogoutTokenInvalid("The logout token names neither a session (sid) nor a user")
        if not isinstance(claims.get("jti"), str) or not claims["jti"]:
            raise LogoutTokenInvalid("The logout token has no jti")
        return claims

    async def _spend(self, provider: IdentityProvider, claims: dict[str, Any]) -> None:
        remaining = int(float(claims["exp"]) - time.time()) + 60  # the validation leeway
        window = max(_MIN_REPLAY_WINDOW, min(remaining, _MAX_REPLAY_WINDOW))
        key = f"oidc-logout:{provider.name}:{claims['jti']}"
        if (await self.counter.increment(key, window)).count > 1:
            raise LogoutTokenInvalid("This logout token was already used")

    async def _identity(self, provider: IdentityProvider, subject: str) -> _Identity | None:
        found = await UserIdentityRepository(self.session).find(provider.settings.issuer, subject)
        return _Identity(found.user_id, found.organization_id) if found else None


@dataclass(frozen=True, slots=True)
class _Identity:
    user_id: uuid.UUID
    organization_id: uuid.UUID

"""Bearer tokens from identity providers: validated against the provider's published keys,
then resolved to the budapp user they describe (provisioned on first sight)."""

from __future__ import annotations

import asyncio
from typing import Any

from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.ext.asyncio import AsyncSession

from budapp.adapters.cache import WindowCounter
from budapp.adapters.identity import ProviderUnavailable, TokenInvalid, unverified_issuer
from budapp.audit.service import AuditEntry, record_event
from budapp.auth.providers import IdentityProvider, IdentityProviders
from budapp.auth.provisioning import Provisioner
from budapp.auth.service import TokenAuthenticator
from budapp.core.auth import Principal
from budapp.core.errors import ServiceUnavailable, Unauthorized
from budapp.core.http import is_database_busy
from budapp.core.logging import get_logger
from budapp.core.origin import Actor
from budapp.core.references import ReferenceGuard
from budapp.core.security import PasswordHasher
from budapp.organizations.service import OrganizationService
from budapp.users.models import User
from budapp.users.service import UserService

log = get_logger("budapp.auth")

# Rejected provider tokens are audited, but at most this many per issuer and minute: a flood
# of forged tokens must not turn into a flood of writes on the audit chain.
AUDITED_REJECTIONS_PER_MINUTE = 20
PROVISIONING_ATTEMPTS = 4


class TokenRejected(Unauthorized):
    # Keep the audit record of the rejection.
    commit = True


class BearerAuthenticator:
    """Routes a bearer token to whoever can verify it: budapp's own tokens to the local
    authenticator, a configured issuer's tokens to that provider. The unverified `iss` only
    picks the verifier; the verifier then checks it like every other claim."""

    def __init__(
        self,
        local: TokenAuthenticator,
        providers: IdentityProviders,
        *,
        own_issuer: str,
        counter: WindowCounter,
        hasher: PasswordHasher,
        references: ReferenceGuard,
    ) -> None:
        self.local = local
        self.providers = providers
        self.own_issuer = own_issuer
        self.counter = counter
        self.hasher = hasher
        self.references = references

    async def authenticate(self, token: str, session: AsyncSession) -> Principal:
        # Without providers there is nothing to route, nor for a token already checked.
        if not self.providers:
            return await self.local.authenticate(token, session)
        if (principal := self.local.cached(token)) is not None:
            return principal
        issuer = unverified_issuer(token)
        if issuer == self.own_issuer:
            return await self.local.authenticate(token, session)
        provider = self.providers.by_issuer(issuer)
        if provider is None:
            await self._reject(session, issuer or "none", "issuer")
            raise TokenRejected("Invalid or expired access token")
        try:
            claims = await provider.client.validate(
                token, audience=provider.settings.expected_audience
            )
        except TokenInvalid as exc:
            await self._reject(session, provider.name, exc.reason)
            raise TokenRejected(exc.message) from None
        except ProviderUnavailable:
            raise ServiceUnavailable(
                f"The identity provider {provider.name} cannot be reached to check this token"
            ) from None
        user = await self._provision(session, provider, claims)
        issued_at = claims.get("iat")
        valid_after = user.sessions_valid_after
        if (
            valid_after is not None
            and isinstance(issued_at, int | float)
            and issued_at < valid_after.timestamp()
        ):
            # "Log out everywhere" also voids provider tokens issued before it.
            raise Unauthorized("The session has ended; log in again")
        return Principal(
            user_id=user.id, organization_id=user.organization_id, role=user.role, email=user.email
        )

    async def _provision(
        self, session: AsyncSession, provider: IdentityProvider, claims: dict[str, Any]
    ) -> User:
        organizations = OrganizationService(session, self.references)
        users = UserService(session, self.hasher, organizations)
        provisioner = Provisioner(session, users, organizations)
        for attempt in range(PROVISIONING_ATTEMPTS):
            try:
                return await provisioner.user_for(provider, claims, login=False)
            except (IntegrityError, OperationalError) as exc:
                # Concurrent first requests of one subject: the losers start over and find
                # the user the winner created (nothing else is in this unit of work yet).
                last = attempt == PROVISIONING_ATTEMPTS - 1
                if last or not (isinstance(exc, IntegrityError) or is_database_busy(exc)):
                    raise
                await session.rollback()
                await asyncio.sleep(0.05 * (attempt + 1))
        raise AssertionError("unreachable")  # pragma: no cover

    async def _reject(self, session: AsyncSession, source: str, reason: str) -> None:
        log.warning("bearer_token_rejected", provider=source, reason=reason)
        count = await self.counter.increment(f"oidc-rejected:{source}", 60)
        if count.count > AUDITED_REJECTIONS_PER_MINUTE:
            return
        entry = AuditEntry(
            "auth.token_rejected", "user", None, None, {"provider": source, "reason": reason}
        )
        await record_event(session, entry, Actor("system", None, None, source))

from __future__ import annotations

import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from budapp.audit.service import AuditEntry, record_event
from budapp.auth.models import AuthSession, RefreshToken
from budapp.auth.principals import PrincipalCache
from budapp.auth.repository import AuthSessionRepository
from budapp.auth.schemas import Introspection, LoginRequest, Me, OrganizationSummary, TokenPair
from budapp.auth.throttle import LoginThrottle
from budapp.auth.tokens import TokenIssuer
from budapp.core.auth import Authenticator, Principal, system_scope
from budapp.core.db import utcnow
from budapp.core.errors import Forbidden, Unauthorized
from budapp.core.origin import Actor
from budapp.core.roles import Role
from budapp.core.security import hash_token
from budapp.organizations.service import OrganizationService
from budapp.projects.service import ProjectService
from budapp.users.models import User
from budapp.users.service import UserService

REFRESH_TOKEN_PREFIX = "bud_rt_"  # noqa: S105 - a public prefix, not a secret


class RefreshTokenReused(Unauthorized):
    # The session revocation (and its audit record) must be kept although the request fails.
    commit = True


class LoginFailed(Unauthorized):
    # The audit record of the failed attempt is kept although the request fails.
    commit = True


class PasswordLoginDisabled(Forbidden):
    commit = True

    def __init__(self) -> None:
        super().__init__("Password login is disabled: sign in through /auth/oauth/login")


@dataclass(frozen=True, slots=True)
class ClientInfo:
    address: str
    user_agent: str | None


class AuthService:
    def __init__(
        self,
        session: AsyncSession,
        users: UserService,
        issuer: TokenIssuer,
        throttle: LoginThrottle,
        *,
        refresh_ttl_seconds: int,
        password_login_for_all: bool = True,
    ) -> None:
        self.repository = AuthSessionRepository(session)
        self.session = session
        self.users = users
        self.issuer = issuer
        self.throttle = throttle
        self.refresh_ttl = timedelta(seconds=refresh_ttl_seconds)
        # False under single sign-on: only super admins keep a password (break-glass).
        self.password_login_for_all = password_login_for_all

    async def login(self, data: LoginRequest, client: ClientInfo) -> TokenPair:
        await self.throttle.before_attempt(data.email, client.address)
        user = await self.users.find_for_login(data.email)
        valid = await self.users.verify_password(user, data.password.get_secret_value())
        if user is None or not valid or not user.is_active:
            await self.throttle.failed(data.email)
            reason = "inactive" if user is not None and valid else "invalid_credentials"
            await self._audit(
                "auth.login_failed",
                user,
                {"email": data.email, "reason": reason},
                actor=Actor("user", str(user.id) if user else None, None, data.email),
            )
            # One message for every cause, so that the answer does not reveal which accounts exist.
            raise LoginFailed("Invalid e-mail or password")
        await self.throttle.succeeded(data.email)
        if not self.password_login_for_all and user.role is not Role.SUPER_ADMIN:
            await self._audit(
                "auth.login_failed",
                user,
                {"email": data.email, "reason": "password_login_disabled"},
                actor=_actor(user),
            )
            raise PasswordLoginDisabled
        await self.users.record_login(user, None)
        now = utcnow()
        auth_session = await self.open_session(user, client, now=now)
        return await self.issue(user, auth_session, now)

    async def open_session(
        self,
        user: User,
        client: ClientInfo,
        *,
        now: datetime,
        provider: str | None = None,
        provider_session_id: str | None = None,
    ) -> AuthSession:
        """Starts a login session (the family of refresh tokens) and audits the login."""
        auth_session = AuthSession(
            user_id=user.id,
            expires_at=now + self.refresh_ttl,
            client_address=client.address[:64],
            user_agent=(client.user_agent or "")[:512] or None,
            identity_provider=provider,
            provider_session_id=provider_session_id,
            created_at=now,
        )
        self.repository.add(auth_session)
        await self.session.flush()
        details = {"session_id": str(auth_session.id)}
        if provider is not None:
            details["provider"] = provider
        await self._audit("auth.login", user, details, actor=_actor(user))
        return auth_session

    async def resume_session(self, session_id: uuid.UUID, now: datetime) -> TokenPair:
        """Tokens for a session opened by a browser login, fetched with its one-time code."""
        auth_session = await self.repository.get(session_id)
        if auth_session is None or auth_session.revoked_at is not None:
            raise Unauthorized("The session has ended; log in again")
        user = await self.users.get_active(auth_session.user_id)
        if user is None or _voided(auth_session, user):
            raise Unauthorized("The session has ended; log in again")
        return await self.issue(user, auth_session, now)

    async def session_provider(self, principal: Principal) -> str | None:
        if principal.session_id is None:
            return None
        auth_session = await self.repository.get(principal.session_id)
        return auth_session.identity_provider if auth_session else None

    async def refresh(self, refresh_token: str) -> TokenPair:
        found = await self.repository.find_refresh_token(hash_token(refresh_token))
        if found is None:
            raise Unauthorized("Invalid refresh token")
        token, auth_session = found
        now = utcnow()
        if auth_session.revoked_at is not None or auth_session.expires_at <= now:
            raise Unauthorized("The session has ended; log in again")
        if not await self.repository.claim_refresh_token(token.id, now):
            # A rotated token presented again: it was copied. End the whole family, for the
            # thief and the rightful holder alike.
            await self.repository.revoke([auth_session.id], "refresh_token_reuse", now)
            user = await self.users.get_active(auth_session.user_id)
            await self._audit(
                "auth.refresh_token_reused",
                user,
                {"session_id": str(auth_session.id)},
                actor=_actor(user) if user else None,
            )
            raise RefreshTokenReused("Refresh token reuse detected; the session was revoked")
        if token.expires_at <= now:
            raise Unauthorized("Invalid refresh token")
        user = await self.users.get_active(auth_session.user_id)
        if user is None or _voided(auth_session, user):
            raise Unauthorized("The session has ended; log in again")
        return await self.issue(user, auth_session, now)

    async def logout(self, principal: Principal, *, all_sessions: bool) -> None:
        now = utcnow()
        if all_sessions:
            await self.repository.revoke_all_for_user(principal.user_id, "logout_all", now)
        elif principal.session_id is not None:
            await self.repository.revoke([principal.session_id], "logout", now)
        entry = AuditEntry(
            "auth.logout",
            "user",
            str(principal.user_id),
            principal.organization_id,
            {"all_sessions": all_sessions, "session_id": str(principal.session_id)},
        )
        await record_event(self.session, entry, principal.actor)

    async def audit_failure(
        self, provider: str, reason: str, details: dict[str, Any] | None = None
    ) -> None:
        """Audits a failed single sign-on attempt (no budapp user is known yet)."""
        entry = AuditEntry(
            "auth.login_failed",
            "user",
            None,
            None,
            {"provider": provider, "reason": reason, **(details or {})},
        )
        await record_event(self.session, entry, Actor("system", None, None, provider))

    async def _audit(
        self, action: str, user: User | None, details: dict[str, Any], *, actor: Actor | None
    ) -> None:
        entry = AuditEntry(
            action,
            "user",
            str(user.id) if user else None,
            user.organization_id if user else None,
            details,
        )
        await record_event(self.session, entry, actor)

    async def issue(self, user: User, auth_session: AuthSession, now: datetime) -> TokenPair:
        refresh_value = REFRESH_TOKEN_PREFIX + secrets.token_urlsafe(32)
        self.repository.add(
            RefreshToken(
                session_id=auth_session.id,
                token_hash=hash_token(refresh_value),
                expires_at=auth_session.expires_at,
            )
        )
        await self.session.flush()
        access, expires_in = self.issuer.issue(
            user_id=user.id,
            session_id=auth_session.id,
            organization_id=user.organization_id,
            email=user.email,
            role=user.role.value,
            now=now,
        )
        return TokenPair(
            access_token=access,
            refresh_token=refresh_value,
            expires_in=expires_in,
            refresh_expires_in=int((auth_session.expires_at - now).total_seconds()),
        )


def _actor(user: User) -> Actor:
    return Actor("user", str(user.id), user.organization_id, user.email)


class MeService:
    def __init__(
        self, users: UserService, organizations: OrganizationService, projects: ProjectService
    ) -> None:
        self.users = users
        self.organizations = organizations
        self.projects = projects

    async def me(self, principal: Principal) -> Me:
        user = await self.users.get(system_scope(), principal.user_id)
        organization = await self.organizations.get(system_scope(), user.organization_id)
        return Me(
            id=user.id,
            email=user.email,
            name=user.name,
            role=user.role,
            effective_roles=[role for role in Role if user.role.includes(role)],
            organization=OrganizationSummary(id=organization.id, name=organization.name),
            projects=await self.projects.memberships(user.id),
        )


class TokenAuthenticator:
    """Resolves an access token to a Principal: a valid signature is not enough, the session
    must still be open and the user active (so logout, deactivation and deletion take effect
    at once, not when the token expires). With a cache, a token already checked is answered
    from memory until a change to its user is announced or the cache's TTL passes."""

    def __init__(self, issuer: TokenIssuer, cache: PrincipalCache | None = None) -> None:
        self.issuer = issuer
        self.cache = cache if cache is not None and cache.enabled else None

    async def authenticate(self, token: str, session: AsyncSession) -> Principal:
        cache = self.cache
        if cache is None:
            return (await self._check(token, session))[0]
        key = cache.key(token)
        principal = cache.get(key)
        if principal is None:
            mark = cache.mark()
            principal, valid_until = await self._check(token, session)
            cache.put(key, principal, valid_until, mark)
        return principal

    def cached(self, token: str) -> Principal | None:
        """The principal of a token of budapp's checked a moment ago (a cache hit), or None."""
        return self.cache.get(self.cache.key(token)) if self.cache is not None else None

    async def _check(self, token: str, session: AsyncSession) -> tuple[Principal, float]:
        claims = self.issuer.decode(token)
        auth_session = await AuthSessionRepository(session).get(claims.session_id)
        now = utcnow()
        if (
            auth_session is None
            or auth_session.user_id != claims.user_id
            or auth_session.revoked_at is not None
            or auth_session.expires_at <= now
        ):
            raise Unauthorized("The session has ended; log in again")
        user = await UserService.lookup_active(session, claims.user_id)
        if user is None or _voided(auth_session, user):
            raise Unauthorized("The session has ended; log in again")
        principal = Principal(
            user_id=user.id,
            organization_id=user.organization_id,
            role=user.role,
            email=user.email,
            session_id=auth_session.id,
        )
        return principal, min(claims.expires_at, auth_session.expires_at.timestamp())


def _voided(auth_session: AuthSession, user: User) -> bool:
    valid_after = user.sessions_valid_after
    return valid_after is not None and auth_session.created_at < valid_after


class IntrospectionService:
    def __init__(self, session: AsyncSession, authenticator: Authenticator) -> None:
        self.session = session
        self.authenticator = authenticator

    async def introspect(self, token: str) -> Introspection:
        try:
            principal = await self.authenticator.authenticate(token, self.session)
        except Unauthorized:
            return Introspection(active=False)
        return Introspection(
            active=True,
            user_id=principal.user_id,
            organization_id=principal.organization_id,
            email=principal.email,
            role=principal.role,
        )

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, select, update

from budapp.auth.models import AuthSession, OidcLogin, RefreshToken, UserIdentity
from budapp.core.repository import Repository


class AuthSessionRepository(Repository):
    async def get(self, session_id: uuid.UUID) -> AuthSession | None:
        return await self.session.get(AuthSession, session_id)

    async def find_refresh_token(self, token_hash: str) -> tuple[RefreshToken, AuthSession] | None:
        statement = (
            select(RefreshToken, AuthSession)
            .join(AuthSession, AuthSession.id == RefreshToken.session_id)
            .where(RefreshToken.token_hash == token_hash)
        )
        row = (await self.session.execute(statement)).first()
        return (row[0], row[1]) if row else None

    async def claim_refresh_token(self, token_id: uuid.UUID, now: datetime) -> bool:
        """Marks the token used; False when another request already did (a replay)."""
        statement = (
            update(RefreshToken)
            .where(RefreshToken.id == token_id, RefreshToken.used_at.is_(None))
            .values(used_at=now, updated_at=now)
            .execution_options(synchronize_session=False)
        )
        result = await self.session.execute(statement)
        return bool(getattr(result, "rowcount", 0) == 1)

    async def revoke(self, session_ids: list[uuid.UUID], reason: str, now: datetime) -> None:
        await self._revoke_where(AuthSession.id.in_(session_ids), reason, now)

    async def revoke_all_for_user(self, user_id: uuid.UUID, reason: str, now: datetime) -> None:
        await self._revoke_where(AuthSession.user_id == user_id, reason, now)

    async def revoke_provider_sessions(
        self,
        provider: str,
        *,
        user_id: uuid.UUID | None,
        sid: str | None,
        reason: str,
        now: datetime,
    ) -> int:
        """Ends what an identity provider's logout names: the sessions with its session id
        `sid`, or every session of `user_id` through it. With both, the user's sessions whose
        sid was never recorded end too: they cannot be told apart, and a logout errs on the
        side of ending them."""
        condition = AuthSession.identity_provider == provider
        if user_id is not None and sid is not None:
            condition &= (AuthSession.user_id == user_id) & (
                (AuthSession.provider_session_id == sid) | AuthSession.provider_session_id.is_(None)
            )
        elif user_id is not None:
            condition &= AuthSession.user_id == user_id
        elif sid is not None:
            condition &= AuthSession.provider_session_id == sid
        else:
            return 0
        return await self._revoke_where(condition, reason, now)

    async def _revoke_where(self, condition: Any, reason: str, now: datetime) -> int:
        statement = (
            update(AuthSession)
            .where(condition, AuthSession.revoked_at.is_(None))
            .values(revoked_at=now, revoked_reason=reason, updated_at=now)
            .execution_options(synchronize_session=False)
        )
        result = await self.session.execute(statement)
        return int(getattr(result, "rowcount", 0) or 0)


class OidcLoginRepository(Repository):
    async def claim_state(self, state_hash: str, now: datetime) -> OidcLogin | None:
        """Spends a login's state: returns the login the first time, None when the state is
        unknown, expired or already spent (a replayed callback)."""
        statement = (
            update(OidcLogin)
            .where(
                OidcLogin.state_hash == state_hash,
                OidcLogin.used_at.is_(None),
                OidcLogin.expires_at > now,
            )
            .values(used_at=now, updated_at=now)
            .returning(OidcLogin.id)
            .execution_options(synchronize_session=False)
        )
        login_id = (await self.session.execute(statement)).scalar_one_or_none()
        return await self.session.get(OidcLogin, login_id) if login_id is not None else None

    async def claim_login_code(self, code_hash: str, now: datetime) -> uuid.UUID | None:
        """Spends a one-time login code; the session it stands for, or None."""
        statement = (
            update(OidcLogin)
            .where(OidcLogin.login_code_hash == code_hash, OidcLogin.expires_at > now)
            .values(login_code_hash=None, updated_at=now)
            .returning(OidcLogin.auth_session_id)
            .execution_options(synchronize_session=False)
        )
        result: uuid.UUID | None = (await self.session.execute(statement)).scalar_one_or_none()
        return result

    async def prune(self, now: datetime) -> None:
        """Forgets logins that ended more than an hour ago."""
        cutoff = now - timedelta(hours=1)
        statement = delete(OidcLogin).where(OidcLogin.expires_at < cutoff)
        await self.session.execute(statement.execution_options(synchronize_session=False))


class UserIdentityRepository(Repository):
    """Users' accounts at identity providers, by (issuer, subject)."""

    async def find(self, issuer: str, subject: str) -> UserIdentity | None:
        statement = select(UserIdentity).where(
            UserIdentity.issuer == issuer, UserIdentity.subject == subject
        )
        return await self.session.scalar(statement)

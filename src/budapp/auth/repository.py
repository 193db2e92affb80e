from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from budapp.auth.models import AuthSession, RefreshToken


class AuthSessionRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

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

    async def _revoke_where(self, condition: Any, reason: str, now: datetime) -> None:
        statement = (
            update(AuthSession)
            .where(condition, AuthSession.revoked_at.is_(None))
            .values(revoked_at=now, revoked_reason=reason, updated_at=now)
            .execution_options(synchronize_session=False)
        )
        await self.session.execute(statement)

    def add(self, row: AuthSession | RefreshToken) -> None:
        self.session.add(row)

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from budapp.core.db import Base, RecordMixin


class AuthSession(RecordMixin, Base):
    """One login: the family of refresh tokens issued from it, revoked as a whole on logout
    or when a rotated refresh token is presented again."""

    __tablename__ = "auth_sessions"
    # Session mechanics are audited as auth events (login, logout, reuse), not row by row.
    __audit__ = False

    user_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    expires_at: Mapped[datetime]
    revoked_at: Mapped[datetime | None] = mapped_column(default=None)
    revoked_reason: Mapped[str | None] = mapped_column(String(64), default=None)
    client_address: Mapped[str | None] = mapped_column(String(64), default=None)
    user_agent: Mapped[str | None] = mapped_column(String(512), default=None)


class RefreshToken(RecordMixin, Base):
    __tablename__ = "refresh_tokens"
    __audit__ = False

    session_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("auth_sessions.id", ondelete="CASCADE"), index=True
    )
    # SHA-256 of the token: the token itself is shown once and never stored.
    token_hash: Mapped[str] = mapped_column(String(64), unique=True, info={"secret": True})
    expires_at: Mapped[datetime]
    used_at: Mapped[datetime | None] = mapped_column(default=None)

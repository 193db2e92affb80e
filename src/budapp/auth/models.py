from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import ForeignKey, Index, String
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
    # The identity provider the login went through (None: password login).
    identity_provider: Mapped[str | None] = mapped_column(String(64), default=None)
    # The provider's own session id (the ID token's `sid`), which back-channel logout names.
    provider_session_id: Mapped[str | None] = mapped_column(String(255), default=None, index=True)


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


class UserIdentity(RecordMixin, Base):
    """A budapp user's account at an identity provider: the (issuer, subject) pair its tokens
    carry. Created on the first login through the provider (just-in-time provisioning)."""

    __tablename__ = "user_identities"
    __audit_resource__ = "user_identity"
    __table_args__ = (Index("ix_user_identities_issuer_subject", "issuer", "subject", unique=True),)

    user_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    organization_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("organizations.id", ondelete="CASCADE"), index=True
    )
    provider: Mapped[str] = mapped_column(String(64))
    issuer: Mapped[str] = mapped_column(String(512))
    subject: Mapped[str] = mapped_column(String(255))
    last_login_at: Mapped[datetime | None] = mapped_column(default=None, info={"audit": False})


class OidcLogin(RecordMixin, Base):
    """A browser login in flight: the state, nonce and PKCE verifier of one authorization
    request, kept server-side for a few minutes and spent by the callback. A successful
    callback that must send the browser elsewhere leaves a one-time login code here."""

    __tablename__ = "oidc_logins"
    __audit__ = False

    # SHA-256 of the `state` the browser carries: the state itself is never stored.
    state_hash: Mapped[str] = mapped_column(String(64), unique=True, info={"secret": True})
    provider: Mapped[str] = mapped_column(String(64))
    nonce_hash: Mapped[str] = mapped_column(String(64), info={"secret": True})
    # The PKCE verifier, sealed with the data keys (it must be sent back to the provider).
    verifier_key_id: Mapped[str] = mapped_column(String(64))
    verifier_sealed: Mapped[str] = mapped_column(String(255), info={"secret": True})
    redirect_to: Mapped[str | None] = mapped_column(String(2048), default=None)
    expires_at: Mapped[datetime] = mapped_column(index=True)
    used_at: Mapped[datetime | None] = mapped_column(default=None)
    # Set by a successful callback that redirects: SHA-256 of the one-time login code.
    login_code_hash: Mapped[str | None] = mapped_column(
        String(64), unique=True, default=None, info={"secret": True}
    )
    auth_session_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("auth_sessions.id", ondelete="CASCADE"), default=None
    )

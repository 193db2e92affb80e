from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from budapp.core.columns import string_enum, unique_live
from budapp.core.db import Base, RecordMixin, SoftDeleteMixin
from budapp.core.roles import Role


class User(RecordMixin, SoftDeleteMixin, Base):
    __tablename__ = "users"
    __audit_resource__ = "user"
    # E-mail is the login name, so it is unique across organisations (stored lower-cased).
    __table_args__ = (unique_live("ix_users_email", "email"),)

    organization_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("organizations.id", ondelete="RESTRICT"), index=True
    )
    email: Mapped[str] = mapped_column(String(320))
    name: Mapped[str] = mapped_column(String(255))
    # None for users who only sign in through an identity provider.
    password_hash: Mapped[str | None] = mapped_column(
        String(255), default=None, info={"secret": True}
    )
    role: Mapped[Role] = mapped_column(string_enum(Role), default=Role.USER)
    is_active: Mapped[bool] = mapped_column(default=True)
    # Logins are audited as auth events; the timestamp itself is bookkeeping.
    last_login_at: Mapped[datetime | None] = mapped_column(default=None, info={"audit": False})
    # Sessions started before this instant are void: set on password change and deactivation.
    sessions_valid_after: Mapped[datetime | None] = mapped_column(
        default=None, info={"audit": False}
    )

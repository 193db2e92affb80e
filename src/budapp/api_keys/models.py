from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from budapp.core.db import Base, RecordMixin


class ApiKey(RecordMixin, Base):
    """A project's key for the gateway. Only its SHA-256 is stored; `prefix` is the start of
    the key, kept so people can tell their keys apart."""

    __tablename__ = "api_keys"
    __audit_resource__ = "api_key"
    __audit_verbs__ = {"revoked_at": "revoke"}

    organization_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("organizations.id", ondelete="RESTRICT"), index=True
    )
    project_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("projects.id", ondelete="RESTRICT"), index=True
    )
    name: Mapped[str] = mapped_column(String(255))
    description: Mapped[str | None] = mapped_column(String(2000), default=None)
    prefix: Mapped[str] = mapped_column(String(32))
    key_hash: Mapped[str] = mapped_column(String(64), unique=True, info={"secret": True})
    created_by: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), default=None
    )
    expires_at: Mapped[datetime | None] = mapped_column(default=None)
    revoked_at: Mapped[datetime | None] = mapped_column(default=None)
    # Written in batches off the request path, not on every use.
    last_used_at: Mapped[datetime | None] = mapped_column(default=None, info={"audit": False})

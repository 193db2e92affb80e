from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import JSON, ForeignKey, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from budapp.core.columns import unique_live
from budapp.core.db import Base, RecordMixin, SoftDeleteMixin


class Credential(RecordMixin, SoftDeleteMixin, Base):
    """A provider or cloud credential. Its secret fields are one AES-256-GCM ciphertext sealed
    under `key_id`, bound to the row's id; `config` holds the fields that are not secret."""

    __tablename__ = "credentials"
    __audit_resource__ = "credential"
    __table_args__ = (
        unique_live("ix_credentials_organization_id_name", "organization_id", "name"),
    )

    organization_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("organizations.id", ondelete="RESTRICT"), index=True
    )
    # None: usable by every project of the organization.
    project_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("projects.id", ondelete="RESTRICT"), index=True, default=None
    )
    name: Mapped[str] = mapped_column(String(255))
    description: Mapped[str | None] = mapped_column(String(2000), default=None)
    kind: Mapped[str] = mapped_column(String(32))
    category: Mapped[str] = mapped_column(String(16))
    config: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    key_id: Mapped[str | None] = mapped_column(String(32), index=True)
    # None once the credential is deleted: the secret is erased, not merely hidden.
    ciphertext: Mapped[str | None] = mapped_column(Text, info={"secret": True})

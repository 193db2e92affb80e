from __future__ import annotations

import uuid

from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column

from budapp.core.columns import unique_live
from budapp.core.db import Base, RecordMixin, SoftDeleteMixin


class Organization(RecordMixin, SoftDeleteMixin, Base):
    """A tenant: every tenant-owned row carries an `organization_id`."""

    __tablename__ = "organizations"
    __audit_resource__ = "organization"
    __table_args__ = (unique_live("ix_organizations_name", "name"),)

    name: Mapped[str] = mapped_column(String(255))
    description: Mapped[str | None] = mapped_column(String(2000), default=None)

    @property
    def audit_organization_id(self) -> uuid.UUID:
        return self.id

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, String, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from budapp.core.columns import string_enum, unique_live
from budapp.core.db import Base, RecordMixin, SoftDeleteMixin
from budapp.core.roles import ProjectRole


class Project(RecordMixin, SoftDeleteMixin, Base):
    __tablename__ = "projects"
    __audit_resource__ = "project"
    __table_args__ = (
        unique_live("ix_projects_organization_id_name", "organization_id", "name"),
        # Serves an organization's project list, newest first, from the index alone.
        Index(
            "ix_projects_organization_id_created_at_id",
            "organization_id",
            "created_at",
            "id",
            sqlite_where=text("deleted_at IS NULL"),
            postgresql_where=text("deleted_at IS NULL"),
        ),
    )

    organization_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("organizations.id", ondelete="RESTRICT")
    )
    name: Mapped[str] = mapped_column(String(255))
    description: Mapped[str | None] = mapped_column(String(2000), default=None)
    owner_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), default=None
    )
    settings: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class ProjectMember(RecordMixin, Base):
    __tablename__ = "project_members"
    __audit_resource__ = "project_member"
    __table_args__ = (UniqueConstraint("project_id", "user_id"),)

    # The project's organization, kept on the row so that tenancy (and the audit trail, which
    # files each record under an organization) needs no join.
    organization_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("organizations.id", ondelete="RESTRICT")
    )
    project_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    user_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    role: Mapped[ProjectRole] = mapped_column(string_enum(ProjectRole))
    # Permissions granted on top of the role's defaults.
    extra_permissions: Mapped[list[str]] = mapped_column(JSON, default=list)

from __future__ import annotations

import uuid
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, Float, ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from budapp.core.columns import string_enum, unique_live
from budapp.core.db import Base, RecordMixin, SoftDeleteMixin


class Strategy(StrEnum):
    WEIGHTED = "weighted"
    ROUND_ROBIN = "round_robin"
    LEAST_IN_FLIGHT = "least_in_flight"
    LOWEST_LATENCY = "lowest_latency"


class Router(RecordMixin, SoftDeleteMixin, Base):
    """A name clients send as `model`, routed over `targets` (a JSON list: each a url or an
    endpoint, with weight, priority, timeout and optional RPM/TPM limits)."""

    __tablename__ = "routers"
    __audit_resource__ = "router"
    __table_args__ = (unique_live("ix_routers_project_id_name", "project_id", "name"),)

    organization_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("organizations.id", ondelete="RESTRICT"), index=True
    )
    project_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("projects.id", ondelete="RESTRICT"), index=True
    )
    name: Mapped[str] = mapped_column(String(255))
    description: Mapped[str | None] = mapped_column(String(2000), default=None)
    strategy: Mapped[Strategy] = mapped_column(string_enum(Strategy), default=Strategy.WEIGHTED)
    targets: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    fallback_on: Mapped[list[str]] = mapped_column(JSON, default=list)
    cooldown_seconds: Mapped[float] = mapped_column(Float, default=30.0)
    max_attempts: Mapped[int] = mapped_column(Integer, default=3)
    created_by: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), default=None
    )


class ProjectRateLimit(RecordMixin, Base):
    """A project's gateway limits: for the whole project, and for each of its API keys."""

    __tablename__ = "project_rate_limits"
    __audit_resource__ = "project_rate_limit"

    organization_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("organizations.id", ondelete="RESTRICT"), index=True
    )
    project_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("projects.id", ondelete="CASCADE"), unique=True
    )
    rpm: Mapped[int | None] = mapped_column(Integer, default=None)
    tpm: Mapped[int | None] = mapped_column(Integer, default=None)
    key_rpm: Mapped[int | None] = mapped_column(Integer, default=None)
    key_tpm: Mapped[int | None] = mapped_column(Integer, default=None)

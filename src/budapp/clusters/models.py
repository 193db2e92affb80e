from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, BigInteger, ForeignKey, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from budapp.core.columns import string_enum, unique_live
from budapp.core.db import Base, RecordMixin, SoftDeleteMixin


class ClusterProviderKind(StrEnum):
    LOCAL = "local"
    BUDCLUSTER = "budcluster"
    KUBERNETES = "kubernetes"


class ClusterStatus(StrEnum):
    # Registered, not yet reached: no inventory.
    ONBOARDING = "ONBOARDING"
    AVAILABLE = "AVAILABLE"
    # Was available; the last sync could not reach it.
    NOT_AVAILABLE = "NOT_AVAILABLE"
    # Onboarding failed.
    ERROR = "ERROR"


class Cluster(RecordMixin, SoftDeleteMixin, Base):
    """A place to run model runtimes. `config` holds how to reach it (not secret); the
    budcluster tokens are one AES-256-GCM ciphertext bound to the row's id. The inventory
    is the provider's last answer, with its totals in columns for placement queries."""

    __tablename__ = "clusters"
    __audit_resource__ = "cluster"
    __table_args__ = (unique_live("ix_clusters_organization_id_name", "organization_id", "name"),)

    organization_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("organizations.id", ondelete="RESTRICT"), index=True
    )
    name: Mapped[str] = mapped_column(String(255))
    description: Mapped[str | None] = mapped_column(String(2000), default=None)
    provider: Mapped[ClusterProviderKind] = mapped_column(string_enum(ClusterProviderKind))
    status: Mapped[ClusterStatus] = mapped_column(
        string_enum(ClusterStatus), default=ClusterStatus.ONBOARDING
    )
    config: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    key_id: Mapped[str | None] = mapped_column(String(32), default=None)
    ciphertext: Mapped[str | None] = mapped_column(Text, default=None, info={"secret": True})
    nodes: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    node_count: Mapped[int] = mapped_column(default=0)
    cpu_cores: Mapped[int] = mapped_column(default=0)
    memory_total_bytes: Mapped[int] = mapped_column(BigInteger, default=0)
    memory_free_bytes: Mapped[int] = mapped_column(BigInteger, default=0)
    gpu_count: Mapped[int] = mapped_column(default=0)
    gpu_memory_total_bytes: Mapped[int] = mapped_column(BigInteger, default=0)
    gpu_memory_free_bytes: Mapped[int] = mapped_column(BigInteger, default=0)
    last_synced_at: Mapped[datetime | None] = mapped_column(default=None)
    last_error: Mapped[str | None] = mapped_column(String(4000), default=None)

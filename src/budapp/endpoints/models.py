from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from budapp.core.columns import string_enum, unique_live
from budapp.core.db import Base, RecordMixin, SoftDeleteMixin


class EndpointStatus(StrEnum):
    PENDING = "PENDING"
    DEPLOYING = "DEPLOYING"
    RUNNING = "RUNNING"
    ERROR = "ERROR"
    STOPPED = "STOPPED"


# The moves an endpoint's status may make; anything else is a 409.
TRANSITIONS: dict[EndpointStatus, frozenset[EndpointStatus]] = {
    EndpointStatus.PENDING: frozenset({EndpointStatus.DEPLOYING}),
    EndpointStatus.DEPLOYING: frozenset(
        {EndpointStatus.RUNNING, EndpointStatus.ERROR, EndpointStatus.STOPPED}
    ),
    EndpointStatus.RUNNING: frozenset(
        {EndpointStatus.DEPLOYING, EndpointStatus.STOPPED, EndpointStatus.ERROR}
    ),
    EndpointStatus.ERROR: frozenset({EndpointStatus.DEPLOYING, EndpointStatus.STOPPED}),
    EndpointStatus.STOPPED: frozenset({EndpointStatus.DEPLOYING}),
}


class Endpoint(RecordMixin, SoftDeleteMixin, Base):
    """A model served by a runtime on a cluster, in a project; its replicas are the running
    copies. `status` moves only along TRANSITIONS."""

    __tablename__ = "endpoints"
    __audit_resource__ = "endpoint"
    __table_args__ = (
        unique_live("ix_endpoints_project_id_name", "project_id", "name"),
        Index("ix_endpoints_organization_id_status", "organization_id", "status"),
    )

    organization_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("organizations.id", ondelete="RESTRICT")
    )
    project_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("projects.id", ondelete="RESTRICT"), index=True
    )
    name: Mapped[str] = mapped_column(String(255))
    description: Mapped[str | None] = mapped_column(String(2000), default=None)
    model_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("models.id", ondelete="RESTRICT"), index=True
    )
    # None: placed automatically on any available cluster of the organisation.
    cluster_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("clusters.id", ondelete="RESTRICT"), default=None, index=True
    )
    runtime: Mapped[str] = mapped_column(String(64))
    replicas: Mapped[int] = mapped_column(Integer, default=1)
    context_length: Mapped[int | None] = mapped_column(Integer, default=None)
    max_concurrency: Mapped[int] = mapped_column(Integer, default=8)
    quantization: Mapped[str | None] = mapped_column(String(64), default=None)
    status: Mapped[EndpointStatus] = mapped_column(
        string_enum(EndpointStatus), default=EndpointStatus.PENDING
    )
    status_message: Mapped[str | None] = mapped_column(String(2000), default=None)
    # The last plan used to deploy: memory estimate and placement (see planning.py).
    plan: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_by: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), default=None
    )
    deployed_at: Mapped[datetime | None] = mapped_column(default=None)


class ReplicaState(StrEnum):
    STARTING = "STARTING"
    RUNNING = "RUNNING"
    RESTARTING = "RESTARTING"
    FAILED = "FAILED"
    STOPPED = "STOPPED"


class EndpointReplica(RecordMixin, Base):
    """One running copy of an endpoint: a runtime on a cluster node. The runtime id is
    `<endpoint id>-<index>`, stable across budapp restarts (reconciliation relies on it)."""

    __tablename__ = "endpoint_replicas"
    # Replica state changes with every runtime restart; the endpoint's own changes are audited.
    __audit__ = False
    __table_args__ = (
        Index("ix_endpoint_replicas_endpoint_id_index", "endpoint_id", "index", unique=True),
    )

    endpoint_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("endpoints.id", ondelete="CASCADE"))
    cluster_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("clusters.id", ondelete="CASCADE"))
    index: Mapped[int] = mapped_column(Integer)
    runtime_id: Mapped[str] = mapped_column(String(128), unique=True)
    node: Mapped[str | None] = mapped_column(String(255), default=None)
    devices: Mapped[list[int]] = mapped_column(JSON, default=list)
    state: Mapped[ReplicaState] = mapped_column(
        string_enum(ReplicaState), default=ReplicaState.STARTING
    )
    url: Mapped[str | None] = mapped_column(String(2048), default=None)
    restarts: Mapped[int] = mapped_column(Integer, default=0)
    message: Mapped[str | None] = mapped_column(String(2000), default=None)
    # The runtime spec it was started with, so that a restarted budapp starts it identically.
    spec: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)

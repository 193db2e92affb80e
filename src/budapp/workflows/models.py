from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from budapp.core.columns import string_enum
from budapp.core.db import Base, RecordMixin


class RunStatus(StrEnum):
    PENDING = "PENDING"
    RUNNING = "RUNNING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"

    @property
    def finished(self) -> bool:
        return self in {RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.CANCELLED}


class StepStatus(StrEnum):
    PENDING = "PENDING"
    RUNNING = "RUNNING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    SKIPPED = "SKIPPED"


class WorkflowRun(RecordMixin, Base):
    """What users see of one workflow: its kind, the resource it acts on, its status and its
    steps. The durable execution state itself lives in the engine's tables (schema `dbos`);
    the run's id is the engine's workflow id."""

    __tablename__ = "workflow_runs"
    # Runs are bookkeeping of audited actions (the deploy request itself is audited).
    __audit__ = False
    __table_args__ = (
        Index("ix_workflow_runs_organization_id_created_at", "organization_id", "created_at"),
        Index("ix_workflow_runs_resource", "resource_type", "resource_id"),
    )

    organization_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("organizations.id", ondelete="CASCADE")
    )
    project_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("projects.id", ondelete="CASCADE"), default=None, index=True
    )
    kind: Mapped[str] = mapped_column(String(64))
    resource_type: Mapped[str] = mapped_column(String(64))
    resource_id: Mapped[uuid.UUID]
    status: Mapped[RunStatus] = mapped_column(string_enum(RunStatus), default=RunStatus.PENDING)
    # The arguments the workflow function is started with (ids and plain values only).
    arguments: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    steps_total: Mapped[int] = mapped_column(Integer, default=0)
    steps_done: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str | None] = mapped_column(Text, default=None)
    created_by: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), default=None
    )
    retry_of: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("workflow_runs.id", ondelete="SET NULL"), default=None
    )
    started_at: Mapped[datetime | None] = mapped_column(default=None)
    finished_at: Mapped[datetime | None] = mapped_column(default=None)


class WorkflowStep(RecordMixin, Base):
    __tablename__ = "workflow_steps"
    __audit__ = False
    __table_args__ = (
        Index("ix_workflow_steps_run_id_position", "run_id", "position", unique=True),
    )

    run_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("workflow_runs.id", ondelete="CASCADE"))
    position: Mapped[int] = mapped_column(Integer)
    name: Mapped[str] = mapped_column(String(64))
    title: Mapped[str] = mapped_column(String(255))
    status: Mapped[StepStatus] = mapped_column(string_enum(StepStatus), default=StepStatus.PENDING)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    # A short human summary of what the step did or is doing ("replica 2 of 3 ready").
    detail: Mapped[str | None] = mapped_column(String(1000), default=None)
    error: Mapped[str | None] = mapped_column(Text, default=None)
    started_at: Mapped[datetime | None] = mapped_column(default=None)
    finished_at: Mapped[datetime | None] = mapped_column(default=None)


class WorkflowExecutor(Base):
    """One row per replica running workflows, with its last heartbeat. A replica whose
    heartbeat is older than the takeover timeout is presumed dead: the first live replica to
    delete its row hands its unfinished workflows back to the engine's queue."""

    __tablename__ = "workflow_executors"
    # Written every few seconds by every replica: not an audited change.
    __audit__ = False

    executor_id: Mapped[str] = mapped_column(String(255), primary_key=True)
    heartbeat_at: Mapped[datetime] = mapped_column(index=True)

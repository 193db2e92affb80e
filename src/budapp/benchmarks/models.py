from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, Boolean, Float, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from budapp.core.columns import string_enum
from budapp.core.db import Base, RecordMixin, SoftDeleteMixin


class TargetKind(StrEnum):
    ENDPOINT = "endpoint"  # straight to the endpoint's replicas: measures the runtime
    ROUTER = "router"  # through budapp's own gateway with a project API key: the whole path
    URL = "url"  # any OpenAI-compatible URL, with a credential of the project


class BenchmarkStatus(StrEnum):
    PENDING = "PENDING"
    RUNNING = "RUNNING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"

    @property
    def finished(self) -> bool:
        return self in {
            BenchmarkStatus.SUCCEEDED,
            BenchmarkStatus.FAILED,
            BenchmarkStatus.CANCELLED,
        }


# What the workflow rewrites while it runs: not audited (the run's creation, its end, a cancel
# and a delete are).
_BOOKKEEPING = {"audit": False}


class BenchmarkRun(RecordMixin, SoftDeleteMixin, Base):
    """One benchmark: what it targets, its configuration, a snapshot of what was measured,
    its progress while it runs and its results (per stage, and a summary). Per-request
    records are in `benchmark_requests`."""

    __tablename__ = "benchmark_runs"
    __audit_resource__ = "benchmark"
    __table_args__ = (
        Index("ix_benchmark_runs_project_id_created_at", "project_id", "created_at"),
        Index("ix_benchmark_runs_organization_id_status", "organization_id", "status"),
    )

    organization_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("organizations.id", ondelete="RESTRICT")
    )
    project_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("projects.id", ondelete="RESTRICT"))
    name: Mapped[str] = mapped_column(String(255))
    description: Mapped[str | None] = mapped_column(String(2000), default=None)
    target_kind: Mapped[TargetKind] = mapped_column(string_enum(TargetKind))
    endpoint_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("endpoints.id", ondelete="SET NULL"), default=None, index=True
    )
    router_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("routers.id", ondelete="SET NULL"), default=None
    )
    credential_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("credentials.id", ondelete="SET NULL"), default=None
    )
    # url targets: the base URL; the model name sent (router targets: the router's name).
    url: Mapped[str | None] = mapped_column(String(2048), default=None)
    model: Mapped[str] = mapped_column(String(255))
    # The validated BenchmarkConfig.
    config: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    # What was measured: endpoint, runtime, replicas, devices, model (see targets.py).
    snapshot: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    status: Mapped[BenchmarkStatus] = mapped_column(
        string_enum(BenchmarkStatus), default=BenchmarkStatus.PENDING
    )
    status_message: Mapped[str | None] = mapped_column(String(2000), default=None)
    # Some stage was cut short (a restart, a cancel, a failure): its results are partial.
    partial: Mapped[bool] = mapped_column(Boolean, default=False)
    workflow_id: Mapped[uuid.UUID | None] = mapped_column(default=None)
    # Router targets: the API key minted for the run (revoked when it ends), its plaintext
    # sealed with the data keys so that a resumed workflow can still call the gateway.
    api_key_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("api_keys.id", ondelete="SET NULL"), default=None
    )
    api_key_key_id: Mapped[str | None] = mapped_column(String(32), default=None)
    api_key_sealed: Mapped[str | None] = mapped_column(Text, default=None, info={"secret": True})
    progress: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict, info=_BOOKKEEPING)
    # {"stages": [{"stage": ..., "metrics": ..., "stop_reason": ..., "partial": ...}],
    #  "summary": ..., "capacity": ...}
    results: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict, info=_BOOKKEEPING)
    created_by: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), default=None
    )
    started_at: Mapped[datetime | None] = mapped_column(default=None)
    finished_at: Mapped[datetime | None] = mapped_column(default=None)


class BenchmarkRequest(Base):
    """One request of a run, as the load generator timed it. Written in batches while the
    run goes on; never updated."""

    __tablename__ = "benchmark_requests"
    # Measurements, thousands a second: the run that produced them is audited.
    __audit__ = False

    # The natural key, in the order pages are read: a run's requests, stage by stage.
    run_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("benchmark_runs.id", ondelete="CASCADE"), primary_key=True
    )
    stage: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    sequence: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    started_s: Mapped[float] = mapped_column(Float)
    status: Mapped[str] = mapped_column(String(16))
    http_status: Mapped[int | None] = mapped_column(Integer, default=None)
    error_kind: Mapped[str | None] = mapped_column(String(32), default=None)
    error: Mapped[str | None] = mapped_column(String(500), default=None)
    ttft_ms: Mapped[float | None] = mapped_column(Float, default=None)
    tpot_ms: Mapped[float | None] = mapped_column(Float, default=None)
    e2el_ms: Mapped[float | None] = mapped_column(Float, default=None)
    input_tokens: Mapped[int | None] = mapped_column(Integer, default=None)
    output_tokens: Mapped[int | None] = mapped_column(Integer, default=None)
    usage_reported: Mapped[bool] = mapped_column(Boolean, default=False)
    chunk_ms: Mapped[list[float]] = mapped_column(JSON, default=list)
    chunk_tokens: Mapped[list[int]] = mapped_column(JSON, default=list)

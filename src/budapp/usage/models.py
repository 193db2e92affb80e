"""Usage of the gateway: one row per call, and sums per hour and per day (what reports and
billing read). All written in batches by the meter, never on the request path."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    Float,
    Index,
    Integer,
    String,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from budapp.core.db import Base


class UsageRecord(Base):
    """A gateway call. Not audited and not soft-deleted: it is a measurement, not a change.
    No foreign keys: a batch of calls must be writable even if a project went meanwhile."""

    __tablename__ = "usage_records"
    __table_args__ = (
        Index("ix_usage_records_project_id_at", "project_id", "at"),
        Index("ix_usage_records_organization_id_at", "organization_id", "at"),
        Index("ix_usage_records_endpoint_id_at", "endpoint_id", "at"),
        # What the retention sweep deletes by (the oldest calls first).
        Index("ix_usage_records_at", "at"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    at: Mapped[datetime]
    organization_id: Mapped[uuid.UUID]
    project_id: Mapped[uuid.UUID]
    api_key_id: Mapped[uuid.UUID] = mapped_column(index=True)
    user_id: Mapped[uuid.UUID | None] = mapped_column(default=None)
    router_id: Mapped[uuid.UUID | None] = mapped_column(default=None)
    router: Mapped[str] = mapped_column(String(128))
    target: Mapped[str | None] = mapped_column(String(512), default=None)
    # The deployed endpoint that answered (an endpoint target); None for url targets and calls
    # that reached no target.
    endpoint_id: Mapped[uuid.UUID | None] = mapped_column(default=None)
    model: Mapped[str] = mapped_column(String(255))
    route: Mapped[str] = mapped_column(String(32))
    stream: Mapped[bool] = mapped_column(Boolean, default=False)
    status: Mapped[int] = mapped_column(Integer)
    prompt_tokens: Mapped[int] = mapped_column(Integer, default=0)
    completion_tokens: Mapped[int] = mapped_column(Integer, default=0)
    # True when the backend gave no usage and the gateway counted the tokens itself.
    estimated: Mapped[bool] = mapped_column(Boolean, default=False)
    latency_ms: Mapped[float] = mapped_column(Float)
    ttft_ms: Mapped[float | None] = mapped_column(Float, default=None)


class _Aggregate:
    bucket: Mapped[datetime]
    organization_id: Mapped[uuid.UUID] = mapped_column(index=True)
    project_id: Mapped[uuid.UUID]
    api_key_id: Mapped[uuid.UUID]
    router: Mapped[str] = mapped_column(String(128))
    model: Mapped[str] = mapped_column(String(255))
    requests: Mapped[int] = mapped_column(BigInteger, default=0)
    errors: Mapped[int] = mapped_column(BigInteger, default=0)
    prompt_tokens: Mapped[int] = mapped_column(BigInteger, default=0)
    completion_tokens: Mapped[int] = mapped_column(BigInteger, default=0)
    latency_ms_sum: Mapped[float] = mapped_column(Float, default=0.0)
    ttft_ms_sum: Mapped[float] = mapped_column(Float, default=0.0)
    ttft_count: Mapped[int] = mapped_column(BigInteger, default=0)


class UsageHourly(_Aggregate, Base):
    __tablename__ = "usage_hourly"
    __table_args__ = (
        UniqueConstraint(
            "bucket",
            "project_id",
            "api_key_id",
            "router",
            "model",
            name="uq_usage_hourly_bucket_project_id_api_key_id_router_model",
        ),
    )
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)


class UsageDaily(_Aggregate, Base):
    __tablename__ = "usage_daily"
    __table_args__ = (
        UniqueConstraint(
            "bucket",
            "project_id",
            "api_key_id",
            "router",
            "model",
            name="uq_usage_daily_bucket_project_id_api_key_id_router_model",
        ),
    )
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)

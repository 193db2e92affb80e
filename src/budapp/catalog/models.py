from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, BigInteger, Float, ForeignKey, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from budapp.core.columns import string_enum, unique_live
from budapp.core.db import Base, RecordMixin, SoftDeleteMixin


class ModelSource(StrEnum):
    CLOUD = "cloud"  # hosted by a provider, called with a credential
    LOCAL = "local"  # weights uploaded to our storage, or a Hugging Face repo id
    CUSTOM = "custom"  # weights the organisation keeps elsewhere (a URI), described by hand


class Modality(StrEnum):
    TEXT = "text"
    EMBEDDING = "embedding"
    IMAGE = "image"
    AUDIO = "audio"
    MULTIMODAL = "multimodal"


class ScanStatus(StrEnum):
    NOT_REQUIRED = "not_required"  # cloud models: no weights of ours
    NOT_SCANNED = "not_scanned"  # weights referenced elsewhere, fetched later by a cluster
    PENDING = "pending"
    PASSED = "passed"
    FAILED = "failed"


class JobStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"


class Model(RecordMixin, SoftDeleteMixin, Base):
    __tablename__ = "models"
    __audit_resource__ = "model"
    # An override is recorded as `model.scan_override`, with its reason and its author; the
    # storage sweeper's removal of a deleted model's files as `model.files_purge`.
    __audit_verbs__ = {"scan_override_at": "scan_override", "files_purged_at": "files_purge"}
    __table_args__ = (unique_live("ix_models_organization_id_name", "organization_id", "name"),)

    organization_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("organizations.id", ondelete="RESTRICT"), index=True
    )
    name: Mapped[str] = mapped_column(String(255))
    description: Mapped[str | None] = mapped_column(String(2000), default=None)
    source: Mapped[ModelSource] = mapped_column(string_enum(ModelSource), index=True)
    provider: Mapped[str | None] = mapped_column(String(64), default=None)
    provider_model_id: Mapped[str | None] = mapped_column(String(255), default=None)
    credential_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("credentials.id", ondelete="RESTRICT"), index=True, default=None
    )
    repo_id: Mapped[str | None] = mapped_column(String(255), default=None)
    revision: Mapped[str | None] = mapped_column(String(255), default=None)
    uri: Mapped[str | None] = mapped_column(String(2000), default=None)
    modality: Mapped[Modality] = mapped_column(string_enum(Modality), default=Modality.TEXT)
    architecture: Mapped[str | None] = mapped_column(String(255), default=None)
    parameter_count: Mapped[int | None] = mapped_column(BigInteger, default=None)
    context_length: Mapped[int | None] = mapped_column(default=None)
    quantization: Mapped[str | None] = mapped_column(String(64), default=None)
    dtype: Mapped[str | None] = mapped_column(String(32), default=None)
    file_format: Mapped[str | None] = mapped_column(String(32), default=None)
    total_size: Mapped[int] = mapped_column(BigInteger, default=0)
    license: Mapped[str | None] = mapped_column(String(128), default=None)
    tags: Mapped[list[str]] = mapped_column(JSON, default=list)
    scan_status: Mapped[ScanStatus] = mapped_column(string_enum(ScanStatus))
    scan_findings: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    scanned_at: Mapped[datetime | None] = mapped_column(default=None)
    # An org admin's decision to allow deploying a model whose scan failed.
    scan_override_by: Mapped[uuid.UUID | None] = mapped_column(default=None)
    scan_override_reason: Mapped[str | None] = mapped_column(String(2000), default=None)
    scan_override_at: Mapped[datetime | None] = mapped_column(default=None)
    # When the storage sweeper deleted the stored files of this soft-deleted model (their
    # rows are kept, as the record of what the model was).
    files_purged_at: Mapped[datetime | None] = mapped_column(default=None)


class ModelTag(Base):
    """One row per tag of a model, so that the list can filter by tag on every database."""

    __tablename__ = "model_tags"
    __audit__ = False

    model_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("models.id", ondelete="CASCADE"), primary_key=True
    )
    tag: Mapped[str] = mapped_column(String(64), primary_key=True, index=True)


class ModelFile(RecordMixin, Base):
    __tablename__ = "model_files"
    __audit_resource__ = "model_file"
    __table_args__ = (UniqueConstraint("model_id", "path"),)

    organization_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("organizations.id", ondelete="RESTRICT"), index=True
    )
    model_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("models.id", ondelete="CASCADE"), index=True
    )
    # The name as uploaded (a relative path such as `tokenizer/vocab.json`).
    path: Mapped[str] = mapped_column(String(512))
    size: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64))
    # Built from ids, never from the uploaded name.
    object_key: Mapped[str] = mapped_column(String(512))


class ScanJob(RecordMixin, Base):
    """A model's pending safety scan, in the database so that a restart (or another replica,
    once the lease has run out) picks it up again."""

    __tablename__ = "scan_jobs"
    __audit__ = False
    __table_args__ = (Index("ix_scan_jobs_status_lease_until", "status", "lease_until"),)

    organization_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("organizations.id", ondelete="RESTRICT"), index=True
    )
    model_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("models.id", ondelete="CASCADE"), index=True
    )
    status: Mapped[JobStatus] = mapped_column(string_enum(JobStatus), default=JobStatus.QUEUED)
    attempts: Mapped[int] = mapped_column(default=0)
    lease_until: Mapped[datetime | None] = mapped_column(default=None)
    error: Mapped[str | None] = mapped_column(String(2000), default=None)


class ModelEvaluation(RecordMixin, Base):
    """A benchmark or evaluation result of a model; the leaderboard ranks models by these.
    Written by the benchmark and evaluation domains."""

    __tablename__ = "model_evaluations"
    __audit_resource__ = "model_evaluation"
    __table_args__ = (
        Index("ix_model_evaluations_organization_id_metric", "organization_id", "metric"),
    )

    organization_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("organizations.id", ondelete="RESTRICT")
    )
    model_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("models.id", ondelete="CASCADE"), index=True
    )
    kind: Mapped[str] = mapped_column(String(16))  # "benchmark" | "evaluation"
    name: Mapped[str] = mapped_column(String(255))  # e.g. "mmlu", "load-test 32 users"
    metric: Mapped[str] = mapped_column(String(64))  # e.g. "accuracy", "tokens_per_second"
    value: Mapped[float] = mapped_column(Float)
    higher_is_better: Mapped[bool] = mapped_column(default=True)
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    # Results rank against each other only under the same conditions: for a benchmark the
    # API, the token lengths and the load ("chat in=256 out=128 concurrency=8"); for an
    # evaluation, its dataset and scorer. Empty: no stated conditions.
    conditions: Mapped[str] = mapped_column(String(255), default="")
    # What produced the result (a benchmark run, an evaluation run): withdrawn with it.
    source_id: Mapped[uuid.UUID | None] = mapped_column(default=None, index=True)
    # The endpoint measured, and what it ran on, when the result is an endpoint's.
    endpoint_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("endpoints.id", ondelete="SET NULL"), default=None, index=True
    )
    endpoint_name: Mapped[str | None] = mapped_column(String(255), default=None)
    runtime: Mapped[str | None] = mapped_column(String(64), default=None)
    device: Mapped[str | None] = mapped_column(String(255), default=None)

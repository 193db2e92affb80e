from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, BigInteger, ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from budapp.core.columns import string_enum, unique_live
from budapp.core.db import Base, RecordMixin, SoftDeleteMixin


class DatasetFormat(StrEnum):
    JSONL = "jsonl"
    CSV = "csv"
    PARQUET = "parquet"


class Dataset(RecordMixin, SoftDeleteMixin, Base):
    __tablename__ = "datasets"
    __audit_resource__ = "dataset"
    __audit_verbs__ = {"files_purged_at": "files_purge"}
    __table_args__ = (unique_live("ix_datasets_organization_id_name", "organization_id", "name"),)

    organization_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("organizations.id", ondelete="RESTRICT"), index=True
    )
    name: Mapped[str] = mapped_column(String(255))
    description: Mapped[str | None] = mapped_column(String(2000), default=None)
    latest_version: Mapped[int] = mapped_column(default=0)
    # When the storage sweeper deleted the stored files of this soft-deleted dataset's
    # versions (the version rows are kept, as the record of what it held).
    files_purged_at: Mapped[datetime | None] = mapped_column(default=None)


class DatasetVersion(RecordMixin, Base):
    """An immutable upload of a dataset, identified by the SHA-256 of its bytes."""

    __tablename__ = "dataset_versions"
    __audit_resource__ = "dataset_version"
    __table_args__ = (
        UniqueConstraint("dataset_id", "version"),
        UniqueConstraint("dataset_id", "sha256"),
    )

    organization_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("organizations.id", ondelete="RESTRICT"), index=True
    )
    dataset_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("datasets.id", ondelete="CASCADE"), index=True
    )
    version: Mapped[int]
    filename: Mapped[str] = mapped_column(String(255))
    format: Mapped[DatasetFormat] = mapped_column(string_enum(DatasetFormat))
    size: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64))
    row_count: Mapped[int] = mapped_column(BigInteger)
    # [{"name": ..., "type": ...}] in file order.
    columns: Mapped[list[dict[str, str]]] = mapped_column(JSON, default=list)
    # The first rows, kept with the version so that a preview needs no object read.
    preview: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    object_key: Mapped[str] = mapped_column(String(512))

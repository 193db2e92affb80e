from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import BigInteger, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from budapp.core.db import Base


class AuditRecord(Base):
    """One link of the append-only hash chain. `sequence` orders the chain; `current_hash`
    is SHA-256 over the record's canonical form, which includes `previous_hash`."""

    __tablename__ = "audit_records"
    __audit__ = False
    __table_args__ = (
        Index("ix_audit_records_organization_id_sequence", "organization_id", "sequence"),
        Index("ix_audit_records_resource_type_resource_id", "resource_type", "resource_id"),
        Index("ix_audit_records_actor_id", "actor_id"),
        Index("ix_audit_records_created_at", "created_at"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    sequence: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), unique=True)
    created_at: Mapped[datetime]
    action: Mapped[str] = mapped_column(String(64))
    resource_type: Mapped[str] = mapped_column(String(64))
    resource_id: Mapped[str | None] = mapped_column(String(64))
    actor_type: Mapped[str] = mapped_column(String(16))
    actor_id: Mapped[str | None] = mapped_column(String(64))
    actor_label: Mapped[str | None] = mapped_column(String(320))
    organization_id: Mapped[uuid.UUID | None]
    ip_address: Mapped[str | None] = mapped_column(String(64))
    user_agent: Mapped[str | None] = mapped_column(String(512))
    request_id: Mapped[str | None] = mapped_column(String(128))
    # Canonical JSON text (chain.canonical_json), hashed exactly as stored.
    details: Mapped[str] = mapped_column(Text)
    previous_hash: Mapped[str] = mapped_column(String(64))
    current_hash: Mapped[str] = mapped_column(String(64))


class AuditChainHead(Base):
    """The single row that every append locks and advances: it serialises appends across
    requests and replicas, and lets `verify` notice records cut from the end of the chain."""

    __tablename__ = "audit_chain_head"
    __audit__ = False

    id: Mapped[int] = mapped_column(primary_key=True)
    last_sequence: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"))
    last_hash: Mapped[str] = mapped_column(String(64))

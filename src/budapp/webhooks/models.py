from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum

from sqlalchemy import JSON, ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from budapp.core.columns import string_enum
from budapp.core.db import Base, RecordMixin, SoftDeleteMixin


class Webhook(RecordMixin, SoftDeleteMixin, Base):
    """An organization's HTTP receiver of events. Its signing secret must be recovered to sign
    each delivery, so it is sealed with the keyring (AES-256-GCM) rather than hashed."""

    __tablename__ = "webhooks"
    __audit_resource__ = "webhook"

    organization_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("organizations.id", ondelete="RESTRICT"), index=True
    )
    url: Mapped[str] = mapped_column(String(2048))
    description: Mapped[str | None] = mapped_column(String(2000), default=None)
    # Event names or patterns: "endpoint.ready", "endpoint.*", "*".
    events: Mapped[list[str]] = mapped_column(JSON, default=list)
    active: Mapped[bool] = mapped_column(default=True)
    created_by: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), default=None
    )
    key_id: Mapped[str | None] = mapped_column(String(32), default=None)
    # None once the webhook is deleted: the secret is erased, not merely hidden.
    secret_ciphertext: Mapped[str | None] = mapped_column(Text, info={"secret": True})


class DeliveryStatus(StrEnum):
    PENDING = "pending"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


class WebhookDelivery(RecordMixin, Base):
    """One event to send to one webhook, and what happened: the queue of the delivery worker
    (rows survive a restart) and the delivery log shown to admins."""

    __tablename__ = "webhook_deliveries"
    # A log of its own; auditing every attempt would flood the audit trail.
    __audit__ = False
    __table_args__ = (
        Index("ix_webhook_deliveries_status_next_attempt_at", "status", "next_attempt_at"),
        Index("ix_webhook_deliveries_webhook_id_created_at", "webhook_id", "created_at"),
    )

    organization_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("organizations.id", ondelete="CASCADE"), index=True
    )
    webhook_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("webhooks.id", ondelete="CASCADE"))
    event: Mapped[str] = mapped_column(String(64))
    # The exact JSON sent (and signed) at every attempt.
    body: Mapped[str] = mapped_column(Text)
    status: Mapped[DeliveryStatus] = mapped_column(
        string_enum(DeliveryStatus), default=DeliveryStatus.PENDING
    )
    attempts: Mapped[int] = mapped_column(default=0)
    # When the worker may next try it; while an attempt runs, the end of its lease (a replica
    # that dies mid-attempt leaves it to be picked up again then). None once finished.
    next_attempt_at: Mapped[datetime | None] = mapped_column(default=None)
    last_attempt_at: Mapped[datetime | None] = mapped_column(default=None)
    completed_at: Mapped[datetime | None] = mapped_column(default=None)
    response_status: Mapped[int | None] = mapped_column(default=None)
    response_excerpt: Mapped[str | None] = mapped_column(String(1024), default=None)
    error: Mapped[str | None] = mapped_column(String(1000), default=None)
    duration_ms: Mapped[int | None] = mapped_column(default=None)

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import CursorResult, Select, func, select, update

from budapp.core.auth import TenantScope
from budapp.core.repository import Repository, equal, fetch_page, narrowed
from budapp.webhooks.models import DeliveryStatus, Webhook, WebhookDelivery
from budapp.webhooks.schemas import DeliveryFilter, WebhookFilter

_WEBHOOK_FILTERS = (
    equal("active", Webhook.active),
    equal("organization_id", Webhook.organization_id),
)


class WebhookRepository(Repository):
    def _scoped(self, scope: TenantScope) -> Select[Webhook]:
        return select(Webhook).where(
            Webhook.deleted_at.is_(None), scope.where(Webhook.organization_id)
        )

    async def get(self, scope: TenantScope, webhook_id: uuid.UUID) -> Webhook | None:
        return await self.session.scalar(self._scoped(scope).where(Webhook.id == webhook_id))

    async def page(self, scope: TenantScope, filters: WebhookFilter) -> tuple[list[Webhook], int]:
        statement = narrowed(self._scoped(scope), filters, _WEBHOOK_FILTERS)
        statement = statement.order_by(Webhook.created_at, Webhook.id)
        return await fetch_page(self.session, statement, filters)

    async def active_of_organization(self, organization_id: uuid.UUID) -> Sequence[Webhook]:
        statement = select(Webhook).where(
            Webhook.organization_id == organization_id,
            Webhook.deleted_at.is_(None),
            Webhook.active.is_(True),
        )
        return (await self.session.scalars(statement)).all()

    async def by_ids(self, ids: list[uuid.UUID]) -> dict[uuid.UUID, Webhook]:
        rows = await self.session.scalars(select(Webhook).where(Webhook.id.in_(ids)))
        return {row.id: row for row in rows}

    async def count_in_organization(self, organization_id: uuid.UUID) -> int:
        statement = select(func.count()).where(
            Webhook.organization_id == organization_id, Webhook.deleted_at.is_(None)
        )
        return int(await self.session.scalar(statement) or 0)

    async def key_ids_in_use(self) -> list[str]:
        statement = select(Webhook.key_id).where(Webhook.secret_ciphertext.is_not(None)).distinct()
        return [key_id for key_id in (await self.session.scalars(statement)).all() if key_id]


class DeliveryRepository(Repository):
    async def page(
        self, webhook_id: uuid.UUID, filters: DeliveryFilter
    ) -> tuple[list[WebhookDelivery], int]:
        statement = select(WebhookDelivery).where(WebhookDelivery.webhook_id == webhook_id)
        statement = narrowed(statement, filters, (equal("status", WebhookDelivery.status),))
        statement = statement.order_by(WebhookDelivery.created_at.desc(), WebhookDelivery.id.desc())
        return await fetch_page(self.session, statement, filters)

    async def claim_due(
        self, now: datetime, limit: int, lease_until: datetime
    ) -> list[WebhookDelivery]:
        """Due deliveries this worker takes, each pushed to the end of its lease so no other
        worker takes it meanwhile. PostgreSQL skips rows another replica is claiming
        (SKIP LOCKED); the conditional update makes a lost race harmless everywhere."""
        statement = (
            select(WebhookDelivery)
            .where(
                WebhookDelivery.status == DeliveryStatus.PENDING,
                WebhookDelivery.next_attempt_at <= now,
            )
            .order_by(WebhookDelivery.next_attempt_at)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        claimed = []
        for row in (await self.session.scalars(statement)).all():
            result = await self.session.execute(
                update(WebhookDelivery)
                .where(
                    WebhookDelivery.id == row.id,
                    WebhookDelivery.status == DeliveryStatus.PENDING,
                    WebhookDelivery.next_attempt_at == row.next_attempt_at,
                )
                .values(
                    attempts=WebhookDelivery.attempts + 1,
                    next_attempt_at=lease_until,
                    last_attempt_at=now,
                    updated_at=now,
                )
                .execution_options(synchronize_session=False)
            )
            if isinstance(result, CursorResult) and result.rowcount == 1:
                claimed.append(row)
        return claimed

    async def record(self, delivery_id: uuid.UUID, values: dict[str, Any]) -> None:
        await self.session.execute(
            update(WebhookDelivery)
            .where(WebhookDelivery.id == delivery_id)
            .values(**values)
            .execution_options(synchronize_session=False)
        )

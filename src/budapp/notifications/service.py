from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from budapp.core.auth import Principal
from budapp.core.db import utcnow
from budapp.core.envelope import Page
from budapp.core.errors import NotFound
from budapp.events.service import EventType, publish_org_event
from budapp.notifications.models import Notification, Severity
from budapp.notifications.repository import NotificationRepository
from budapp.notifications.schemas import (
    MarkedRead,
    NotificationFilter,
    NotificationRead,
    UnreadCount,
)
from budapp.webhooks.service import check_event_name, emit_webhook_event


async def notify(
    session: AsyncSession,
    *,
    organization_id: uuid.UUID,
    user_id: uuid.UUID,
    kind: str,
    title: str,
    body: str = "",
    payload: dict[str, Any] | None = None,
    severity: Severity = Severity.INFO,
) -> NotificationRead:
    """Puts a message in the user's inbox, in the caller's unit of work. Once that commits, the
    user's open WebSockets hear `notification.created` and the organization's webhooks that
    subscribe to `kind` (e.g. `endpoint.ready`) are sent it. `payload` must be JSON."""
    check_event_name(kind)
    notification = Notification(
        organization_id=organization_id,
        user_id=user_id,
        kind=kind,
        title=title[:255],
        body=body,
        payload=payload or {},
        severity=severity,
    )
    repository = NotificationRepository(session)
    repository.add(notification)
    await session.flush()
    read = NotificationRead.model_validate(notification)
    data = read.model_dump(mode="json")
    publish_org_event(
        session, organization_id, EventType.NOTIFICATION_CREATED, data, user_id=user_id
    )
    await emit_webhook_event(session, organization_id=organization_id, event=kind, data=data)
    return read


class NotificationService:
    """The caller's own inbox."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session
        self.repository = NotificationRepository(session)

    async def get(self, principal: Principal, notification_id: uuid.UUID) -> Notification:
        """One of the caller's own notifications (anyone else's is not found)."""
        notification = await self.repository.get(principal.user_id, notification_id)
        if notification is None:
            raise NotFound("notification", notification_id)
        return notification

    async def page(
        self, principal: Principal, filters: NotificationFilter
    ) -> Page[NotificationRead]:
        rows, total = await self.repository.page(principal.user_id, filters)
        return Page([NotificationRead.model_validate(row) for row in rows], total, filters)

    async def unread_count(self, principal: Principal) -> UnreadCount:
        return UnreadCount(unread=await self.repository.unread_count(principal.user_id))

    async def mark_read(self, notification: Notification) -> NotificationRead:
        if notification.read_at is None:
            notification.read_at = utcnow()
            await self.session.flush()
        return NotificationRead.model_validate(notification)

    async def mark_all_read(self, principal: Principal) -> MarkedRead:
        marked = await self.repository.mark_all_read(principal.user_id, utcnow())
        return MarkedRead(marked=marked)

    async def delete(self, notification: Notification) -> None:
        await self.repository.delete(notification)

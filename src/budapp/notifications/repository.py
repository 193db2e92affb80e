from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import CursorResult, Select, delete, func, select, update

from budapp.core.repository import Criterion, Repository, equal, fetch_page, narrowed
from budapp.notifications.models import Notification
from budapp.notifications.schemas import NotificationFilter

_FILTERS = (
    Criterion(
        "unread",
        lambda unread: (
            Notification.read_at.is_(None) if unread else Notification.read_at.is_not(None)
        ),
    ),
    equal("kind", Notification.kind),
)


class NotificationRepository(Repository):
    """Every query is of one recipient's inbox: an inbox is private, even to admins."""

    def _inbox(self, user_id: uuid.UUID) -> Select[Notification]:
        return select(Notification).where(Notification.user_id == user_id)

    async def get(self, user_id: uuid.UUID, notification_id: uuid.UUID) -> Notification | None:
        return await self.session.scalar(
            self._inbox(user_id).where(Notification.id == notification_id)
        )

    async def page(
        self, user_id: uuid.UUID, filters: NotificationFilter
    ) -> tuple[list[Notification], int]:
        statement = narrowed(self._inbox(user_id), filters, _FILTERS)
        statement = statement.order_by(Notification.created_at.desc(), Notification.id.desc())
        return await fetch_page(self.session, statement, filters)

    async def unread_count(self, user_id: uuid.UUID) -> int:
        statement = select(func.count()).where(
            Notification.user_id == user_id, Notification.read_at.is_(None)
        )
        return int(await self.session.scalar(statement) or 0)

    async def mark_all_read(self, user_id: uuid.UUID, now: datetime) -> int:
        statement = (
            update(Notification)
            .where(Notification.user_id == user_id, Notification.read_at.is_(None))
            .values(read_at=now, updated_at=now)
            .execution_options(synchronize_session=False)
        )
        result = await self.session.execute(statement)
        return result.rowcount if isinstance(result, CursorResult) else 0

    async def delete(self, notification: Notification) -> None:
        await self.session.execute(delete(Notification).where(Notification.id == notification.id))

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import Depends

from budapp.core.auth import CurrentPrincipal
from budapp.core.deps import SessionDep
from budapp.notifications.models import Notification
from budapp.notifications.service import NotificationService


async def _service(session: SessionDep) -> NotificationService:
    return NotificationService(session)


NotificationServiceDep = Annotated[NotificationService, Depends(_service)]


async def _own(
    notification_id: uuid.UUID, principal: CurrentPrincipal, service: NotificationServiceDep
) -> Notification:
    return await service.get(principal, notification_id)


# The path's notification, in the caller's own inbox.
OwnNotification = Annotated[Notification, Depends(_own)]

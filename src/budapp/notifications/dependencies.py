from __future__ import annotations

from typing import Annotated

from fastapi import Depends

from budapp.core.deps import SessionDep
from budapp.notifications.service import NotificationService


async def _service(session: SessionDep) -> NotificationService:
    return NotificationService(session)


NotificationServiceDep = Annotated[NotificationService, Depends(_service)]

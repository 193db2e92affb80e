from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import Field

from budapp.core.envelope import PageParams
from budapp.core.schemas import ResponseSchema
from budapp.notifications.models import Severity


class NotificationRead(ResponseSchema):
    id: uuid.UUID
    organization_id: uuid.UUID
    user_id: uuid.UUID
    kind: str
    title: str
    body: str
    payload: dict[str, Any]
    severity: Severity
    read_at: datetime | None
    created_at: datetime


class NotificationFilter(PageParams):
    # true: only unread; false: only read; absent: both.
    unread: bool | None = None
    kind: str | None = Field(default=None, max_length=64)


class UnreadCount(ResponseSchema):
    unread: int


class MarkedRead(ResponseSchema):
    marked: int

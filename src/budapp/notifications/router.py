from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response

from budapp.core.auth import CurrentPrincipal
from budapp.core.envelope import Envelope, PageEnvelope
from budapp.core.errors import NotFound, Unauthorized
from budapp.core.http import errors
from budapp.notifications.dependencies import NotificationServiceDep, OwnNotification
from budapp.notifications.schemas import (
    MarkedRead,
    NotificationFilter,
    NotificationRead,
    UnreadCount,
)

router = APIRouter(prefix="/notifications", tags=["notifications"], responses=errors(Unauthorized))


@router.get("")
async def list_notifications(
    principal: CurrentPrincipal,
    service: NotificationServiceDep,
    filters: Annotated[NotificationFilter, Query()],
) -> PageEnvelope[NotificationRead]:
    """The caller's own inbox, newest first."""
    return (await service.page(principal, filters)).envelope()


@router.get("/unread-count")
async def unread_count(
    principal: CurrentPrincipal, service: NotificationServiceDep
) -> Envelope[UnreadCount]:
    return Envelope(data=await service.unread_count(principal))


@router.post("/read-all")
async def mark_all_read(
    principal: CurrentPrincipal, service: NotificationServiceDep
) -> Envelope[MarkedRead]:
    return Envelope(data=await service.mark_all_read(principal))


@router.post("/{notification_id}/read", responses=errors(NotFound))
async def mark_read(
    notification: OwnNotification, service: NotificationServiceDep
) -> Envelope[NotificationRead]:
    return Envelope(data=await service.mark_read(notification))


@router.delete(
    "/{notification_id}", status_code=204, response_class=Response, responses=errors(NotFound)
)
async def delete_notification(
    notification: OwnNotification, service: NotificationServiceDep
) -> None:
    await service.delete(notification)

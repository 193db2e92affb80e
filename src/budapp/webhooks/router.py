from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response

from budapp.core.auth import OrgAdmin
from budapp.core.envelope import Envelope, PageEnvelope
from budapp.core.errors import Conflict, Forbidden, InvalidInput, NotFound, Unauthorized
from budapp.core.http import errors
from budapp.webhooks.dependencies import WebhookManager, WebhookServiceDep
from budapp.webhooks.schemas import (
    DeliveryFilter,
    DeliveryRead,
    WebhookCreate,
    WebhookCreated,
    WebhookFilter,
    WebhookRead,
    WebhookSecret,
    WebhookUpdate,
)
from budapp.webhooks.service import WebhookService

router = APIRouter(prefix="/webhooks", tags=["webhooks"], responses=errors(Unauthorized, Forbidden))


@router.get("")
async def list_webhooks(
    principal: OrgAdmin, service: WebhookServiceDep, filters: Annotated[WebhookFilter, Query()]
) -> PageEnvelope[WebhookRead]:
    return (await service.page(principal, filters)).envelope()


@router.post("", status_code=201, responses=errors(NotFound, InvalidInput))
async def create_webhook(
    body: WebhookCreate, principal: OrgAdmin, service: WebhookServiceDep
) -> Envelope[WebhookCreated]:
    """The response holds the signing secret, this once."""
    return Envelope(data=await service.create(principal, body))


@router.get("/{webhook_id}", responses=errors(NotFound))
async def get_webhook(webhook: WebhookManager) -> Envelope[WebhookRead]:
    return Envelope(data=WebhookService.read(webhook))


@router.put("/{webhook_id}", responses=errors(NotFound, InvalidInput))
async def update_webhook(
    webhook: WebhookManager, body: WebhookUpdate, service: WebhookServiceDep
) -> Envelope[WebhookRead]:
    return Envelope(data=await service.update(webhook, body))


@router.delete(
    "/{webhook_id}", status_code=204, response_class=Response, responses=errors(NotFound)
)
async def delete_webhook(webhook: WebhookManager, service: WebhookServiceDep) -> None:
    await service.delete(webhook)


@router.post("/{webhook_id}/rotate-secret", responses=errors(NotFound))
async def rotate_webhook_secret(
    webhook: WebhookManager, service: WebhookServiceDep
) -> Envelope[WebhookSecret]:
    """The new secret, shown once; the old one stops signing at once."""
    return Envelope(data=await service.rotate_secret(webhook))


@router.post("/{webhook_id}/test", status_code=202, responses=errors(NotFound, Conflict))
async def test_webhook(
    webhook: WebhookManager, service: WebhookServiceDep
) -> Envelope[DeliveryRead]:
    """Queues a `webhook.test` delivery; follow it in the delivery log."""
    return Envelope(data=await service.send_test(webhook))


@router.get("/{webhook_id}/deliveries", responses=errors(NotFound))
async def list_deliveries(
    webhook: WebhookManager,
    service: WebhookServiceDep,
    filters: Annotated[DeliveryFilter, Query()],
) -> PageEnvelope[DeliveryRead]:
    """Newest first."""
    return (await service.delivery_page(webhook, filters)).envelope()

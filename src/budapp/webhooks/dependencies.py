from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import Depends, Request

from budapp.core.auth import OrgAdmin
from budapp.core.components import components
from budapp.core.deps import SessionDep
from budapp.organizations.dependencies import OrganizationServiceDep
from budapp.webhooks.service import WebhookAccess, WebhookService


async def _service(
    request: Request, session: SessionDep, organizations: OrganizationServiceDep
) -> WebhookService:
    state = components(request)
    return WebhookService(
        session,
        state.keyring,
        organizations,
        allow_private=state.settings.webhook_private_destinations_allowed,
    )


WebhookServiceDep = Annotated[WebhookService, Depends(_service)]


async def _webhook(
    webhook_id: uuid.UUID, principal: OrgAdmin, service: WebhookServiceDep
) -> WebhookAccess:
    return await service.access(webhook_id, principal)


# Org admins, on a webhook of their organisation.
WebhookManager = Annotated[WebhookAccess, Depends(_webhook)]

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from budapp.core.components import components
from budapp.core.deps import SessionDep
from budapp.organizations.dependencies import OrganizationServiceDep
from budapp.webhooks.service import WebhookService


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

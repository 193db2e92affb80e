from __future__ import annotations

import json
import re
import secrets
import uuid
from dataclasses import dataclass
from typing import Any

import httpx
from pydantic_core import to_jsonable_python
from sqlalchemy.ext.asyncio import AsyncSession

from budapp.core.auth import Principal
from budapp.core.db import utcnow
from budapp.core.envelope import Page
from budapp.core.errors import Conflict, InvalidInput, NotFound
from budapp.core.keyring import DecryptionError, Keyring, Sealed
from budapp.events.service import publish_after_commit
from budapp.organizations.service import OrganizationService
from budapp.webhooks.destinations import is_public, literal_address
from budapp.webhooks.models import DeliveryStatus, Webhook, WebhookDelivery
from budapp.webhooks.repository import DeliveryRepository, WebhookRepository
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

# Announced after a commit that added deliveries: every replica's worker looks at once
# instead of at its next poll.
PENDING_TOPIC = "webhooks.pending"
TEST_EVENT = "webhook.test"
SECRET_PREFIX = "whsec_"  # noqa: S105 - a public prefix, not a secret
_EVENT_NAME = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)*$")


def check_event_name(name: str) -> None:
    if len(name) > 64 or not _EVENT_NAME.match(name):
        raise ValueError(f"event name {name!r} must look like 'endpoint.ready' (64 at most)")


def subscribes(patterns: list[str], event: str) -> bool:
    return any(
        pattern in ("*", event) or (pattern.endswith(".*") and event.startswith(pattern[:-1]))
        for pattern in patterns
    )


def _associated(webhook_id: uuid.UUID) -> bytes:
    # Binds the ciphertext to its webhook: copied onto another row, it does not open.
    return f"budapp:webhook:{webhook_id}".encode()


def seal_secret(keyring: Keyring, webhook: Webhook, secret: str) -> None:
    sealed = keyring.seal(secret.encode(), _associated(webhook.id))
    webhook.key_id = sealed.key_id
    webhook.secret_ciphertext = sealed.ciphertext


def open_secret(keyring: Keyring, webhook: Webhook) -> str:
    if webhook.secret_ciphertext is None or webhook.key_id is None:
        raise DecryptionError("the webhook holds no secret")
    sealed = Sealed(webhook.key_id, webhook.secret_ciphertext)
    return keyring.open(sealed, _associated(webhook.id)).decode()


def new_delivery(webhook: Webhook, event: str, data: dict[str, Any]) -> WebhookDelivery:
    delivery_id = uuid.uuid4()
    now = utcnow()
    document = {
        "id": str(delivery_id),
        "event": event,
        "organization_id": str(webhook.organization_id),
        "webhook_id": str(webhook.id),
        "created_at": now.isoformat(),
        # UUIDs, datetimes and models become JSON the way API responses do.
        "data": to_jsonable_python(data),
    }
    return WebhookDelivery(
        id=delivery_id,
        organization_id=webhook.organization_id,
        webhook_id=webhook.id,
        event=event,
        body=json.dumps(document, separators=(",", ":"), sort_keys=True),
        status=DeliveryStatus.PENDING,
        next_attempt_at=now,
        created_at=now,
    )


async def emit_webhook_event(
    session: AsyncSession, *, organization_id: uuid.UUID, event: str, data: dict[str, Any]
) -> int:
    """Queues `event` for every active webhook of the organization that subscribes to it, in
    the caller's unit of work; the worker sends them after the commit. Returns how many."""
    check_event_name(event)
    webhooks = await WebhookRepository(session).active_of_organization(organization_id)
    deliveries = DeliveryRepository(session)
    queued = 0
    for webhook in webhooks:
        if subscribes(webhook.events, event):
            deliveries.add(new_delivery(webhook, event, data))
            queued += 1
    if queued:
        await session.flush()
        publish_after_commit(session, PENDING_TOPIC, {"organization_id": str(organization_id)})
    return queued


@dataclass(frozen=True, slots=True)
class WebhookAccess:
    """A webhook of the caller's organisation, for an org admin."""

    webhook: Webhook
    principal: Principal


class WebhookService:
    """Webhooks of an organization, managed by its admins."""

    def __init__(
        self,
        session: AsyncSession,
        keyring: Keyring,
        organizations: OrganizationService,
        *,
        allow_private: bool,
    ) -> None:
        self.session = session
        self.keyring = keyring
        self.organizations = organizations
        self.allow_private = allow_private
        self.repository = WebhookRepository(session)
        self.deliveries = DeliveryRepository(session)

    async def access(self, webhook_id: uuid.UUID, by: Principal) -> WebhookAccess:
        """A webhook of the caller's organisation (any, for super admins); org admins only,
        which the caller's dependency (`WebhookManager`) checked."""
        webhook = await self.repository.get(by.scope, webhook_id)
        if webhook is None:
            raise NotFound("webhook", webhook_id)
        return WebhookAccess(webhook, by)

    @staticmethod
    def read(access: WebhookAccess) -> WebhookRead:
        return WebhookRead.model_validate(access.webhook)

    async def page(self, by: Principal, filters: WebhookFilter) -> Page[WebhookRead]:
        rows, total = await self.repository.page(by.scope, filters)
        return Page([WebhookRead.model_validate(row) for row in rows], total, filters)

    async def create(self, by: Principal, data: WebhookCreate) -> WebhookCreated:
        organization_id = data.organization_id or by.organization_id
        # Another organization is out of every scope but a super admin's.
        await self.organizations.get(by.scope, organization_id)
        url = self._checked_url(str(data.url))
        webhook = Webhook(
            id=uuid.uuid4(),
            organization_id=organization_id,
            url=url,
            description=data.description,
            events=data.events,
            active=data.active,
            created_by=by.user_id,
        )
        secret = _new_secret()
        seal_secret(self.keyring, webhook, secret)
        self.repository.add(webhook)
        await self.session.flush()
        return WebhookCreated(**WebhookRead.model_validate(webhook).model_dump(), secret=secret)

    async def update(self, access: WebhookAccess, data: WebhookUpdate) -> WebhookRead:
        webhook = access.webhook
        if data.url is not None:
            webhook.url = self._checked_url(str(data.url))
        if "description" in data.model_fields_set:
            webhook.description = data.description
        if data.events is not None:
            webhook.events = list(dict.fromkeys(data.events))
        if data.active is not None:
            webhook.active = data.active
        await self.session.flush()
        return WebhookRead.model_validate(webhook)

    async def delete(self, access: WebhookAccess) -> None:
        """Pending deliveries are not sent: the worker fails them as the webhook is gone."""
        webhook = access.webhook
        webhook.deleted_at = utcnow()
        webhook.active = False
        webhook.secret_ciphertext = None
        webhook.key_id = None
        await self.session.flush()

    async def rotate_secret(self, access: WebhookAccess) -> WebhookSecret:
        """A new secret, shown once; deliveries from now on (retries included) are signed
        with it, and the old one stops working at once."""
        webhook = access.webhook
        secret = _new_secret()
        seal_secret(self.keyring, webhook, secret)
        await self.session.flush()
        return WebhookSecret(id=webhook.id, secret=secret)

    async def send_test(self, access: WebhookAccess) -> DeliveryRead:
        webhook, by = access.webhook, access.principal
        if not webhook.active:
            raise Conflict("The webhook is inactive; activate it to send a test")
        delivery = new_delivery(
            webhook, TEST_EVENT, {"message": "A test delivery from budapp", "by": str(by.user_id)}
        )
        self.deliveries.add(delivery)
        await self.session.flush()
        publish_after_commit(
            self.session, PENDING_TOPIC, {"organization_id": str(webhook.organization_id)}
        )
        return DeliveryRead.model_validate(delivery)

    async def delivery_page(
        self, access: WebhookAccess, filters: DeliveryFilter
    ) -> Page[DeliveryRead]:
        webhook = access.webhook
        rows, total = await self.deliveries.page(webhook.id, filters)
        return Page([DeliveryRead.model_validate(row) for row in rows], total, filters)

    def _checked_url(self, url: str) -> str:
        """Literal addresses are judged now; host names when they are resolved, at delivery."""
        address = literal_address(httpx.URL(url).host)
        if address is not None and not self.allow_private and not is_public(address):
            raise InvalidInput(
                "Webhooks may not target private, loopback or link-local addresses here",
                details=[{"field": "url", "message": f"{address} is not a public address"}],
            )
        return url


async def webhooks_of_organization(session: AsyncSession, organization_id: uuid.UUID) -> str | None:
    count = await WebhookRepository(session).count_in_organization(organization_id)
    return f"{count} webhook(s)" if count else None


async def webhook_key_ids_in_use(session: AsyncSession) -> list[str]:
    """Keys that seal webhook secrets: a key in this list must not be retired."""
    return await WebhookRepository(session).key_ids_in_use()


def _new_secret() -> str:
    return SECRET_PREFIX + secrets.token_urlsafe(32)

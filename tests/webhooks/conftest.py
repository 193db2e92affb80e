from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from budapp.adapters.events import MemoryEventBus
from budapp.core.components import components
from budapp.credentials.service import VAULT
from budapp.webhooks.dispatcher import DeliveryPolicy, WebhookDispatcher
from tests.factories import World

Make = Callable[..., WebhookDispatcher]


@pytest.fixture(autouse=True)
def private_destinations(app: FastAPI, monkeypatch: pytest.MonkeyPatch) -> None:
    """The receivers of these tests listen on loopback."""
    monkeypatch.setattr(app.state.settings, "webhook_allow_private_destinations", True)


@pytest.fixture
async def dispatchers(app: FastAPI) -> AsyncIterator[Make]:
    """Makes delivery workers (replicas' workers) on the app's database; closes them."""
    made: list[WebhookDispatcher] = []

    def make(**policy: Any) -> WebhookDispatcher:
        values: dict[str, Any] = {
            "allow_private": True,
            "backoff_base_seconds": 0,
            "max_attempts": 3,
            "timeout_seconds": 2,
            "poll_seconds": 0.05,
        }
        values.update(policy)
        dispatcher = WebhookDispatcher(
            components(app).session_factory,
            components(app)[VAULT].keyring,
            MemoryEventBus(),
            DeliveryPolicy(**values),
        )
        made.append(dispatcher)
        return dispatcher

    yield make
    for dispatcher in made:
        await dispatcher.close()


async def create_webhook(
    client: httpx.AsyncClient, world: World, url: str, events: list[str] | None = None, **extra: Any
) -> dict[str, Any]:
    response = await client.post(
        "/webhooks",
        json={"url": url, "events": events or ["*"], **extra},
        headers=world["org_admin"].headers,
    )
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()["data"]
    return created


async def deliveries(
    client: httpx.AsyncClient, world: World, webhook_id: str | uuid.UUID
) -> list[dict[str, Any]]:
    response = await client.get(
        f"/webhooks/{webhook_id}/deliveries", headers=world["org_admin"].headers
    )
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["data"]
    return items

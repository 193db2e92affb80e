"""Deliveries to a real HTTP receiver on loopback: signed bodies, retries with backoff, giving
up, no redirects, the SSRF guard, and queued deliveries that outlive their worker."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import time
import uuid
from datetime import datetime, timedelta
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import func, select, update

from budapp.core.components import components
from budapp.core.db import session_scope, utcnow
from budapp.credentials.service import VAULT
from budapp.main import create_app
from budapp.notifications.service import notify
from budapp.webhooks.dispatcher import DeliveryPolicy, WebhookDispatcher
from budapp.webhooks.models import WebhookDelivery
from tests.conftest import is_postgres, make_settings
from tests.factories import World
from tests.live import eventually
from tests.webhooks.conftest import Make, create_webhook, deliveries
from tests.webhooks.receiver import receiving


def verify_signature(secret: str, headers: dict[str, str], body: bytes) -> bool:
    """The receiver's check, as docs/events.md shows it."""
    timestamp = headers["x-budapp-timestamp"]
    if abs(time.time() - int(timestamp)) > 300:
        return False
    expected = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return hmac.compare_digest("sha256=" + expected.hexdigest(), headers["x-budapp-signature"])


async def announce(app: FastAPI, world: World, kind: str = "endpoint.ready") -> uuid.UUID:
    async with session_scope(components(app).session_factory) as session:
        note = await notify(
            session,
            organization_id=world.org_a,
            user_id=world["user"].id,
            kind=kind,
            title="Endpoint ready",
            payload={"endpoint": "e1"},
        )
    return note.id


async def drain(dispatcher: WebhookDispatcher, rounds: int = 10) -> None:
    for _ in range(rounds):
        if await dispatcher.deliver_due() == 0:
            return


async def test_a_notification_is_delivered_signed(
    app: FastAPI, client: httpx.AsyncClient, world: World, dispatchers: Make
) -> None:
    async with receiving(200) as receiver:
        webhook = await create_webhook(client, world, receiver.url, ["endpoint.*"])
        note_id = await announce(app, world)
        await drain(dispatchers())

        [request] = receiver.requests
        assert verify_signature(webhook["secret"], request.headers, request.body)
        assert not verify_signature("whsec_wrong", request.headers, request.body)
        document = json.loads(request.body)
        assert request.headers["x-budapp-event"] == "endpoint.ready" == document["event"]
        assert request.headers["x-budapp-delivery"] == document["id"]
        assert request.headers["content-type"] == "application/json"
        assert document["organization_id"] == str(world.org_a)
        assert document["data"]["id"] == str(note_id)
        assert document["data"]["payload"] == {"endpoint": "e1"}

        [logged] = await deliveries(client, world, webhook["id"])
        assert logged["id"] == document["id"]
        assert (logged["status"], logged["attempts"], logged["response_status"]) == (
            "succeeded",
            1,
            200,
        )
        assert logged["completed_at"] is not None
        assert logged["duration_ms"] >= 0
        assert logged["payload"] == document


async def test_a_server_error_is_retried_until_it_succeeds(
    app: FastAPI, client: httpx.AsyncClient, world: World, dispatchers: Make
) -> None:
    async with receiving(500, 503, 200) as receiver:
        webhook = await create_webhook(client, world, receiver.url)
        await announce(app, world)
        await drain(dispatchers(max_attempts=5))

        assert len(receiver.requests) == 3
        assert len({r.headers["x-budapp-delivery"] for r in receiver.requests}) == 1
        assert all(
            verify_signature(webhook["secret"], r.headers, r.body) for r in receiver.requests
        )
        [logged] = await deliveries(client, world, webhook["id"])
        assert (logged["status"], logged["attempts"], logged["response_status"]) == (
            "succeeded",
            3,
            200,
        )


async def test_it_gives_up_after_the_last_attempt(
    app: FastAPI, client: httpx.AsyncClient, world: World, dispatchers: Make
) -> None:
    async with receiving(500) as receiver:
        webhook = await create_webhook(client, world, receiver.url)
        await announce(app, world)
        await drain(dispatchers(max_attempts=3))

        assert len(receiver.requests) == 3
        [logged] = await deliveries(client, world, webhook["id"])
        assert (logged["status"], logged["attempts"]) == ("failed", 3)
        assert (logged["response_status"], logged["error"]) == (500, "HTTP 500")
        assert logged["response_excerpt"] == "answer 500"
        assert logged["next_attempt_at"] is None


async def test_retries_wait_for_an_exponential_jittered_backoff(
    app: FastAPI, client: httpx.AsyncClient, world: World, dispatchers: Make
) -> None:
    async with receiving(500) as receiver:
        webhook = await create_webhook(client, world, receiver.url)
        await announce(app, world)
        before = utcnow()
        await drain(dispatchers(max_attempts=5, backoff_base_seconds=60))

        # Not due yet: one attempt only.
        assert len(receiver.requests) == 1
        [logged] = await deliveries(client, world, webhook["id"])
        assert logged["status"] == "pending"
        wait = (datetime.fromisoformat(logged["next_attempt_at"]) - before).total_seconds()
        # Base 60 s, half of it random: between 30 and 60 s (with the time the attempt took).
        assert 30 - 1 <= wait <= 60 + 5


def test_backoff_grows_exponentially_with_jitter_and_a_ceiling() -> None:
    policy = DeliveryPolicy(backoff_base_seconds=10, backoff_max_seconds=100)
    for attempt, full in [(1, 10), (2, 20), (3, 40), (4, 80), (5, 100), (9, 100)]:
        delays = {policy.backoff(attempt).total_seconds() for _ in range(50)}
        assert all(full / 2 <= delay <= full for delay in delays)
        assert len(delays) > 1  # jittered


async def test_redirects_are_not_followed(
    app: FastAPI, client: httpx.AsyncClient, world: World, dispatchers: Make
) -> None:
    async with receiving(302) as receiver:
        receiver.redirect = "/elsewhere"
        webhook = await create_webhook(client, world, receiver.url)
        await announce(app, world)
        await drain(dispatchers(max_attempts=1))

        assert [r.path for r in receiver.requests] == ["/hook"]
        [logged] = await deliveries(client, world, webhook["id"])
        assert logged["status"] == "failed"
        assert logged["error"] == "HTTP 302 (redirects are not followed)"


async def test_private_destinations_are_refused_when_not_allowed(
    app: FastAPI, client: httpx.AsyncClient, world: World, dispatchers: Make
) -> None:
    async with receiving(200) as receiver:
        # A host name that resolves to loopback: judged when it is resolved, at delivery.
        url = receiver.url.replace("127.0.0.1", "localhost")
        webhook = await create_webhook(client, world, url)
        await announce(app, world)
        await drain(dispatchers(allow_private=False, max_attempts=1))

        assert receiver.requests == []
        [logged] = await deliveries(client, world, webhook["id"])
        assert logged["status"] == "failed"
        assert "non-public address" in logged["error"]


async def test_only_active_webhooks_subscribed_to_the_event_receive_it(
    app: FastAPI, client: httpx.AsyncClient, world: World, dispatchers: Make
) -> None:
    async with receiving(200) as receiver:
        await create_webhook(client, world, receiver.url + "/family", ["endpoint.*"])
        await create_webhook(client, world, receiver.url + "/exact", ["workflow.failed"])
        await create_webhook(client, world, receiver.url + "/off", ["*"], active=False)
        other = await client.post(
            "/webhooks",
            json={"url": receiver.url + "/org-b", "events": ["*"]},
            headers=world["org_admin_b"].headers,
        )
        assert other.status_code == 201
        await announce(app, world, "endpoint.ready")
        await announce(app, world, "workflow.failed")
        await announce(app, world, "cluster.lost")
        await drain(dispatchers())

        received = sorted((r.path, json.loads(r.body)["event"]) for r in receiver.requests)
        assert received == [
            ("/hook/exact", "workflow.failed"),
            ("/hook/family", "endpoint.ready"),
        ]


async def test_a_rotated_secret_signs_the_next_deliveries(
    app: FastAPI, client: httpx.AsyncClient, world: World, dispatchers: Make
) -> None:
    async with receiving(200) as receiver:
        webhook = await create_webhook(client, world, receiver.url)
        rotated = await client.post(
            f"/webhooks/{webhook['id']}/rotate-secret", headers=world["org_admin"].headers
        )
        assert rotated.status_code == 200
        secret = rotated.json()["data"]["secret"]
        assert secret.startswith("whsec_")
        assert secret != webhook["secret"]
        await announce(app, world)
        await drain(dispatchers())

        [request] = receiver.requests
        assert verify_signature(secret, request.headers, request.body)
        assert not verify_signature(webhook["secret"], request.headers, request.body)


async def test_the_test_route_sends_a_test_event(
    app: FastAPI, client: httpx.AsyncClient, world: World, dispatchers: Make
) -> None:
    async with receiving(200) as receiver:
        webhook = await create_webhook(client, world, receiver.url, ["endpoint.ready"])
        queued = await client.post(
            f"/webhooks/{webhook['id']}/test", headers=world["org_admin"].headers
        )
        assert queued.status_code == 202
        assert queued.json()["data"]["status"] == "pending"
        await drain(dispatchers())

        [request] = receiver.requests
        assert request.headers["x-budapp-event"] == "webhook.test"
        assert request.headers["x-budapp-delivery"] == queued.json()["data"]["id"]


async def test_deliveries_of_a_deleted_webhook_are_not_sent(
    app: FastAPI, client: httpx.AsyncClient, world: World, dispatchers: Make
) -> None:
    async with receiving(200) as receiver:
        webhook = await create_webhook(client, world, receiver.url)
        await announce(app, world)
        deleted = await client.delete(
            f"/webhooks/{webhook['id']}", headers=world["org_admin"].headers
        )
        assert deleted.status_code == 204
        await drain(dispatchers())

        assert receiver.requests == []
        async with components(app).session_factory() as session:
            row = await session.scalar(select(WebhookDelivery))
        assert row is not None
        assert (row.status, row.error) == ("failed", "the webhook was deleted")


async def test_a_running_worker_delivers_as_soon_as_the_event_commits(
    app: FastAPI, client: httpx.AsyncClient, world: World, dispatchers: Make
) -> None:
    async with receiving(200) as receiver:
        await create_webhook(client, world, receiver.url)
        # Polls rarely: only the wake-up over the bus can make it fast.
        dispatcher = WebhookDispatcher(
            components(app).session_factory,
            components(app)[VAULT].keyring,
            components(app).event_bus,
            DeliveryPolicy(allow_private=True, poll_seconds=60),
        )
        await dispatcher.start()
        try:
            await asyncio.sleep(0.1)  # its first look found nothing
            started = time.monotonic()
            await announce(app, world)
            await eventually(lambda: len(receiver.requests) == 1, within=5)
            assert time.monotonic() - started < 2
        finally:
            await dispatcher.close()


async def test_pending_deliveries_are_sent_after_a_restart(
    app: FastAPI, client: httpx.AsyncClient, world: World, data_dir: Path, db_url: str
) -> None:
    async with receiving(200) as receiver:
        webhook = await create_webhook(client, world, receiver.url)
        # Queued while no worker runs (the test app has none): as if budapp stopped here.
        for _ in range(3):
            await announce(app, world)

        settings = make_settings(
            data_dir,
            db_url,
            webhook_worker_enabled=True,
            webhook_allow_private_destinations=True,
            webhook_poll_seconds=0.1,
        )
        restarted = create_app(settings)
        async with restarted.router.lifespan_context(restarted):
            await eventually(lambda: len(receiver.requests) == 3)

        assert len({r.headers["x-budapp-delivery"] for r in receiver.requests}) == 3
        logged = await deliveries(client, world, webhook["id"])
        assert {item["status"] for item in logged} == {"succeeded"}


async def test_a_delivery_claimed_by_a_worker_that_died_is_sent_after_its_lease(
    app: FastAPI, client: httpx.AsyncClient, world: World, dispatchers: Make
) -> None:
    async with receiving(200) as receiver:
        webhook = await create_webhook(client, world, receiver.url)
        await announce(app, world)
        dead = dispatchers()
        [claimed] = await dead._claim()  # claimed, then the process died before sending
        survivor = dispatchers()

        assert await survivor.deliver_due() == 0  # still leased to the dead worker
        async with session_scope(components(app).session_factory) as session:
            await session.execute(
                update(WebhookDelivery).values(next_attempt_at=utcnow() - timedelta(seconds=1))
            )
        await drain(survivor)

        [request] = receiver.requests
        assert request.headers["x-budapp-delivery"] == str(claimed.delivery_id)
        [logged] = await deliveries(client, world, webhook["id"])
        assert (logged["status"], logged["attempts"]) == ("succeeded", 2)


async def test_concurrent_workers_send_each_delivery_once(
    app: FastAPI, client: httpx.AsyncClient, world: World, dispatchers: Make, db_url: str
) -> None:
    if not is_postgres(db_url):
        pytest.skip("several workers at once run on PostgreSQL (SKIP LOCKED); SQLite has one")
    async with receiving(200) as receiver:
        await create_webhook(client, world, receiver.url)
        for _ in range(30):
            await announce(app, world)
        workers = [dispatchers(batch_size=4) for _ in range(4)]

        await asyncio.gather(*(drain(worker, rounds=30) for worker in workers))

        ids = [r.headers["x-budapp-delivery"] for r in receiver.requests]
        assert len(ids) == 30
        assert len(set(ids)) == 30
        async with components(app).session_factory() as session:
            attempts = await session.scalar(select(func.sum(WebhookDelivery.attempts)))
        assert attempts == 30

"""The inbox: `notify` puts a message in one user's inbox (and announces it on the user's
streams); each user reads, marks and deletes their own messages only."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from budapp.adapters.events import MemoryEventBus
from budapp.core.components import components
from budapp.core.db import create_session_factory, session_scope
from budapp.events.service import ORG_EVENTS_TOPIC, bind_event_bus
from budapp.notifications.models import Severity
from budapp.notifications.schemas import NotificationRead
from budapp.notifications.service import notify
from tests.factories import Account, World


async def send(
    app: FastAPI, account: Account, kind: str = "endpoint.ready", **fields: Any
) -> NotificationRead:
    async with session_scope(components(app).session_factory) as session:
        return await notify(
            session,
            organization_id=account.organization_id,
            user_id=account.id,
            kind=kind,
            title=fields.pop("title", f"About {kind}"),
            body=fields.pop("body", "details"),
            payload=fields.pop("payload", {"endpoint_id": str(uuid.uuid4())}),
            **fields,
        )


async def test_a_user_sees_their_own_notifications_newest_first(
    app: FastAPI, client: httpx.AsyncClient, world: World
) -> None:
    first = await send(app, world["user"], title="first")
    second = await send(app, world["user"], "workflow.failed", severity=Severity.ERROR)
    await send(app, world["org_admin"], title="the admin's")

    response = await client.get("/notifications", headers=world["user"].headers)

    assert response.status_code == 200
    body = response.json()
    assert [item["id"] for item in body["data"]] == [str(second.id), str(first.id)]
    assert body["meta"] == {"total": 2, "page": 1, "per_page": 20}
    latest = body["data"][0]
    assert latest["kind"] == "workflow.failed"
    assert latest["severity"] == "error"
    assert latest["read_at"] is None
    assert latest["user_id"] == str(world["user"].id)


async def test_filters_by_unread_and_kind_and_pages(
    app: FastAPI, client: httpx.AsyncClient, world: World
) -> None:
    headers = world["user"].headers
    ready = [await send(app, world["user"]) for _ in range(3)]
    failed = await send(app, world["user"], "workflow.failed")
    await client.post(f"/notifications/{ready[0].id}/read", headers=headers)

    unread = await client.get("/notifications", params={"unread": "true"}, headers=headers)
    read = await client.get("/notifications", params={"unread": "false"}, headers=headers)
    kind = await client.get("/notifications", params={"kind": "workflow.failed"}, headers=headers)
    page = await client.get("/notifications", params={"per_page": 2, "page": 2}, headers=headers)

    assert unread.json()["meta"]["total"] == 3
    assert [item["id"] for item in read.json()["data"]] == [str(ready[0].id)]
    assert [item["id"] for item in kind.json()["data"]] == [str(failed.id)]
    assert [item["id"] for item in page.json()["data"]] == [str(ready[1].id), str(ready[0].id)]


async def test_mark_read_count_and_read_all(
    app: FastAPI, client: httpx.AsyncClient, world: World
) -> None:
    headers = world["user"].headers
    notes = [await send(app, world["user"]) for _ in range(3)]
    await send(app, world["outsider"])

    async def unread() -> int:
        response = await client.get("/notifications/unread-count", headers=headers)
        assert response.status_code == 200
        count: int = response.json()["data"]["unread"]
        return count

    assert await unread() == 3
    marked = await client.post(f"/notifications/{notes[0].id}/read", headers=headers)
    assert marked.status_code == 200
    read_at = marked.json()["data"]["read_at"]
    assert read_at is not None
    # Marking again changes nothing, not even the time.
    again = await client.post(f"/notifications/{notes[0].id}/read", headers=headers)
    assert again.json()["data"]["read_at"] == read_at
    assert await unread() == 2

    everything = await client.post("/notifications/read-all", headers=headers)
    assert everything.json()["data"] == {"marked": 2}
    assert await unread() == 0
    outsider = await client.get("/notifications/unread-count", headers=world["outsider"].headers)
    assert outsider.json()["data"]["unread"] == 1


async def test_delete_removes_only_the_callers_notification(
    app: FastAPI, client: httpx.AsyncClient, world: World
) -> None:
    mine = await send(app, world["user"])
    headers = world["user"].headers

    assert (await client.delete(f"/notifications/{mine.id}", headers=headers)).status_code == 204
    assert (await client.delete(f"/notifications/{mine.id}", headers=headers)).status_code == 404
    assert (await client.get("/notifications", headers=headers)).json()["meta"]["total"] == 0


@pytest.mark.parametrize("actor", ["outsider", "org_admin", "super_admin", "user_b"])
async def test_nobody_else_reads_marks_or_deletes_a_users_notification(
    app: FastAPI, client: httpx.AsyncClient, world: World, actor: str
) -> None:
    note = await send(app, world["user"])
    headers = world[actor].headers

    listed = await client.get("/notifications", headers=headers)
    marked = await client.post(f"/notifications/{note.id}/read", headers=headers)
    deleted = await client.delete(f"/notifications/{note.id}", headers=headers)

    assert listed.json()["data"] == []
    assert (marked.status_code, deleted.status_code) == (404, 404)
    left = await client.get("/notifications", headers=world["user"].headers)
    assert [item["read_at"] for item in left.json()["data"]] == [None]


@pytest.mark.parametrize(
    "params", [{"unread": "maybe"}, {"kind": "x" * 65}, {"per_page": 0}, {"colour": "red"}]
)
async def test_bad_filters_are_a_validation_error(
    client: httpx.AsyncClient, world: World, params: dict[str, Any]
) -> None:
    response = await client.get("/notifications", params=params, headers=world["user"].headers)
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "VALIDATION_ERROR"


async def test_notify_announces_the_notification_to_the_recipient_after_commit(
    app: FastAPI, world: World
) -> None:
    bus = MemoryEventBus()
    heard: list[dict[str, Any] | None] = []
    bus.subscribe(ORG_EVENTS_TOPIC, heard.append)
    factory = create_session_factory(components(app).engine)
    bind_event_bus(factory, bus)
    account = world["user"]

    async def failing_unit_of_work() -> None:
        async with session_scope(factory) as session:
            await notify(
                session,
                organization_id=account.organization_id,
                user_id=account.id,
                kind="endpoint.failed",
                title="lost",
            )
            raise RuntimeError("the caller's transaction fails")

    with pytest.raises(RuntimeError):
        await failing_unit_of_work()
    assert heard == []

    async with session_scope(factory) as session:
        note = await notify(
            session,
            organization_id=account.organization_id,
            user_id=account.id,
            kind="endpoint.failed",
            title="Endpoint failed",
            payload={"reason": "out of memory"},
        )
        assert heard == []  # not before the commit

    assert len(heard) == 1
    event = heard[0]
    assert event is not None
    assert event["type"] == "notification.created"
    assert event["user_id"] == str(account.id)
    assert event["organization_id"] == str(account.organization_id)
    assert event["data"]["id"] == str(note.id)
    assert event["data"]["payload"] == {"reason": "out of memory"}


@pytest.mark.parametrize("kind", ["", "Endpoint.Ready", "endpoint ready", "x" * 65])
async def test_notify_refuses_a_malformed_kind(app: FastAPI, world: World, kind: str) -> None:
    with pytest.raises(ValueError, match="event name"):
        await send(app, world["user"], kind)

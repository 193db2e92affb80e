"""GET /ws against a real uvicorn server and a real WebSocket client: who hears which events,
how a client authenticates, and when the server ends a stream."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from budapp.core.components import components
from budapp.core.db import session_scope
from budapp.events.hub import EVENT_HUB
from budapp.events.service import EventType, publish_org_event
from tests.factories import World
from tests.live import serve


@pytest.fixture
async def address(app: FastAPI) -> AsyncIterator[str]:
    async with serve(app) as served:
        yield served


@asynccontextmanager
async def stream(
    address: str,
    token: str | None = None,
    *,
    query: str = "",
    subprotocols: list[str] | None = None,
    ready: bool = True,
) -> AsyncIterator[ClientConnection]:
    headers = {"Authorization": f"Bearer {token}"} if token else None
    async with connect(
        f"ws://{address}/ws{query}",
        additional_headers=headers,
        subprotocols=subprotocols,  # type: ignore[arg-type]
        open_timeout=5,
    ) as connection:
        if ready:
            assert (await receive(connection))["type"] == "ready"
        yield connection


async def receive(connection: ClientConnection) -> dict[str, Any]:
    """The next message that is not a ping."""
    while True:
        message: dict[str, Any] = json.loads(await asyncio.wait_for(connection.recv(), 5))
        if message["type"] != "ping":
            return message


async def closed_with(connection: ClientConnection) -> int:
    """The close code the server ends the stream with (pings before it are skipped)."""

    async def read_until_closed() -> None:
        while True:
            await connection.recv()

    with pytest.raises(ConnectionClosed) as closed:
        await asyncio.wait_for(read_until_closed(), 5)
    assert closed.value.rcvd is not None
    return closed.value.rcvd.code


async def publish(
    app: FastAPI,
    organization_id: uuid.UUID,
    data: dict[str, Any],
    *,
    user_id: uuid.UUID | None = None,
    type: str = EventType.ENDPOINT_STATUS,
) -> None:
    async with session_scope(components(app).session_factory) as session:
        publish_org_event(session, organization_id, type, data, user_id=user_id)


async def test_events_reach_the_organizations_clients_only(
    app: FastAPI, world: World, address: str
) -> None:
    async with (
        stream(address, world["user"].token) as user_a,
        stream(address, world["user_b"].token) as user_b,
    ):
        await publish(app, world.org_b, {"n": "for b"})
        await publish(app, world.org_a, {"n": "for a"})

        event = await receive(user_a)
        assert event["type"] == "endpoint.status"
        assert event["data"] == {"n": "for a"}
        assert event["organization_id"] == str(world.org_a)
        assert (await receive(user_b))["data"] == {"n": "for b"}


async def test_an_event_addressed_to_a_user_reaches_that_user_only(
    app: FastAPI, world: World, address: str
) -> None:
    async with (
        stream(address, world["user"].token) as user,
        stream(address, world["org_admin"].token) as admin,
    ):
        await publish(app, world.org_a, {"n": 1}, user_id=world["user"].id)
        await publish(app, world.org_a, {"n": 2})

        assert (await receive(user))["data"] == {"n": 1}
        assert (await receive(user))["data"] == {"n": 2}
        # The admin's first event is the one for everybody.
        assert (await receive(admin))["data"] == {"n": 2}


async def test_a_rolled_back_unit_of_work_publishes_nothing(
    app: FastAPI, world: World, address: str
) -> None:
    async with stream(address, world["user"].token) as user:

        async def failing_step() -> None:
            async with session_scope(components(app).session_factory) as session:
                publish_org_event(session, world.org_a, EventType.WORKFLOW_STEP, {"n": "lost"})
                raise RuntimeError("the step failed")

        with pytest.raises(RuntimeError):
            await failing_step()
        await publish(app, world.org_a, {"n": "kept"}, type=EventType.WORKFLOW_STATUS)

        event = await receive(user)
        assert (event["type"], event["data"]) == ("workflow.status", {"n": "kept"})


async def test_a_browser_sends_the_token_as_a_subprotocol(
    app: FastAPI, world: World, address: str
) -> None:
    offered = ["budapp", f"bearer.{world['user'].token}"]
    async with stream(address, subprotocols=offered) as user:
        assert user.subprotocol == "budapp"
        await publish(app, world.org_a, {"n": 1})
        assert (await receive(user))["data"] == {"n": 1}


@pytest.mark.parametrize("token", [None, "not-a-jwt"])
async def test_a_missing_or_invalid_token_is_closed_with_4401(
    world: World, address: str, token: str | None
) -> None:
    async with stream(address, token, ready=False) as connection:
        assert await closed_with(connection) == 4401


async def test_a_token_in_the_query_string_is_not_accepted(world: World, address: str) -> None:
    # Query strings end up in access logs: only the header and the subprotocol carry tokens.
    async with stream(address, query=f"?token={world['user'].token}", ready=False) as connection:
        assert await closed_with(connection) == 4401


async def test_a_super_admin_may_watch_another_organization(
    app: FastAPI, world: World, address: str
) -> None:
    query = f"?organization_id={world.org_b}"
    async with stream(address, world["super_admin"].token, query=query) as admin:
        await publish(app, world.org_a, {"n": "a"})
        await publish(app, world.org_b, {"n": "b"})
        assert (await receive(admin))["data"] == {"n": "b"}


@pytest.mark.parametrize("actor", ["user", "org_admin"])
async def test_others_cannot_watch_another_organization(
    world: World, address: str, actor: str
) -> None:
    query = f"?organization_id={world.org_b}"
    async with stream(address, world[actor].token, query=query, ready=False) as connection:
        assert await closed_with(connection) == 4404


async def test_logout_ends_the_stream_within_a_heartbeat(
    app: FastAPI,
    world: World,
    address: str,
    client: httpx.AsyncClient,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(app.state.settings, "ws_heartbeat_seconds", 0.2)
    async with stream(address, world["user"].token) as user:
        # Alive and pinged while the session is open.
        assert json.loads(await asyncio.wait_for(user.recv(), 5))["type"] == "ping"
        response = await client.post("/auth/logout", headers=world["user"].headers)
        assert response.status_code == 204

        assert await closed_with(user) == 4401


async def test_a_token_of_another_user_cannot_take_over_a_stream(
    world: World, address: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with stream(address, world["user"].token) as user:
        await user.send(json.dumps({"type": "auth", "token": world["outsider"].token}))
        assert await closed_with(user) == 4403


async def test_a_fresh_token_extends_the_stream(
    app: FastAPI, world: World, address: str, client: httpx.AsyncClient
) -> None:
    refreshed = await client.post(
        "/auth/refresh", json={"refresh_token": world["user"].refresh_token}
    )
    assert refreshed.status_code == 200, refreshed.text
    async with stream(address, world["user"].token) as user:
        await user.send(
            json.dumps({"type": "auth", "token": refreshed.json()["data"]["access_token"]})
        )
        await publish(app, world.org_a, {"n": 1})
        assert (await receive(user))["data"] == {"n": 1}


async def test_a_client_that_falls_behind_is_dropped_without_blocking_others(
    app: FastAPI, world: World, address: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(components(app)[EVENT_HUB], "_queue_size", 3)
    async with stream(address, world["user"].token) as slow:
        monkeypatch.setattr(components(app)[EVENT_HUB], "_queue_size", 1000)
        async with stream(address, world["org_admin"].token) as steady:
            async with session_scope(components(app).session_factory) as session:
                for n in range(20):
                    publish_org_event(session, world.org_a, EventType.WORKFLOW_STEP, {"n": n})

            # The twenty were queued at once (one commit): three fit the slow client's queue.
            assert await closed_with(slow) == 4408
            received = [(await receive(steady))["data"]["n"] for _ in range(20)]
            assert received == list(range(20))


async def test_disconnected_clients_leave_the_hub(app: FastAPI, world: World, address: str) -> None:
    hub = components(app)[EVENT_HUB]
    before = hub.connection_count
    async with stream(address, world["user"].token):
        assert hub.connection_count == before + 1
    for _ in range(100):
        if hub.connection_count == before:
            break
        await asyncio.sleep(0.02)
    assert hub.connection_count == before


async def test_a_malformed_organization_id_is_refused_at_the_handshake(
    world: World, address: str
) -> None:
    with pytest.raises(InvalidStatus) as refused:
        async with stream(address, world["super_admin"].token, query="?organization_id=nope"):
            pass
    assert refused.value.response.status_code == 403

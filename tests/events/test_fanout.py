"""Two budapp replicas on one database and one Redis: a client of either hears the events
published by both (the bus fans organisation events out through Redis pub/sub)."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from pathlib import Path

import pytest
from fastapi import FastAPI
from redis.asyncio import Redis

from budapp.events.hub import RESYNC
from budapp.main import create_app
from tests.conftest import make_settings
from tests.events.test_websocket import publish, receive, stream
from tests.factories import World
from tests.live import serve
from tests.redis_buses import require_redis

REDIS_URL = os.environ.get("BUDAPP_TEST_EVENTS_REDIS_URL", "redis://127.0.0.1:6379/3")


@pytest.fixture
async def replicas(app: FastAPI, data_dir: Path, db_url: str) -> AsyncIterator[list[FastAPI]]:
    await require_redis(REDIS_URL)
    async with AsyncExitStack() as stack:
        started = []
        for _ in range(2):
            # Named, so that a test can find this replica's connections on a shared server.
            named = f"{REDIS_URL}?client_name=budapp-replica-{uuid.uuid4().hex}"
            replica = create_app(make_settings(data_dir, db_url, redis_url=named))
            replica.state.redis_client_name = named.rsplit("=", 1)[1]
            await stack.enter_async_context(replica.router.lifespan_context(replica))
            started.append(replica)
        yield started


async def test_each_replicas_clients_hear_the_other_replicas_events(
    world: World, replicas: list[FastAPI]
) -> None:
    one, two = replicas
    async with (
        serve(one) as address_one,
        serve(two) as address_two,
        stream(address_one, world["user"].token) as on_one,
        stream(address_two, world["user"].token) as on_two,
        stream(address_two, world["user_b"].token) as other_org,
    ):
        await publish(one, world.org_a, {"from": "one"})
        await publish(two, world.org_a, {"from": "two"})
        await publish(one, world.org_b, {"from": "one", "org": "b"})
        await publish(two, world.org_a, {"from": "two", "to": "user"}, user_id=world["user"].id)

        for client in (on_one, on_two):
            heard = [(await receive(client))["data"] for _ in range(3)]
            assert heard == [
                {"from": "one"},
                {"from": "two"},
                {"from": "two", "to": "user"},
            ]
        assert (await receive(other_org))["data"] == {"from": "one", "org": "b"}


async def test_clients_are_told_to_resync_when_the_bus_reconnects(
    world: World, replicas: list[FastAPI]
) -> None:
    replica = replicas[0]
    async with serve(replica) as address, stream(address, world["user"].token) as client:
        admin = Redis.from_url(REDIS_URL)
        try:
            # Only this replica's listener: other test runs may share the server.
            name = replica.state.redis_client_name
            listeners = [c for c in await admin.client_list(_type="pubsub") if c["name"] == name]
            assert len(listeners) == 1, listeners
            await admin.client_kill_filter(_id=listeners[0]["id"])
        finally:
            await admin.aclose()
        assert await receive(client) == RESYNC

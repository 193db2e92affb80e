"""The event bus: every subscriber of a topic hears each publication, in one process (memory)
or across replicas (Redis pub/sub), and a Redis listener that lost its connection says so."""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from redis.asyncio import Redis

from budapp.adapters.events import EventBus, MemoryEventBus, create_event_bus
from budapp.adapters.events.redis import RedisEventBus
from tests.redis_buses import require_redis

REDIS_URL = os.environ.get("BUDAPP_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
UNREACHABLE_REDIS_URL = "redis://127.0.0.1:1/0"
Payload = dict[str, Any] | None


class Inbox:
    """A handler that keeps what it hears."""

    def __init__(self) -> None:
        self.received: list[Payload] = []

    def __call__(self, payload: Payload) -> None:
        self.received.append(payload)


async def eventually(condition: Callable[[], bool], within: float = 5.0) -> None:
    deadline = time.monotonic() + within
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)


def _topic() -> str:
    # Pub/sub channels are shared by every database of a Redis server, and other test runs
    # may use the same server: each test talks on topics of its own.
    return f"test.{uuid.uuid4().hex}"


def _redis_bus() -> RedisEventBus:
    # Named, so that a test can find this bus's connection on the server.
    return RedisEventBus.from_url(f"{REDIS_URL}?client_name=budapp-test-{uuid.uuid4().hex}")


@pytest.fixture
async def redis_admin() -> AsyncIterator[Redis]:
    """A plain client, to reach the server behind the buses' backs."""
    await require_redis(REDIS_URL)
    client = Redis.from_url(REDIS_URL)
    yield client
    await client.aclose()


@pytest.fixture
async def redis_buses(redis_admin: Redis) -> AsyncIterator[Callable[[], RedisEventBus]]:
    """Makes Redis buses, each one a replica; closes them all at the end."""
    made: list[RedisEventBus] = []

    def make() -> RedisEventBus:
        made.append(_redis_bus())
        return made[-1]

    yield make
    for bus in made:
        await bus.close()


@pytest.fixture(params=["memory", "redis"])
async def bus(request: pytest.FixtureRequest) -> AsyncIterator[EventBus]:
    backend: EventBus
    if request.param == "memory":
        backend = MemoryEventBus()
    else:
        await require_redis(REDIS_URL)
        backend = _redis_bus()
    yield backend
    await backend.close()


async def test_publish_reaches_every_subscriber_of_the_topic_only(bus: EventBus) -> None:
    topic, other = _topic(), _topic()
    first, second, bystander = Inbox(), Inbox(), Inbox()
    bus.subscribe(topic, first)
    bus.subscribe(topic, second)
    bus.subscribe(other, bystander)
    await bus.start()

    await bus.publish(topic, {"key_id": "k1"})
    # Published after, on the same connection: once it has arrived, so has anything else.
    await bus.publish(other, {"marker": True})
    await eventually(lambda: bystander.received == [{"marker": True}])

    assert first.received == [{"key_id": "k1"}]
    assert second.received == [{"key_id": "k1"}]


async def test_publish_without_subscribers_is_harmless(bus: EventBus) -> None:
    topic = _topic()
    inbox = Inbox()
    bus.subscribe(topic, inbox)
    await bus.start()

    await bus.publish(_topic(), {"nobody": "listens"})
    await bus.publish(topic, {"n": 1})

    await eventually(lambda: inbox.received == [{"n": 1}])


async def test_a_failing_handler_does_not_silence_the_others(bus: EventBus) -> None:
    topic = _topic()
    inbox = Inbox()

    def broken(payload: Payload) -> None:
        raise RuntimeError(f"cannot handle {payload}")

    bus.subscribe(topic, broken)
    bus.subscribe(topic, inbox)
    await bus.start()

    await bus.publish(topic, {"n": 1})
    await bus.publish(topic, {"n": 2})

    await eventually(lambda: inbox.received == [{"n": 1}, {"n": 2}])


async def test_redis_delivers_to_every_replica(
    redis_buses: Callable[[], RedisEventBus],
) -> None:
    topic = _topic()
    one, two = redis_buses(), redis_buses()
    heard_by_one, heard_by_two = Inbox(), Inbox()
    one.subscribe(topic, heard_by_one)
    two.subscribe(topic, heard_by_two)
    await one.start()
    await two.start()

    await one.publish(topic, {"from": "one"})
    await two.publish(topic, {"from": "two"})

    expected = [{"from": "one"}, {"from": "two"}]
    await eventually(lambda: heard_by_two.received == expected)
    await eventually(lambda: heard_by_one.received == expected)


async def _kill_listener(admin: Redis, bus: RedisEventBus) -> None:
    # Only this bus's pub/sub connection: `CLIENT KILL TYPE pubsub` would also cut the
    # listeners of other test runs sharing the server.
    name = bus._client.get_connection_kwargs()["client_name"]
    listeners = [c for c in await admin.client_list(_type="pubsub") if c.get("name") == name]
    assert len(listeners) == 1, listeners
    assert await admin.client_kill_filter(_id=listeners[0]["id"]) == 1


async def test_redis_listener_reconnects_and_asks_for_a_resync(
    redis_admin: Redis, redis_buses: Callable[[], RedisEventBus]
) -> None:
    topic = _topic()
    listener, publisher = redis_buses(), redis_buses()
    inbox, elsewhere = Inbox(), Inbox()
    listener.subscribe(topic, inbox)
    listener.subscribe(_topic(), elsewhere)
    await listener.start()
    await publisher.publish(topic, {"n": 1})
    await eventually(lambda: inbox.received == [{"n": 1}])

    await _kill_listener(redis_admin, listener)

    # Whatever was published while it was away is lost: every handler must drop its cache.
    await eventually(lambda: inbox.received == [{"n": 1}, None])
    assert elsewhere.received == [None]
    await publisher.publish(topic, {"n": 2})
    await eventually(lambda: inbox.received == [{"n": 1}, None, {"n": 2}])
    assert elsewhere.received == [None]


async def test_redis_publish_to_an_unreachable_server_does_not_raise() -> None:
    bus = RedisEventBus.from_url(UNREACHABLE_REDIS_URL)
    try:
        # The change it announces is already committed: losing the message must not fail it.
        await asyncio.wait_for(bus.publish(_topic(), {"key_id": "k1"}), timeout=30)
    finally:
        await bus.close()


async def test_factory_picks_the_backend_from_settings() -> None:
    memory = create_event_bus("")
    redis = create_event_bus(REDIS_URL)
    assert isinstance(memory, MemoryEventBus)
    assert isinstance(redis, RedisEventBus)
    await memory.close()
    await redis.close()

from __future__ import annotations

import asyncio
import contextlib
import json
from collections import defaultdict
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import RedisError

from budapp.adapters.events.base import Handler, notify
from budapp.core.logging import get_logger

_PREFIX = "budapp:events:"
log = get_logger("budapp.events")


class RedisEventBus:
    """Redis pub/sub. A listener task delivers messages to local handlers; after a lost
    connection it tells every handler to resynchronise (payload None), since messages sent
    meanwhile are gone."""

    def __init__(self, client: Redis, *, retry_seconds: float = 1.0) -> None:
        self._client = client
        self._handlers: dict[str, list[Handler]] = defaultdict(list)
        self._task: asyncio.Task[None] | None = None
        self._retry = retry_seconds
        self._ready = asyncio.Event()

    @classmethod
    def from_url(cls, url: str) -> RedisEventBus:
        return cls(Redis.from_url(url, socket_connect_timeout=2, health_check_interval=10))

    def subscribe(self, topic: str, handler: Handler) -> None:
        self._handlers[topic].append(handler)

    async def publish(self, topic: str, payload: dict[str, Any]) -> None:
        try:
            await self._client.publish(_PREFIX + topic, json.dumps(payload))
        except RedisError as exc:
            # The change is committed; replicas converge when their cache entries expire.
            log.warning("event_publish_failed", topic=topic, error=str(exc))

    async def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._listen(), name="budapp-event-bus")
            # Wait (briefly) for the subscription, so an event published right after start
            # is not missed by this replica.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._ready.wait(), timeout=3)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self._client.aclose()

    async def _listen(self) -> None:
        first = True
        while True:
            try:
                async with self._client.pubsub() as pubsub:
                    await pubsub.psubscribe(_PREFIX + "*")
                    if not first:
                        self._resync()
                    first = False
                    self._ready.set()
                    async for message in pubsub.listen():
                        self._deliver(message)
            except asyncio.CancelledError:
                raise
            except (RedisError, OSError) as exc:
                log.warning("event_bus_disconnected", error=str(exc))
                await asyncio.sleep(self._retry)

    def _deliver(self, message: dict[str, Any]) -> None:
        if message.get("type") != "pmessage":
            return
        channel = message["channel"]
        topic = (channel.decode() if isinstance(channel, bytes) else channel)[len(_PREFIX) :]
        try:
            payload = json.loads(message["data"])
        except ValueError:
            return
        notify(topic, self._handlers.get(topic, []), payload)

    def _resync(self) -> None:
        for topic, handlers in self._handlers.items():
            notify(topic, handlers, None)

"""This replica's WebSocket connections, and the fan-out of organisation events to them.

The hub listens on the event bus; every replica hears every event (Redis pub/sub) and hands it
to the local connections of its organisation. Handing over never waits: each connection has a
bounded queue, and a connection whose queue is full is marked for closing instead of slowing
the publisher or the other clients."""

from __future__ import annotations

import asyncio
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from budapp.adapters.events import EventBus
from budapp.core.components import Key
from budapp.core.logging import get_logger
from budapp.events.service import ORG_EVENTS_TOPIC

log = get_logger("budapp.events")

# Sent to every connection when the bus may have lost messages (a Redis reconnect): clients
# should re-read the state they display.
RESYNC = {"type": "resync"}


@dataclass(eq=False)
class Connection:
    organization_id: uuid.UUID
    user_id: uuid.UUID
    queue: asyncio.Queue[dict[str, Any]]
    # Set when the queue overflowed: the connection's sender closes the socket.
    overflowed: asyncio.Event = field(default_factory=asyncio.Event)

    def offer(self, message: dict[str, Any]) -> None:
        if self.overflowed.is_set():
            return
        try:
            self.queue.put_nowait(message)
        except asyncio.QueueFull:
            self.overflowed.set()


class EventHub:
    def __init__(self, bus: EventBus, *, queue_size: int) -> None:
        self._queue_size = queue_size
        self._by_organization: dict[uuid.UUID, set[Connection]] = defaultdict(set)
        bus.subscribe(ORG_EVENTS_TOPIC, self._on_event)

    def connect(self, organization_id: uuid.UUID, user_id: uuid.UUID) -> Connection:
        connection = Connection(organization_id, user_id, asyncio.Queue(self._queue_size))
        self._by_organization[organization_id].add(connection)
        return connection

    def disconnect(self, connection: Connection) -> None:
        connections = self._by_organization.get(connection.organization_id)
        if connections is not None:
            connections.discard(connection)
            if not connections:
                del self._by_organization[connection.organization_id]

    @property
    def connection_count(self) -> int:
        return sum(len(connections) for connections in self._by_organization.values())

    def _on_event(self, payload: dict[str, Any] | None) -> None:
        if payload is None:
            for connections in self._by_organization.values():
                for connection in connections:
                    connection.offer(RESYNC)
            return
        try:
            organization_id = uuid.UUID(str(payload["organization_id"]))
            user_id = payload.get("user_id")
            addressee = uuid.UUID(str(user_id)) if user_id else None
        except (KeyError, ValueError) as exc:
            log.warning("org_event_malformed", error=repr(exc))
            return
        for connection in self._by_organization.get(organization_id, ()):
            if addressee is None or connection.user_id == addressee:
                connection.offer(payload)


EVENT_HUB: Key[EventHub] = Key("WebSocket hub")

"""Organisation events: what the WebSocket at /ws streams (workflow progress, endpoint status,
notifications). A service calls `publish_org_event` inside its unit of work; the event leaves
after the commit, on the event bus, so that every replica's clients hear it (Redis pub/sub when
configured, in-process otherwise). Events are not stored: a client that reconnects reads the
current state through the API.

The bus travels with the session (bound to the session factory at start-up), so that services
and workflow steps can publish with nothing but the session they already hold."""

from __future__ import annotations

import re
import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, Field
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import Session

from budapp.adapters.events import EventBus
from budapp.core.db import after_commit, utcnow
from budapp.core.logging import get_logger

ORG_EVENTS_TOPIC = "org_events"
_BUS_KEY = "budapp.event_bus"
_TYPE = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$")

log = get_logger("budapp.events")


class EventType(StrEnum):
    WORKFLOW_STEP = "workflow.step"
    WORKFLOW_STATUS = "workflow.status"
    ENDPOINT_STATUS = "endpoint.status"
    NOTIFICATION_CREATED = "notification.created"
    BENCHMARK_PROGRESS = "benchmark.progress"
    BENCHMARK_STATUS = "benchmark.status"


class OrgEvent(BaseModel):
    """One event as the WebSocket sends it (and as it crosses the bus)."""

    id: uuid.UUID = Field(default_factory=uuid.uuid4)
    type: str
    organization_id: uuid.UUID
    # Set: only this user's connections receive it.
    user_id: uuid.UUID | None = None
    data: dict[str, Any]
    created_at: datetime = Field(default_factory=utcnow)


def bind_event_bus(factory: async_sessionmaker[AsyncSession], bus: EventBus) -> None:
    """Every session the factory opens from now on can publish organisation events."""
    info = dict(factory.kw.get("info") or {})
    info[_BUS_KEY] = bus
    factory.configure(info=info)


def publish_org_event(
    session: AsyncSession,
    organization_id: uuid.UUID,
    type: str,
    data: dict[str, Any],
    *,
    user_id: uuid.UUID | None = None,
) -> OrgEvent:
    """Queues the event to be published once `session` commits (never if it rolls back).
    `data` must be JSON-serialisable; keep it small (ids, statuses, a message)."""
    if not _TYPE.match(type):
        raise ValueError(f"event type {type!r} must look like 'kind.change'")
    event = OrgEvent(type=type, organization_id=organization_id, user_id=user_id, data=data)
    # Serialised now, so that a value that cannot be sent fails in the caller, not after commit.
    payload = event.model_dump(mode="json")
    publish_after_commit(session, ORG_EVENTS_TOPIC, payload)
    return event


def event_bus_of(session: AsyncSession | Session) -> EventBus | None:
    """The bus bound to the session's factory; None for a session from an unbound one."""
    bus: EventBus | None = session.info.get(_BUS_KEY)
    return bus


def publish_after_commit(session: AsyncSession, topic: str, payload: dict[str, Any]) -> None:
    """Publishes `payload` on the bus bound to the session's factory once the session commits."""
    bus = event_bus_of(session)
    if bus is None:
        # A session from a factory that was not bound (a CLI command): nobody listens there.
        log.warning("event_without_bus", topic=topic)
        return

    async def announce() -> None:
        await bus.publish(topic, payload)

    after_commit(session, announce)

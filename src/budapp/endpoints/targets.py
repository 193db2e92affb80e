"""Keeps the gateway's in-memory map of endpoint → replica addresses current on every replica
of budapp: loaded once at start, then refreshed from the database for one endpoint whenever an
`endpoint.status` event about it crosses the event bus (never a read per gateway request)."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any, Protocol

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from budapp.adapters.events import EventBus
from budapp.core.components import Key
from budapp.core.logging import get_logger
from budapp.endpoints.repository import EndpointRepository
from budapp.events.service import ORG_EVENTS_TOPIC, EventType

log = get_logger("budapp.endpoints")


class ReplicaMap(Protocol):
    def set(
        self, endpoint_id: uuid.UUID, base_urls: list[str], model: str | None = None
    ) -> None: ...

    def remove(self, endpoint_id: uuid.UUID) -> None: ...


class EndpointTargets:
    def __init__(self, factory: async_sessionmaker[AsyncSession], replicas: ReplicaMap) -> None:
        self.factory = factory
        self.replicas = replicas
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self, bus: EventBus) -> None:
        bus.subscribe(ORG_EVENTS_TOPIC, self._on_event)
        await self._reload_all()

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def _on_event(self, payload: dict[str, Any] | None) -> None:
        if payload is None:  # the bus reconnected: events may have been missed
            self._spawn(self._reload_all())
            return
        if payload.get("type") != EventType.ENDPOINT_STATUS:
            return
        try:
            endpoint_id = uuid.UUID(str(payload["data"]["endpoint_id"]))
        except (KeyError, ValueError, TypeError):
            return
        self._spawn(self.refresh(endpoint_id))

    def _spawn(self, coroutine: Any) -> None:
        task = asyncio.get_running_loop().create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def refresh(self, endpoint_id: uuid.UUID) -> None:
        try:
            async with self.factory() as session:
                rows = await EndpointRepository(session).running_replica_urls(endpoint_id)
        except Exception:
            log.warning("endpoint_targets_refresh_failed", endpoint_id=str(endpoint_id))
            return
        found = _grouped(rows).get(endpoint_id)
        if found:
            self.replicas.set(endpoint_id, found[0], found[1])
        else:
            self.replicas.remove(endpoint_id)

    async def _reload_all(self) -> None:
        async with self.factory() as session:
            rows = await EndpointRepository(session).running_replica_urls()
        for endpoint_id, (urls, model) in _grouped(rows).items():
            self.replicas.set(endpoint_id, urls, model)


def _grouped(rows: Any) -> dict[uuid.UUID, tuple[list[str], str | None]]:
    """Per endpoint: its replicas' OpenAI base URLs, and the model name they serve."""
    grouped: dict[uuid.UUID, tuple[list[str], str | None]] = {}
    for endpoint_id, url, spec in rows:
        urls, _ = grouped.setdefault(endpoint_id, ([], (spec or {}).get("model_name")))
        urls.append(f"{url.rstrip('/')}/v1")
    return grouped


ENDPOINT_TARGETS: Key[EndpointTargets] = Key("endpoint targets")

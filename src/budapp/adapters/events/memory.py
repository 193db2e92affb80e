from __future__ import annotations

from collections import defaultdict
from typing import Any

from budapp.adapters.events.base import Handler, notify


class MemoryEventBus:
    def __init__(self) -> None:
        self._handlers: dict[str, list[Handler]] = defaultdict(list)

    def subscribe(self, topic: str, handler: Handler) -> None:
        self._handlers[topic].append(handler)

    async def publish(self, topic: str, payload: dict[str, Any]) -> None:
        notify(topic, self._handlers.get(topic, []), payload)

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        self._handlers.clear()

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

# Handlers run on the event loop and must not block; None as the payload means "messages may
# have been lost (e.g. a reconnect): drop whatever you cached".
Handler = Callable[[dict[str, Any] | None], None]


class EventBus(Protocol):
    def subscribe(self, topic: str, handler: Handler) -> None: ...

    async def publish(self, topic: str, payload: dict[str, Any]) -> None: ...

    async def start(self) -> None: ...

    async def close(self) -> None: ...

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, Protocol

from budapp.core.logging import get_logger

log = get_logger("budapp.events")

# Handlers run on the event loop and must not block; None as the payload means "messages may
# have been lost (e.g. a reconnect): drop whatever you cached".
Handler = Callable[[dict[str, Any] | None], None]


class EventBus(Protocol):
    def subscribe(self, topic: str, handler: Handler) -> None: ...

    async def publish(self, topic: str, payload: dict[str, Any]) -> None: ...

    async def start(self) -> None: ...

    async def close(self) -> None: ...


def notify(topic: str, handlers: Iterable[Handler], payload: dict[str, Any] | None) -> None:
    for handler in handlers:
        try:
            handler(payload)
        except Exception as exc:
            # One faulty subscriber must cost neither the others their message nor, on Redis,
            # the listener task (which would leave this replica deaf until restarted).
            log.warning("event_handler_failed", topic=topic, error=repr(exc))

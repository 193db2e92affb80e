"""How `{"kind": "endpoint"}` targets become addresses. The endpoints domain keeps a
`TargetResolver` (the components' `TARGET_RESOLVER`) up to date with the base URLs of each
endpoint's running replicas (from its own events); the gateway only reads it, in memory."""

from __future__ import annotations

import uuid
from typing import Protocol

from budapp.core.components import Key


class TargetResolver(Protocol):
    def replicas(self, endpoint_id: uuid.UUID) -> list[str]:
        """OpenAI-compatible base URLs (ending in `/v1`) of the endpoint's running replicas;
        empty when none runs (the target is then unavailable)."""
        ...

    def served_model(self, endpoint_id: uuid.UUID) -> str | None:
        """The model name the endpoint's replicas serve, when known."""
        ...


class EndpointRegistry:
    """The in-memory TargetResolver: the endpoints domain calls `set` and `remove` when
    replicas start and stop (on every replica, from the event bus)."""

    def __init__(self) -> None:
        self._replicas: dict[uuid.UUID, list[str]] = {}
        self._models: dict[uuid.UUID, str] = {}

    def replicas(self, endpoint_id: uuid.UUID) -> list[str]:
        return self._replicas.get(endpoint_id, [])

    def served_model(self, endpoint_id: uuid.UUID) -> str | None:
        return self._models.get(endpoint_id)

    def set(self, endpoint_id: uuid.UUID, base_urls: list[str], model: str | None = None) -> None:
        self._replicas[endpoint_id] = [url.rstrip("/") for url in base_urls]
        if model is not None:
            self._models[endpoint_id] = model

    def remove(self, endpoint_id: uuid.UUID) -> None:
        self._replicas.pop(endpoint_id, None)
        self._models.pop(endpoint_id, None)


TARGET_RESOLVER: Key[EndpointRegistry] = Key("endpoint replica map")

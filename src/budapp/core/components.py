"""What start-up builds once and requests share: the database, the keyring, the event bus, the
window counter, the reference guard, and each domain's long-lived parts (the API-key resolver,
object storage, the gateway...). One typed container, `app.state.components`, built by
`budapp.lifespan`.

Routes reach it only through their domain's `dependencies.py` (`components(request)`), workflow
steps through the workflow engine's context; no other module reads `app.state`. Parts that
core does not know by type are stored under a typed `Key` that their own domain declares, so
`components[API_KEY_RESOLVER]` is an `ApiKeyResolver` to mypy, and core imports no domain.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from starlette.requests import HTTPConnection

from budapp.adapters.cache import WindowCounter
from budapp.adapters.events import EventBus
from budapp.core.keyring import Keyring
from budapp.core.origin import Network
from budapp.core.references import ReferenceGuard
from budapp.settings import Settings

if TYPE_CHECKING:
    from budapp.adapters.clusters import ClusterConnector
    from budapp.adapters.clusters.catalog import TemplateCatalog
    from budapp.adapters.clusters.supervisor import RuntimeSupervisor
    from budapp.adapters.ratelimit import RateLimiter
    from budapp.adapters.storage import ObjectStorage
    from budapp.core.security import PasswordHasher

T = TypeVar("T")


class Key(Generic[T]):
    """Names one part of the container, with its type: `Key[ApiKeyResolver]("api keys")`."""

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return f"Key({self.name!r})"


class ComponentMissing(LookupError):
    """A part asked for was not started in this process (e.g. storage in `budapp gateway`)."""


@dataclass(eq=False)
class Components:
    settings: Settings
    engine: AsyncEngine
    session_factory: async_sessionmaker[AsyncSession]
    keyring: Keyring
    event_bus: EventBus
    window_counter: WindowCounter
    references: ReferenceGuard
    trusted_networks: list[Network]
    _parts: dict[Key[Any], Any] = field(default_factory=dict, repr=False)

    def provide(self, key: Key[T], part: T) -> T:
        """Adds a part; returns it, so `x = components.provide(KEY, X(...))` reads as one step."""
        if key in self._parts:
            raise ValueError(f"{key.name} is already provided")
        self._parts[key] = part
        return part

    def replace(self, key: Key[T], part: T) -> T:
        """Swaps a part for another (tests put a stand-in in place of a backend)."""
        self._parts[key] = part
        return part

    def __getitem__(self, key: Key[T]) -> T:
        try:
            part: T = self._parts[key]
        except KeyError:
            raise ComponentMissing(f"{key.name} is not started in this process") from None
        return part

    def get(self, key: Key[T]) -> T | None:
        part: T | None = self._parts.get(key)
        return part


def components(where: HTTPConnection | Any) -> Components:
    """The container of the app serving `where` (a request, a WebSocket, or the app itself)."""
    app = where.app if isinstance(where, HTTPConnection) else where
    found: Components = app.state.components
    return found


# Parts whose types core knows (adapters and core classes); domains declare their own keys next
# to their classes (`api_keys.resolver.API_KEY_RESOLVER`, `gateway.proxy.GATEWAY`, ...).
STORAGE: Key[ObjectStorage] = Key("object storage")
PASSWORD_HASHER: Key[PasswordHasher] = Key("password hasher")
RATE_LIMITER: Key[RateLimiter] = Key("rate limiter")
RUNTIME_TEMPLATES: Key[TemplateCatalog] = Key("runtime templates")
CLUSTER_CONNECTOR: Key[ClusterConnector] = Key("cluster connector")
# None when another process of this host runs the local runtimes (`serve --workers N`).
RUNTIME_SUPERVISOR: Key[RuntimeSupervisor | None] = Key("runtime supervisor")

"""What benchmarks need from the running app: built once at start-up (`startup.py`) as a
component, reached by the service through `dependencies.py` and by the workflow through the
engine's context."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from budapp.adapters.events import EventBus
from budapp.adapters.storage import ObjectStorage
from budapp.core.components import STORAGE, Components, Key
from budapp.core.keyring import Keyring
from budapp.credentials.service import VAULT, CredentialVault

# A dataset's prompts: at most this many rows are read (requests cycle over them).
MAX_DATASET_PROMPTS = 100_000


@dataclass
class BenchmarkEnvironment:
    # Base URL of budapp's gateway (without /v1); None: router targets cannot be measured.
    gateway_url: str | None
    allow_private_urls: bool
    max_rate: float
    max_concurrency: int
    max_duration_seconds: float
    keyring: Keyring
    vault: CredentialVault
    storage: ObjectStorage
    bus: EventBus
    # For reads that outlive the request's unit of work (a streamed JSONL export).
    session_factory: async_sessionmaker[AsyncSession]


def benchmark_environment(components: Components) -> BenchmarkEnvironment:
    settings = components.settings
    return BenchmarkEnvironment(
        gateway_url=(
            settings.resolved_gateway_url
            if settings.gateway_enabled or settings.gateway_url
            else None
        ),
        allow_private_urls=settings.benchmark_private_urls_allowed,
        max_rate=settings.benchmark_max_rate,
        max_concurrency=settings.benchmark_max_concurrency,
        max_duration_seconds=settings.benchmark_max_duration_seconds,
        keyring=components.keyring,
        vault=components[VAULT],
        storage=components[STORAGE],
        bus=components.event_bus,
        session_factory=components.session_factory,
    )


BENCHMARK_ENVIRONMENT: Key[BenchmarkEnvironment] = Key("benchmark environment")

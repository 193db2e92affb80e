"""What benchmarks need from the running app, built once in main.py and handed to the service
(through dependencies.py) and to the workflow (through the engine's context)."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from budapp.adapters.events import EventBus
from budapp.adapters.storage import ObjectStorage
from budapp.core.keyring import Keyring
from budapp.credentials.service import CredentialVault

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

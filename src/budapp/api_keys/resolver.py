"""Turns a presented API key into the project and organization it acts for, on the hot path:
a warm lookup is a dictionary hit, with no database round trip.

Entries live for `ttl` seconds; a revocation is announced on the event bus after its commit
and every replica drops the entry at once (the TTL bounds staleness if a message is lost).
Last-used times are gathered in memory and written in one batch every few seconds."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import re
import time
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from budapp.adapters.events import EventBus
from budapp.api_keys.repository import ApiKeyRepository
from budapp.core.background import BackgroundTask
from budapp.core.components import Components, Key
from budapp.core.db import utcnow
from budapp.core.errors import Unauthorized
from budapp.core.logging import get_logger

KEY_PREFIX = "bud_sk_"
_KEY_SHAPE = re.compile(r"^bud_sk_[A-Za-z0-9_-]{43}$")
REVOKED_TOPIC = "api_keys.revoked"
# Unknown keys are remembered briefly too, so a client retrying a bad key cannot make every
# request a database query.
_NEGATIVE_TTL = 5.0
_MAX_ENTRIES = 100_000

log = get_logger("budapp.api_keys")


def hash_key(raw: str) -> str:
    # Keys carry 256 random bits: a plain SHA-256 cannot be reversed or guessed, so no slow
    # password hash (which would cost milliseconds per request) is needed.
    return hashlib.sha256(raw.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class ApiKeyIdentity:
    key_id: uuid.UUID
    prefix: str
    project_id: uuid.UUID
    organization_id: uuid.UUID
    expires_at: datetime | None
    # The user who created the key: usage is attributed to them.
    created_by: uuid.UUID | None = None


class ApiKeyResolver:
    def __init__(
        self,
        factory: async_sessionmaker[AsyncSession],
        bus: EventBus,
        *,
        ttl_seconds: float,
        flush_seconds: float,
    ) -> None:
        self._factory = factory
        self._ttl = ttl_seconds
        self._flush_every = flush_seconds
        self._cache: dict[str, tuple[ApiKeyIdentity | None, float]] = {}
        self._digest_by_key: dict[uuid.UUID, str] = {}
        self._uses: dict[uuid.UUID, datetime] = {}
        # Counts revocations and resyncs heard, to tell whether one arrived during a load.
        self._revocations = 0
        self._task = BackgroundTask("api-key-usage")
        bus.subscribe(REVOKED_TOPIC, self._on_revoked)

    async def resolve(self, raw: str) -> ApiKeyIdentity:
        if not _KEY_SHAPE.match(raw):
            raise Unauthorized("Invalid API key")
        digest = hash_key(raw)
        entry = self._cache.get(digest)
        if entry is None or entry[1] <= time.monotonic():
            heard = self._revocations
            identity = await self._load(digest)
            # A revocation heard while the row was read may be of this very key, and it found
            # nothing to evict: serve this request, but do not cache a row that may be stale.
            if heard == self._revocations:
                self._remember(digest, identity)
        else:
            identity = entry[0]
        if identity is None:
            raise Unauthorized("Invalid or revoked API key")
        now = utcnow()
        if identity.expires_at is not None and identity.expires_at <= now:
            raise Unauthorized("The API key has expired")
        self._uses[identity.key_id] = now
        return identity

    def forget(self, key_id: uuid.UUID) -> None:
        digest = self._digest_by_key.pop(key_id, None)
        if digest is not None:
            self._cache.pop(digest, None)

    async def flush_usage(self) -> None:
        uses, self._uses = self._uses, {}
        if not uses:
            return
        async with self._factory() as session:
            await ApiKeyRepository(session).record_last_used(uses)
            await session.commit()

    async def start(self) -> None:
        self._task.start(self._flush_periodically)

    async def close(self) -> None:
        await self._task.stop()
        # A graceful shutdown keeps what was gathered since the last flush.
        await self.flush_usage()

    async def _flush_periodically(self) -> None:
        while True:
            await asyncio.sleep(self._flush_every)
            try:
                await self.flush_usage()
            except Exception as exc:
                log.warning("api_key_usage_flush_failed", error=str(exc))

    async def _load(self, digest: str) -> ApiKeyIdentity | None:
        async with self._factory() as session:
            key = await ApiKeyRepository(session).by_hash(digest)
        if key is None or key.revoked_at is not None:
            return None
        return ApiKeyIdentity(
            key.id, key.prefix, key.project_id, key.organization_id, key.expires_at, key.created_by
        )

    def _remember(self, digest: str, identity: ApiKeyIdentity | None) -> None:
        if len(self._cache) >= _MAX_ENTRIES:
            self._evict()
        ttl = self._ttl if identity is not None else min(_NEGATIVE_TTL, self._ttl)
        self._cache[digest] = (identity, time.monotonic() + ttl)
        if identity is not None:
            self._digest_by_key[identity.key_id] = digest

    def _evict(self) -> None:
        now = time.monotonic()
        for digest in [d for d, (_, expires) in self._cache.items() if expires <= now]:
            del self._cache[digest]
        while len(self._cache) >= _MAX_ENTRIES:
            del self._cache[next(iter(self._cache))]

    def _on_revoked(self, payload: dict[str, Any] | None) -> None:
        self._revocations += 1
        if payload is None:
            self._cache.clear()
            self._digest_by_key.clear()
            return
        with contextlib.suppress(ValueError, KeyError, TypeError):
            self.forget(uuid.UUID(str(payload["key_id"])))


API_KEY_RESOLVER: Key[ApiKeyResolver] = Key("API-key resolver")


def api_key_flusher(components: Components) -> ApiKeyResolver:
    """The resolver writes keys' last-used times in batches: its background part."""
    return components[API_KEY_RESOLVER]

from __future__ import annotations

import secrets
import uuid
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from budapp.adapters.events import EventBus
from budapp.api_keys.models import ApiKey
from budapp.api_keys.repository import ApiKeyRepository
from budapp.api_keys.resolver import KEY_PREFIX, REVOKED_TOPIC, hash_key
from budapp.api_keys.schemas import ApiKeyCreate, ApiKeyCreated, ApiKeyFilter, ApiKeyRead
from budapp.core.db import after_commit, utcnow
from budapp.core.envelope import Page
from budapp.core.errors import NotFound
from budapp.projects.service import ProjectAccess

# "bud_sk_" and seven characters of the random part: enough to tell keys apart, far too
# little to matter to an attacker.
_VISIBLE = len(KEY_PREFIX) + 7


def new_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


def _status(key: ApiKey, now: datetime) -> str:
    if key.revoked_at is not None:
        return "revoked"
    if key.expires_at is not None and key.expires_at <= now:
        return "expired"
    return "active"


def _read(key: ApiKey, now: datetime) -> ApiKeyRead:
    fields = {name: getattr(key, name) for name in ApiKeyRead.model_fields if name != "status"}
    return ApiKeyRead.model_validate({**fields, "status": _status(key, now)})


class ApiKeyService:
    def __init__(self, session: AsyncSession, bus: EventBus) -> None:
        self.session = session
        self.repository = ApiKeyRepository(session)
        self.bus = bus

    async def create(self, access: ProjectAccess, data: ApiKeyCreate) -> ApiKeyCreated:
        now = utcnow()
        raw = new_key()
        key = ApiKey(
            organization_id=access.project.organization_id,
            project_id=access.project.id,
            name=data.name,
            description=data.description,
            prefix=raw[:_VISIBLE],
            key_hash=hash_key(raw),
            created_by=access.principal.user_id,
            expires_at=data.expiry(now),
        )
        self.repository.add(key)
        await self.session.flush()
        return ApiKeyCreated(**_read(key, now).model_dump(), key=raw)

    async def page(self, access: ProjectAccess, filters: ApiKeyFilter) -> Page[ApiKeyRead]:
        now = utcnow()
        rows, total = await self.repository.page(access.project.id, filters, now)
        return Page([_read(row, now) for row in rows], total, filters)

    async def get(self, access: ProjectAccess, key_id: uuid.UUID) -> ApiKeyRead:
        return _read(await self._key(access, key_id), utcnow())

    async def revoke(self, access: ProjectAccess, key_id: uuid.UUID) -> None:
        """Idempotent. Every replica forgets the key as soon as the revocation commits."""
        await self.revoke_in_project(access.project.id, key_id)

    async def revoke_in_project(self, project_id: uuid.UUID, key_id: uuid.UUID) -> None:
        """`revoke` for code acting for the platform (a benchmark's workflow revoking the key
        it was given), once whoever asked has been authorised."""
        key = await self.repository.get(project_id, key_id)
        if key is None:
            raise NotFound("API key", key_id)
        if key.revoked_at is not None:
            return
        key.revoked_at = utcnow()
        await self.session.flush()

        async def announce() -> None:
            await self.bus.publish(REVOKED_TOPIC, {"key_id": str(key.id)})

        after_commit(self.session, announce)

    async def _key(self, access: ProjectAccess, key_id: uuid.UUID) -> ApiKey:
        key = await self.repository.get(access.project.id, key_id)
        if key is None:
            raise NotFound("API key", key_id)
        return key


async def active_keys_of_project(session: AsyncSession, project_id: uuid.UUID) -> str | None:
    count = await ApiKeyRepository(session).count_active_for_project(project_id, utcnow())
    return f"{count} active API key(s)" if count else None

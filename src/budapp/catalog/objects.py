"""The stored files of models, as the storage sweeper sees them (`catalog.sweeper`)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from budapp.adapters.storage import key_id
from budapp.catalog.repository import ModelRepository

# Keys are `models/<organization>/<model>/<file id>`.
MODEL_OBJECT_PREFIX = "models"


class ModelObjects:
    prefix = MODEL_OBJECT_PREFIX

    async def referenced(self, session: AsyncSession, keys: Sequence[str]) -> set[str]:
        ids = [found for key in keys if (found := key_id(key)) is not None]
        others = [key for key in keys if key_id(key) is None]
        return await ModelRepository(session).file_keys_among(ids, others)

    async def deleted_with_files(
        self,
        session: AsyncSession,
        deleted_before: datetime,
        *,
        after: uuid.UUID | None,
        limit: int,
    ) -> list[tuple[uuid.UUID, list[str]]]:
        return await ModelRepository(session).deleted_with_unpurged_files(
            deleted_before, after=after, limit=limit
        )

    async def mark_purged(
        self, session: AsyncSession, owner_ids: Sequence[uuid.UUID], at: datetime
    ) -> None:
        for model in await ModelRepository(session).by_ids(owner_ids):
            model.files_purged_at = at
        await session.flush()

"""The stored files of one kind of owner (models and their files, datasets and their versions),
as the storage sweeper (`catalog.sweeper`) sees them: which listed keys a row points at, which
soft-deleted owners still have files, and the mark that their files are gone.

One implementation for every owner: the owner model has `id`, `deleted_at` and
`files_purged_at`; the file model has `id` (the id that ends its key) and `object_key`."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from budapp.adapters.storage import key_id


class OwnedFilesRepository:
    def __init__(self, prefix: str, *, owner: Any, files: Any, owner_id: Any) -> None:
        """`owner_id` is the file model's column that names its owner."""
        self.prefix = prefix
        self._owner = owner
        self._files = files
        self._owner_id = owner_id

    async def referenced(self, session: AsyncSession, keys: Sequence[str]) -> set[str]:
        """Those of `keys` a file row points at, in one query: by primary key where the key
        ends with an id (as every key budapp builds does), by `object_key` otherwise. Files
        of soft-deleted owners count."""
        ids = [found for key in keys if (found := key_id(key)) is not None]
        others = [key for key in keys if key_id(key) is None]
        files = self._files
        matches = [files.id.in_(ids)] if ids else []
        if others:
            matches.append(files.object_key.in_(others))
        if not matches:
            return set()
        return set(await session.scalars(select(files.object_key).where(or_(*matches))))

    async def deleted_with_files(
        self,
        session: AsyncSession,
        deleted_before: datetime,
        *,
        after: uuid.UUID | None,
        limit: int,
    ) -> list[tuple[uuid.UUID, list[str]]]:
        """Owners soft-deleted before the cutoff whose files are still stored, by id from
        `after`, each with its files' keys."""
        owner = self._owner
        statement = select(owner.id).where(
            owner.deleted_at < deleted_before,
            owner.files_purged_at.is_(None),
            owner.id.in_(select(self._owner_id)),
        )
        if after is not None:
            statement = statement.where(owner.id > after)
        owner_ids = list(await session.scalars(statement.order_by(owner.id).limit(limit)))
        if not owner_ids:
            return []
        keys: dict[uuid.UUID, list[str]] = {owner_id: [] for owner_id in owner_ids}
        files = select(self._owner_id, self._files.object_key).where(self._owner_id.in_(owner_ids))
        for owner_id, key in await session.execute(files):
            keys[owner_id].append(key)
        return list(keys.items())

    async def mark_purged(
        self, session: AsyncSession, owner_ids: Sequence[uuid.UUID], at: datetime
    ) -> None:
        # Through the ORM, so that the audit trail records it.
        owners = await session.scalars(select(self._owner).where(self._owner.id.in_(owner_ids)))
        for owner in owners:
            owner.files_purged_at = at
        await session.flush()

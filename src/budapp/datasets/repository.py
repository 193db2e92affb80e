from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import Select, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from budapp.core.auth import TenantScope
from budapp.core.repository import contains, fetch_page, name_taken
from budapp.datasets.models import Dataset, DatasetVersion
from budapp.datasets.schemas import DatasetFilter


class DatasetRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    def _scoped(self, scope: TenantScope) -> Select[Dataset]:
        return select(Dataset).where(
            Dataset.deleted_at.is_(None), scope.where(Dataset.organization_id)
        )

    async def get(self, scope: TenantScope, dataset_id: uuid.UUID) -> Dataset | None:
        return await self.session.scalar(self._scoped(scope).where(Dataset.id == dataset_id))

    async def page(self, scope: TenantScope, filters: DatasetFilter) -> tuple[list[Dataset], int]:
        statement = self._scoped(scope)
        if filters.search is not None:
            statement = statement.where(
                contains(Dataset.name, filters.search)
                | contains(Dataset.description, filters.search)
            )
        if filters.organization_id is not None:
            statement = statement.where(Dataset.organization_id == filters.organization_id)
        return await fetch_page(self.session, statement.order_by(Dataset.name, Dataset.id), filters)

    async def name_taken(
        self, organization_id: uuid.UUID, name: str, *, excluding: uuid.UUID | None = None
    ) -> bool:
        return await name_taken(
            self.session, Dataset, name, excluding=excluding, organization_id=organization_id
        )

    async def versions(self, dataset_id: uuid.UUID) -> Sequence[DatasetVersion]:
        statement = select(DatasetVersion).where(DatasetVersion.dataset_id == dataset_id)
        return (await self.session.scalars(statement.order_by(DatasetVersion.version))).all()

    async def version(self, dataset_id: uuid.UUID, number: int) -> DatasetVersion | None:
        statement = select(DatasetVersion).where(
            DatasetVersion.dataset_id == dataset_id, DatasetVersion.version == number
        )
        return await self.session.scalar(statement)

    async def version_with_hash(self, dataset_id: uuid.UUID, sha256: str) -> DatasetVersion | None:
        statement = select(DatasetVersion).where(
            DatasetVersion.dataset_id == dataset_id, DatasetVersion.sha256 == sha256
        )
        return await self.session.scalar(statement)

    async def lock(self, dataset: Dataset) -> None:
        """Serialises concurrent uploads of versions of one dataset (version numbers)."""
        await self.session.refresh(dataset, with_for_update=True)

    def add(self, row: Dataset | DatasetVersion) -> None:
        self.session.add(row)

    # --- stored files, for the storage sweeper ---------------------------------------------

    async def version_keys_among(
        self, version_ids: Sequence[uuid.UUID], other_keys: Sequence[str]
    ) -> set[str]:
        """The object keys of versions with these ids (the primary key: a version's key ends
        with its id), and of any of `other_keys` a version points at. Soft-deleted datasets'
        versions count."""
        matches = [DatasetVersion.id.in_(version_ids)] if version_ids else []
        if other_keys:
            matches.append(DatasetVersion.object_key.in_(other_keys))
        if not matches:
            return set()
        statement = select(DatasetVersion.object_key).where(or_(*matches))
        return set(await self.session.scalars(statement))

    async def deleted_with_unpurged_files(
        self, deleted_before: datetime, *, after: uuid.UUID | None, limit: int
    ) -> list[tuple[uuid.UUID, list[str]]]:
        """Datasets soft-deleted before the cutoff whose versions' files are still stored, by
        id from `after`, each with its versions' keys."""
        statement = select(Dataset.id).where(
            Dataset.deleted_at < deleted_before,
            Dataset.files_purged_at.is_(None),
            Dataset.id.in_(select(DatasetVersion.dataset_id)),
        )
        if after is not None:
            statement = statement.where(Dataset.id > after)
        dataset_ids = list(await self.session.scalars(statement.order_by(Dataset.id).limit(limit)))
        if not dataset_ids:
            return []
        keys: dict[uuid.UUID, list[str]] = {dataset_id: [] for dataset_id in dataset_ids}
        versions = select(DatasetVersion.dataset_id, DatasetVersion.object_key).where(
            DatasetVersion.dataset_id.in_(dataset_ids)
        )
        for dataset_id, key in await self.session.execute(versions):
            keys[dataset_id].append(key)
        return list(keys.items())

    async def by_ids(self, dataset_ids: Sequence[uuid.UUID]) -> list[Dataset]:
        statement = select(Dataset).where(Dataset.id.in_(dataset_ids))
        return list(await self.session.scalars(statement))

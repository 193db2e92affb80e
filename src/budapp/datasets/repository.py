from __future__ import annotations

import uuid
from collections.abc import Sequence

from sqlalchemy import Select, select

from budapp.core.auth import TenantScope
from budapp.core.repository import (
    Repository,
    equal,
    fetch_page,
    name_taken,
    narrowed,
    search,
)
from budapp.datasets.models import Dataset, DatasetVersion
from budapp.datasets.schemas import DatasetFilter

_FILTERS = (
    search("search", Dataset.name, Dataset.description),
    equal("organization_id", Dataset.organization_id),
)


class DatasetRepository(Repository):
    def _scoped(self, scope: TenantScope) -> Select[Dataset]:
        return select(Dataset).where(
            Dataset.deleted_at.is_(None), scope.where(Dataset.organization_id)
        )

    async def get(self, scope: TenantScope, dataset_id: uuid.UUID) -> Dataset | None:
        return await self.session.scalar(self._scoped(scope).where(Dataset.id == dataset_id))

    async def page(self, scope: TenantScope, filters: DatasetFilter) -> tuple[list[Dataset], int]:
        statement = narrowed(self._scoped(scope), filters, _FILTERS)
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

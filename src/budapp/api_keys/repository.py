from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import Select, func, select, update

from budapp.api_keys.models import ApiKey
from budapp.api_keys.schemas import ApiKeyFilter
from budapp.core.repository import Repository, fetch_page


class ApiKeyRepository(Repository):
    def _of_project(self, project_id: uuid.UUID) -> Select[ApiKey]:
        return select(ApiKey).where(ApiKey.project_id == project_id)

    async def get(self, project_id: uuid.UUID, key_id: uuid.UUID) -> ApiKey | None:
        return await self.session.scalar(self._of_project(project_id).where(ApiKey.id == key_id))

    async def page(
        self, project_id: uuid.UUID, filters: ApiKeyFilter, now: datetime
    ) -> tuple[list[ApiKey], int]:
        statement = self._of_project(project_id)
        if filters.status == "revoked":
            statement = statement.where(ApiKey.revoked_at.is_not(None))
        elif filters.status == "expired":
            statement = statement.where(ApiKey.revoked_at.is_(None), ApiKey.expires_at <= now)
        elif filters.status == "active":
            statement = statement.where(
                ApiKey.revoked_at.is_(None),
                (ApiKey.expires_at.is_(None)) | (ApiKey.expires_at > now),
            )
        statement = statement.order_by(ApiKey.created_at.desc(), ApiKey.id)
        return await fetch_page(self.session, statement, filters)

    async def by_hash(self, key_hash: str) -> ApiKey | None:
        return await self.session.scalar(select(ApiKey).where(ApiKey.key_hash == key_hash))

    async def count_active_for_project(self, project_id: uuid.UUID, now: datetime) -> int:
        statement = select(func.count()).where(
            ApiKey.project_id == project_id,
            ApiKey.revoked_at.is_(None),
            (ApiKey.expires_at.is_(None)) | (ApiKey.expires_at > now),
        )
        return int(await self.session.scalar(statement) or 0)

    async def record_last_used(self, uses: dict[uuid.UUID, datetime]) -> None:
        for key_id, used_at in uses.items():
            await self.session.execute(
                update(ApiKey)
                .where(ApiKey.id == key_id)
                .where((ApiKey.last_used_at.is_(None)) | (ApiKey.last_used_at < used_at))
                .values(last_used_at=used_at)
                .execution_options(synchronize_session=False)
            )

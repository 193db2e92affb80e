from __future__ import annotations

import uuid

from sqlalchemy import Select, func, select

from budapp.core.repository import Repository, fetch_page
from budapp.routers.models import ProjectRateLimit, Router
from budapp.routers.schemas import RouterFilter


class RouterRepository(Repository):
    def _of_project(self, project_id: uuid.UUID) -> Select[Router]:
        return select(Router).where(Router.project_id == project_id, Router.deleted_at.is_(None))

    async def get(self, project_id: uuid.UUID, router_id: uuid.UUID) -> Router | None:
        return await self.session.scalar(self._of_project(project_id).where(Router.id == router_id))

    async def by_name(self, project_id: uuid.UUID, name: str) -> Router | None:
        return await self.session.scalar(self._of_project(project_id).where(Router.name == name))

    async def page(self, project_id: uuid.UUID, filters: RouterFilter) -> tuple[list[Router], int]:
        statement = self._of_project(project_id)
        if filters.search:
            statement = statement.where(Router.name.icontains(filters.search, autoescape=True))
        return await fetch_page(self.session, statement.order_by(Router.name, Router.id), filters)

    async def all_of_project(self, project_id: uuid.UUID) -> list[Router]:
        return list(await self.session.scalars(self._of_project(project_id)))

    async def count_of_project(self, project_id: uuid.UUID) -> int:
        statement = select(func.count()).select_from(self._of_project(project_id).subquery())
        return int(await self.session.scalar(statement) or 0)

    async def limits(self, project_id: uuid.UUID) -> ProjectRateLimit | None:
        return await self.session.scalar(
            select(ProjectRateLimit).where(ProjectRateLimit.project_id == project_id)
        )

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from budapp.core.auth import Principal
from budapp.core.envelope import Page
from budapp.core.errors import Forbidden
from budapp.core.roles import Permission, Role
from budapp.gateway.models import UsageDaily, UsageHourly
from budapp.gateway.repository import UsageRepository
from budapp.gateway.schemas import UsageFilter, UsageRead
from budapp.projects.service import ProjectService


class UsageService:
    def __init__(self, session: AsyncSession, projects: ProjectService) -> None:
        self.repository = UsageRepository(session)
        self.projects = projects

    async def page(self, filters: UsageFilter, *, by: Principal) -> Page[UsageRead]:
        """A project's usage for its members; an organization's for its admins."""
        if filters.project_id is not None:
            await self.projects.access(filters.project_id, by, Permission.PROJECT_VIEW)
        elif not by.has_role(Role.ORG_ADMIN):
            raise Forbidden("Give a project_id: only org admins read a whole organization's usage")
        table = UsageHourly if filters.granularity == "hour" else UsageDaily
        statement = self.repository.aggregates(
            table,
            by.scope,
            project_id=filters.project_id,
            api_key_id=filters.api_key_id,
            model=filters.model,
            router=filters.router,
            since=filters.since,
            until=filters.until,
        )
        rows, total = await self.repository.page(statement, filters)
        return Page([UsageRead.model_validate(row) for row in rows], total, filters)
